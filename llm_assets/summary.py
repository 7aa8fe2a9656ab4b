"""Print what the last `make demo` built: each asset's latest materialization and its key numbers.

Reads the Dagster instance under $DAGSTER_HOME (the same one `make dev` shows).
"""
from __future__ import annotations

import sys

import dagster as dg
import pandas as pd

from llm_assets.core.variants import load_catalogue

SHOWN = [
    ("prompt_corpus", ["reference_prompts", "shifted_prompts", "uri"]),
    ("base_model", ["source", "architecture", "parameters", "bytes", "sha256", "load_seconds", "smoke_answer", "uri"]),
]
VARIANT_COLUMNS = ["quantization", "weight_bytes", "size_ratio_to_fp32", "export_seconds", "quantization_seconds",
                   "threads", "thread_sweep_tokens_per_s", "reused"]


BENCH_COLUMNS = ["gate_passed", "kl_mean", "ppl_increase_pct", "top1_agreement_pct", "greedy_exact_match_pct",
                 "ttft_p95_s", "decode_tokens_per_s", "peak_rss_mb", "cold_total_s", "gate_failures"]


def _raw(v):
    return getattr(v, "value", v)


def _latest(instance: dg.DagsterInstance, asset: str, partition: str | None = None):
    flt = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None)
    records = instance.fetch_materializations(flt, limit=1).records
    return records[0].asset_materialization if records else None


def main() -> int:
    instance = dg.DagsterInstance.get()
    missing = []
    for asset, keys in SHOWN:
        mat = _latest(instance, asset)
        if mat is None:
            missing.append(asset)
            continue
        print(asset)
        for k in keys:
            if k in mat.metadata:
                v = _raw(mat.metadata[k])
                print(f"  {k:<18} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"  {k:<18} {v}")
    rows = []
    for variant in load_catalogue().names:
        mat = _latest(instance, "compressed_model", variant)
        if mat is None:
            missing.append(f"compressed_model[{variant}]")
            continue
        rows.append({"variant": variant, **{k: _raw(mat.metadata[k]) for k in VARIANT_COLUMNS if k in mat.metadata}})
    if rows:
        print("\ncompressed_model")
        print(pd.DataFrame(rows).to_markdown(index=False))
    bench = []
    for variant in load_catalogue().names:
        mat = _latest(instance, "benchmark_results", variant)
        if mat is None:
            missing.append(f"benchmark_results[{variant}]")
            continue
        bench.append({"variant": variant, **{k: _raw(mat.metadata[k]) for k in BENCH_COLUMNS if k in mat.metadata}})
    if bench:
        print("\nbenchmark_results (quality vs the reference; latency for 32 output tokens)")
        print(pd.DataFrame(bench).drop(columns="gate_failures", errors="ignore").round(3).to_markdown(index=False))
        failed = [f"{b['variant']}: {'; '.join(b.get('gate_failures') or [])}" for b in bench if not b["gate_passed"]]
        if failed:
            print("\nfailed the quality gate (never eligible for promotion):\n  " + "\n  ".join(failed))
    if missing:
        print(f"\nnot materialized: {', '.join(missing)}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
