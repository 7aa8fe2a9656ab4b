"""Benchmark results per variant: quality against the reference, latency, throughput, memory, cold start."""
import io
import math
import tempfile
import time
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from llm_assets.assets.common import md_table, mlflow_link, publish_latest, read_latest
from llm_assets.assets.compression import CATALOGUE, compressed_model, variant_partitions
from llm_assets.assets.model import prompt_corpus
from llm_assets.core import measure, plots, quality
from llm_assets.core.engine import load_engine
from resources.artifact_store import ArtifactStore
from resources.mlflow_tracking import MLflowTracking

SUMMARY_COLUMNS = ["variant", "gate_passed", "kl_mean", "ppl_increase_pct", "top1_agreement_pct",
                   "greedy_exact_match_pct", "ttft_p95_s", "tpot_p50_s", "decode_tokens_per_s",
                   "c4_output_tokens_per_s", "peak_rss_mb", "cold_total_s", "model_bytes"]


class BenchmarkConfig(dg.Config):
    quality_samples: int = Field(default=24, ge=1, description="Reference prompts scored by teacher forcing "
                                 "(stratified over task kinds).")
    match_tokens: int = Field(default=16, ge=1, description="Greedy tokens compared for the exact-match rate.")
    latency_requests: int = Field(default=8, ge=2, description="Sequential requests for TTFT/TPOT/ITL/e2e.")
    max_new_tokens: int = Field(default=32, ge=2, description="Output tokens per benchmark request.")
    concurrency: list[int] = Field(default=[1, 2, 4], description="Concurrency levels for throughput.")
    throughput_requests: int = Field(default=4, ge=1, description="Requests per concurrency level.")
    cold_start_runs: int = Field(default=3, ge=1, description="Fresh processes for the cold-start median.")


def stratified(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first rows of each task kind in turn, `n` in all: every kind is represented."""
    ranked = df.assign(_rank=df.groupby("kind").cumcount()).sort_values(["_rank", "kind"], kind="stable")
    return ranked.head(n).drop(columns="_rank")


def load_reference_prompts(store: ArtifactStore) -> pd.DataFrame:
    latest = read_latest(store, "prompt_corpus")
    df = pd.read_parquet(io.BytesIO(store.get_bytes(latest["key"])))
    return df[df["set"] == "reference"].reset_index(drop=True)


def latest_results(store: ArtifactStore, exclude: str | None = None) -> pd.DataFrame:
    """The latest benchmark row of every variant that has one."""
    rows = []
    for v in CATALOGUE.names:
        key = f"benchmark_results/{v}/latest.json"
        if v != exclude and store.exists(key):
            rows.append(pd.read_parquet(io.BytesIO(store.get_bytes(store.get_json(key)["key"]))))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


@dg.asset(partitions_def=variant_partitions, deps=[compressed_model, prompt_corpus], group_name="benchmark",
          kinds={"onnx", "parquet"}, pool="model_heavy")
def benchmark_results(context: dg.AssetExecutionContext, config: BenchmarkConfig, artifact_store: ArtifactStore,
                      mlflow: MLflowTracking) -> dg.MaterializeResult:
    """Every variant measured the same way on the same prompts, with the engine that serves it.

    Quality against the reference variant (perplexity on reference answers, mean KL, top-1
    agreement, greedy exact match); latency (TTFT, TPOT, ITL, end-to-end: mean/p50/p95/p99);
    throughput at several concurrency levels on one shared session; peak RSS of a serving
    process; cold start of a fresh process. Blocking checks gate what may be promoted.
    """
    variant = context.partition_key
    spec = CATALOGUE.get(variant)
    budget = CATALOGUE.quality_budget
    v_info = read_latest(artifact_store, "compressed_model", variant)
    r_info = read_latest(artifact_store, "compressed_model", CATALOGUE.reference)
    v_dir = artifact_store.get_dir(v_info["prefix"])
    corpus = load_reference_prompts(artifact_store)
    samples = stratified(corpus, config.quality_samples)
    prompts = list(stratified(corpus.iloc[::-1], config.latency_requests)["prompt"])

    # get_dir has just checked every file against its sha256; the engines need not hash them again.
    engine = load_engine(v_dir, verify=False)
    reference = engine if variant == CATALOGUE.reference else load_engine(
        artifact_store.get_dir(r_info["prefix"]), verify=False)
    context.log.info(f"quality of {variant} against {CATALOGUE.reference} on {len(samples)} reference answers")
    step = max(1, len(samples) // 5)
    q = quality.compare(reference, engine, list(zip(samples["prompt"], samples["reference"])),
                        match_tokens=config.match_tokens,
                        progress=lambda i, n: i % step == 0 and context.log.info(f"quality {i}/{n}"))
    del reference
    context.log.info(f"quality: KL {q['kl_mean']:.4f}, ppl +{q['ppl_increase_pct']:.1f}%, "
                     f"top-1 {q['top1_agreement_pct']:.1f}%")
    lat = measure.latency(engine, prompts, config.max_new_tokens,
                          progress=lambda i, n: context.log.info(f"latency {i}/{n}"))
    thr: dict = {}
    for c in config.concurrency:
        thr.update(measure.throughput(engine, (prompts * c)[: max(config.throughput_requests, c)],
                                      config.max_new_tokens, c))
        context.log.info(f"concurrency {c}: {thr[f'c{c}_output_tokens_per_s']:.1f} output tokens/s")
    threads = engine.threads
    del engine
    context.log.info(f"cold start: {config.cold_start_runs} fresh processes")
    cold = measure.cold_start(v_dir, threads, config.cold_start_runs, serve_tokens=config.max_new_tokens)
    failures = budget.failures(q)
    manifest = artifact_store.get_manifest(v_info["prefix"])
    row = {
        "variant": variant, "kind": spec.kind, "quantization": spec.quantization, "threads": threads,
        **q, **lat, **thr, **{k: v for k, v in cold.items() if k != "cold_peak_rss_mb"},
        "peak_rss_mb": cold["cold_peak_rss_mb"],
        "model_bytes": int(manifest["total_bytes"]),
        "gate_passed": not failures, "gate_failures": "; ".join(failures),
        "base_sha256": v_info["base_sha256"], "variant_digest": v_info["digest"], "variant_prefix": v_info["prefix"],
        "measured_at": pd.Timestamp.now(tz="UTC").isoformat(),
    }
    df = pd.DataFrame([row])
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "results.parquet"
        df.to_parquet(path, index=False)
        key = f"benchmark_results/{variant}/{v_info['digest'][:16]}-{int(time.time())}/results.parquet"
        artifact_store.put_file(key, path)
    if failures:
        context.log.warning(f"{variant} fails the quality gate: {'; '.join(failures)}")

    everyone = pd.concat([latest_results(artifact_store, exclude=variant), df], ignore_index=True)
    png = plots.quality_vs_latency_png(everyone)
    with mlflow.run(f"benchmark_results/{variant}", tags={"asset": "benchmark_results", "variant": variant,
                                                          "base_sha256": v_info["base_sha256"],
                                                          "gate_passed": not failures}) as run:
        run.log_params({"variant": variant, **config.model_dump(), **budget.model_dump()})
        run.log_metrics({k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "quality_vs_latency.png").write_bytes(png)
            df.to_csv(Path(d) / "results.csv", index=False)
            run.log_artifact(Path(d) / "quality_vs_latency.png")
            run.log_artifact(Path(d) / "results.csv")

    publish_latest(artifact_store, "benchmark_results", {"key": key, "variant": variant, "gate_passed": not failures,
                                                          "gate_failures": failures, "mlflow_run_id": run.run_id},
                   partition=variant)
    shown = everyone[[c for c in SUMMARY_COLUMNS if c in everyone]].copy()
    return dg.MaterializeResult(
        metadata={
            "gate_passed": not failures,
            "gate_failures": dg.MetadataValue.json(failures),
            "quality_budget": dg.MetadataValue.json(budget.model_dump()),
            **{k: dg.MetadataValue.float(float(row[k])) for k in (
                "kl_mean", "ppl_increase_pct", "top1_agreement_pct", "greedy_exact_match_pct", "perplexity",
                "ttft_p95_s", "tpot_p50_s", "itl_p99_s", "e2e_p95_s", "decode_tokens_per_s",
                "prefill_tokens_per_s", "peak_rss_mb", "cold_total_s") if math.isfinite(float(row[k]))},
            "model_bytes": dg.MetadataValue.int(row["model_bytes"]),
            "throughput": dg.MetadataValue.json({k: round(v, 2) for k, v in thr.items()}),
            "throughput_mode": "one shared engine session, one thread per request in flight",
            "all_variants": md_table(shown.round(4)),
            "quality_vs_latency": dg.MetadataValue.md(plots.md_image(png, "quality vs latency")),
            "uri": artifact_store.uri(key),
            "mlflow_run": mlflow_link(run.url),
        },
    )
