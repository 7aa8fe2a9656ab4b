"""Print what the last `make demo` built: each asset's latest materialization and its key numbers.

Reads the Dagster instance under $DAGSTER_HOME (the same one `make dev` shows).
"""
from __future__ import annotations

import sys

import dagster as dg
import pandas as pd

from llm_assets.core.variants import load_catalogue

# (asset, metadata keys), in lifecycle order; partitioned assets print one table row per variant.
SINGLE = {
    "prompt_corpus": ["reference_prompts", "shifted_prompts", "uri"],
    "base_model": ["source", "architecture", "parameters", "bytes", "sha256", "load_seconds", "smoke_answer", "uri"],
    "champion_model": ["champion", "registered_model", "version", "previous_version"],
    "deployed_endpoint": ["url", "version", "variant", "cold_start_s", "sample_answer"],
}
PARTITIONED = {
    "compressed_model": ["quantization", "weight_bytes", "size_ratio_to_fp32", "export_seconds",
                         "quantization_seconds", "threads", "thread_sweep_tokens_per_s", "reused"],
    "benchmark_results": ["gate_passed", "kl_mean", "ppl_increase_pct", "top1_agreement_pct",
                          "greedy_exact_match_pct", "ttft_p95_s", "decode_tokens_per_s", "peak_rss_mb",
                          "cold_total_s", "gate_failures"],
}
ORDER = ["prompt_corpus", "base_model", "compressed_model", "benchmark_results", "champion_model",
         "deployed_endpoint"]


def _raw(v):
    return getattr(v, "value", v)


def _metadata(instance: dg.DagsterInstance, asset: str, keys: list[str], partition: str | None = None):
    flt = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None)
    records = instance.fetch_materializations(flt, limit=1).records
    if not records:
        return None
    md = records[0].asset_materialization.metadata
    return {k: _raw(md[k]) for k in keys if k in md}


def main() -> int:
    instance = dg.DagsterInstance.get()
    missing = []
    for asset in ORDER:
        if asset in SINGLE:
            values = _metadata(instance, asset, SINGLE[asset])
            if values is None:
                missing.append(asset)
                continue
            print(f"\n{asset}")
            for k, v in values.items():
                print(f"  {k:<18} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"  {k:<18} {v}")
            continue
        rows = []
        for variant in load_catalogue().names:
            values = _metadata(instance, asset, PARTITIONED[asset], variant)
            if values is None:
                missing.append(f"{asset}[{variant}]")
            else:
                rows.append({"variant": variant, **values})
        if rows:
            table = pd.DataFrame(rows)
            print(f"\n{asset}")
            print(table.drop(columns="gate_failures", errors="ignore").round(3).to_markdown(index=False))
            failed = [f"{r['variant']}: {'; '.join(r['gate_failures'] or [])}" for r in rows
                      if r.get("gate_passed") is False]
            if failed:
                print("failed the quality gate (never eligible for promotion):\n  " + "\n  ".join(failed))
    if missing:
        print(f"\nnot materialized: {', '.join(missing)}")
        return 1
    print("\ntry it:  make ask Q=\"Write a haiku about the sea\"   (stop it: make endpoint-stop)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
