"""Make a compressed variant from the base snapshot: ONNX export and ONNX Runtime quantization.

    export_onnx(base_dir, out_dir, untie_lm_head)      optimum-onnx, text-generation-with-past
    quantize(onnx_dir, out_dir, spec)                  dynamic int8 or MatMulNBits weight-only
    thread_sweep(model_dir, ...)                       the decode thread count, measured
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Callable

from llm_assets.core.engine import ONNX_FILE, SamplingParams, load_engine
from llm_assets.core.variants import VariantSpec

Log = Callable[[str], None]
_SIDE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "chat_template.jinja")


def tool_versions() -> dict[str, str]:
    out = {}
    for pkg in ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def copy_model_files(src: Path, dest: Path, names) -> None:
    """Copy the named files that exist in `src` (never the store's own manifest or hash sidecars)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (src / name).is_file():
            shutil.copy2(src / name, dest / name)


def export_onnx(base_dir: Path, out_dir: Path, untie_lm_head: bool = False, log: Log = print) -> float:
    """Export the snapshot to ONNX with a KV cache (inputs past_key_values.*, outputs present.*).

    With `untie_lm_head` the LM head gets its own copy of the embedding first: exported tied, the head
    reads the embedding through a Transpose and weight-only quantizers skip it.
    """
    from optimum.exporters.onnx import main_export

    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        src = base_dir
        if untie_lm_head:
            src = Path(tmp) / "untied"
            _untie(base_dir, src)
            log("untied the LM head from the embedding")
        logging.getLogger("optimum").setLevel(logging.WARNING)
        main_export(model_name_or_path=str(src), output=str(out_dir), task="text-generation-with-past",
                    device="cpu", do_validation=False)
    if not (out_dir / ONNX_FILE).is_file():
        raise RuntimeError(f"optimum export wrote no {ONNX_FILE} into {out_dir}: {sorted(p.name for p in out_dir.iterdir())}")
    # The engine needs the side files (tokenizer, chat template, generation config) next to the graph.
    copy_model_files(base_dir, out_dir, names=[n for n in _SIDE_FILES if not (out_dir / n).exists()])
    return time.perf_counter() - t


def _untie(base_dir: Path, dest: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone())
    model.save_pretrained(dest, safe_serialization=True)
    copy_model_files(base_dir, dest, names=[n for n in _SIDE_FILES if n not in ("config.json",)])


def quantize(onnx_dir: Path, out_dir: Path, spec: VariantSpec) -> float:
    """Write `out_dir/model.onnx` quantized as `spec` says; copy the side files. Returns seconds."""
    out_dir.mkdir(parents=True, exist_ok=True)
    src, dest = onnx_dir / ONNX_FILE, out_dir / ONNX_FILE
    t = time.perf_counter()
    if spec.quantization == "none":
        shutil.copy2(src, dest)
        for extra in onnx_dir.glob(ONNX_FILE + "_data"):
            shutil.copy2(extra, out_dir / extra.name)
    elif spec.quantization == "dynamic_int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(src, dest, weight_type=QuantType.QInt8, per_channel=spec.per_channel,
                         reduce_range=spec.reduce_range)
    elif spec.quantization == "weight_only":
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
        q = MatMulNBitsQuantizer(onnx.load(str(src)), bits=spec.bits, block_size=spec.block_size,
                                 is_symmetric=spec.symmetric, accuracy_level=spec.accuracy_level)
        q.process()
        q.model.save_model_to_file(str(dest), use_external_data_format=False)
    else:  # VariantSpec validation makes this unreachable
        raise ValueError(f"unknown quantization {spec.quantization!r}")
    seconds = time.perf_counter() - t
    copy_model_files(onnx_dir, out_dir, names=_SIDE_FILES)
    return seconds


def count_ops(model_path: Path) -> dict[str, int]:
    """How many nodes of each quantization-relevant op type the graph has (shows what got quantized)."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(model_path), load_external_data=False).graph.node:
        if node.op_type in ("MatMul", "MatMulNBits", "MatMulInteger", "DynamicQuantizeLinear", "Gemm"):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def thread_sweep(model_dir: Path, candidates: list[int], prompt: list[dict] | None = None,
                 tokens: int = 32, log: Log = print) -> tuple[int, dict[int, float]]:
    """Decode tokens/s at each thread count (greedy, same prompt); the best becomes the default.

    On shared 2-vCPU machines one thread has beaten two: measured, not assumed.
    """
    prompt = prompt or [{"role": "user", "content": "Write a Python function that reverses a string."}]
    results: dict[int, float] = {}
    for n in candidates:
        engine = load_engine(model_dir, threads=n, verify=False)
        params = SamplingParams(max_new_tokens=tokens, stop_token_ids=[])
        engine.chat(prompt, SamplingParams(max_new_tokens=4, stop_token_ids=[]))  # warm-up
        best = max(engine.chat(prompt, params).decode_tokens_per_s for _ in range(2))
        results[n] = round(best, 2)
        log(f"threads={n}: {best:.1f} decode tokens/s")
        del engine
    return max(results, key=results.get), results


def write_variant_file(out_dir: Path, info: dict) -> None:
    (out_dir / "variant.json").write_text(json.dumps(info, indent=2, sort_keys=True))
