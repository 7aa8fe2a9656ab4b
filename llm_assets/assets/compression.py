"""Compressed variants of the base model, one static partition per variant in variants.yaml."""
import os
import tempfile
from pathlib import Path

import dagster as dg
from pydantic import Field

from llm_assets.assets.common import mlflow_link, publish_latest, read_latest
from llm_assets.assets.model import base_model
from llm_assets.core import compress
from llm_assets.core.engine import ONNX_FILE
from llm_assets.core.variants import load_catalogue
from resources.artifact_store import ArtifactStore
from resources.mlflow_tracking import MLflowTracking

CATALOGUE = load_catalogue()
variant_partitions = dg.StaticPartitionsDefinition(CATALOGUE.names)


class CompressConfig(dg.Config):
    thread_candidates: list[int] = Field(
        default_factory=lambda: list(range(1, min(os.cpu_count() or 1, 4) + 1)),
        description="Thread counts the decode sweep tries; the fastest becomes the variant's default.",
    )
    sweep_tokens: int = Field(default=32, description="Tokens decoded per sweep measurement.")
    force: bool = Field(default=False, description="Rebuild even if this base + recipe is already stored.")


def _weight_bytes(sizes: dict[str, int]) -> int:
    """Bytes of the weight files among `name -> bytes`."""
    return sum(n for name, n in sizes.items() if name.endswith((".safetensors", ".onnx", ".onnx_data", ".onnx.data")))


def _onnx_export(context, store: ArtifactStore, base: dict, base_dir: Path, untie: bool) -> tuple[Path, float]:
    """The ONNX export of this base (tied or untied head), made once and shared by every ONNX variant."""
    prefix = f"onnx_export/{base['sha256'][:16]}-{'untied' if untie else 'tied'}"
    if store.has_dir(prefix):
        context.log.info(f"reusing ONNX export {store.uri(prefix)}")
    else:
        context.log.info(f"exporting {base['facts']['architecture']} to ONNX with KV cache (untie_lm_head={untie})")
        with tempfile.TemporaryDirectory() as d:
            seconds = compress.export_onnx(base_dir, Path(d) / "onnx", untie, log=context.log.info)
            context.log.info(f"export took {seconds:.1f}s; storing it")
            store.put_dir(prefix, Path(d) / "onnx", extra={"export_seconds": seconds, "base_sha256": base["sha256"]})
    return store.get_dir(prefix), float(store.get_manifest(prefix)["export_seconds"])


@dg.asset(partitions_def=variant_partitions, deps=[base_model], group_name="model",
          kinds={"onnx", "pytorch"}, pool="model_heavy")
def compressed_model(context: dg.AssetExecutionContext, config: CompressConfig, artifact_store: ArtifactStore,
                     mlflow: MLflowTracking) -> dg.MaterializeResult:
    """One compressed variant of the base model, ready for the decode engine.

    torch-fp32 is the base snapshot as it is (the quality reference); onnx-* are the ONNX
    export with KV cache, optionally quantized by ONNX Runtime (dynamic int8, or MatMulNBits
    8/4-bit weight-only). The manifest records files, sha256, size ratio to fp32, build
    seconds, tool versions and the decode thread count measured best on this machine.
    Rebuilding the same base with the same recipe reuses the stored variant.
    """
    variant = context.partition_key
    spec = CATALOGUE.get(variant)
    base = read_latest(artifact_store, "base_model")
    prefix = f"compressed_model/{variant}/{base['sha256'][:16]}-{spec.options_digest()[:8]}"
    base_manifest = artifact_store.get_manifest(base["prefix"])
    reused = artifact_store.has_dir(prefix) and not config.force
    if reused:
        context.log.info(f"{variant} of base {base['sha256'][:12]} with these options is already at "
                         f"{artifact_store.uri(prefix)}; reusing it")
    else:
        base_dir = artifact_store.get_dir(base["prefix"])
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / variant
            export_s = quant_s = 0.0
            if spec.is_onnx:
                onnx_dir, export_s = _onnx_export(context, artifact_store, base, base_dir, spec.untie_lm_head)
                context.log.info(f"quantization: {spec.quantization}")
                quant_s = compress.quantize(onnx_dir, out, spec)
                ops = compress.count_ops(out / ONNX_FILE)
                context.log.info(f"quantized in {quant_s:.1f}s; ops {ops}")
            else:
                compress.copy_model_files(base_dir, out, names=list(base_manifest["files"]))
                ops = {}
            context.log.info(f"thread sweep over {config.thread_candidates}")
            threads, sweep = compress.thread_sweep(out, config.thread_candidates, tokens=config.sweep_tokens,
                                                   log=context.log.info)
            weights = _weight_bytes({p.name: p.stat().st_size for p in out.iterdir() if p.is_file()})
            fp32 = _weight_bytes({k: m["bytes"] for k, m in base_manifest["files"].items()})
            info = {
                "variant": variant, "kind": spec.kind, "options": spec.model_dump(exclude={"name"}),
                "optimization": spec.optimization, "base_sha256": base["sha256"], "base_prefix": base["prefix"],
                "threads": threads, "thread_sweep_tokens_per_s": {str(k): v for k, v in sweep.items()},
                "export_seconds": round(export_s, 2), "quantization_seconds": round(quant_s, 2),
                "weight_bytes": weights,
                "size_ratio_to_fp32": round(weights / fp32, 4),
                "ops": ops, "tool_versions": compress.tool_versions(),
            }
            compress.write_variant_file(out, info)
            context.log.info(f"storing {variant} ({weights / 1e6:.1f} MB of weights) at {artifact_store.uri(prefix)}")
            artifact_store.put_dir(prefix, out)
    manifest = artifact_store.get_manifest(prefix)
    info = artifact_store.get_json(f"{prefix}/variant.json")

    with mlflow.run(f"compressed_model/{variant}", tags={"asset": "compressed_model", "variant": variant,
                                                         "base_sha256": base["sha256"]}) as run:
        run.log_params({"variant": variant, **info["options"], "threads": info["threads"],
                        **{f"version.{k}": v for k, v in info["tool_versions"].items()}})
        run.log_metrics({"weight_bytes": info["weight_bytes"], "size_ratio_to_fp32": info["size_ratio_to_fp32"],
                         "export_seconds": info["export_seconds"],
                         "quantization_seconds": info["quantization_seconds"],
                         **{f"decode_tok_s_threads_{k}": v for k, v in info["thread_sweep_tokens_per_s"].items()}})
        run.log_dict(manifest, "manifest.json")
    publish_latest(artifact_store, "compressed_model", {
        "prefix": prefix, "variant": variant, "digest": manifest["digest"], "base_sha256": base["sha256"],
        "mlflow_run_id": run.run_id,
    }, partition=variant)
    return dg.MaterializeResult(
        metadata={
            "variant": variant,
            "kind": spec.kind,
            "quantization": spec.quantization,
            "weight_bytes": dg.MetadataValue.int(info["weight_bytes"]),
            "size_ratio_to_fp32": dg.MetadataValue.float(info["size_ratio_to_fp32"]),
            "export_seconds": dg.MetadataValue.float(info["export_seconds"]),
            "quantization_seconds": dg.MetadataValue.float(info["quantization_seconds"]),
            "threads": info["threads"],
            "thread_sweep_tokens_per_s": dg.MetadataValue.json(info["thread_sweep_tokens_per_s"]),
            "ops": dg.MetadataValue.json(info["ops"]),
            "base_sha256": base["sha256"],
            "digest": manifest["digest"],
            "reused": reused,
            "uri": artifact_store.uri(prefix),
            "mlflow_run": mlflow_link(run.url),
        },
        data_version=dg.DataVersion(manifest["digest"][:16]),
    )
