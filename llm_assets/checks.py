"""Great Expectations-backed asset checks. Blocking checks stop bad data from flowing downstream."""

import io
import tempfile
import warnings
from pathlib import Path

import dagster as dg
import pandas as pd

from llm_assets.assets.common import read_latest
from llm_assets.assets.benchmark import benchmark_results
from llm_assets.assets.compression import CATALOGUE, variant_partitions
from llm_assets.assets.model import prompt_corpus
from llm_assets.core.validation import (Validation, concurrency_levels, validate_benchmark_sanity,
                                        validate_corpus, validate_quality_budget)
from resources.artifact_store import ArtifactStore

# Partitioned asset checks (one evaluation per variant) are a preview feature of dagster 1.13.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec")


def _result(validation: Validation, **metadata) -> dg.AssetCheckResult:
    table = pd.DataFrame(validation.results)
    return dg.AssetCheckResult(
        passed=validation.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None if validation.success else "; ".join(validation.failures)[:2000],
        metadata={
            "expectations_evaluated": validation.evaluated,
            "failures": dg.MetadataValue.json(validation.failures),
            "results": dg.MetadataValue.md(table.to_markdown(index=False)) if len(table) else "none",
            **metadata,
        },
    )


@dg.asset_check(asset=prompt_corpus, blocking=True)
def prompt_corpus_is_valid(artifact_store: ArtifactStore) -> dg.AssetCheckResult:
    """Schema, no empty or whitespace prompt, length bounds, no duplicate prompt within a set,
    >= 200 reference prompts over >= 4 task kinds, and a non-empty shifted set."""
    latest = read_latest(artifact_store, "prompt_corpus")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "corpus.parquet"
        path.write_bytes(artifact_store.get_bytes(latest["key"]))
        df = pd.read_parquet(path)
    return _result(validate_corpus(df), rows=len(df))


def _benchmark_row(artifact_store: ArtifactStore, variant: str) -> pd.DataFrame:
    latest = read_latest(artifact_store, "benchmark_results", variant)
    return pd.read_parquet(io.BytesIO(artifact_store.get_bytes(latest["key"])))


@dg.asset_check(asset=benchmark_results, blocking=True, partitions_def=variant_partitions)
def benchmark_results_are_sane(context: dg.AssetCheckExecutionContext,
                               artifact_store: ArtifactStore) -> dg.AssetCheckResult:
    """Schema and types, no NaN, non-negative times and rates, p50 <= p95 <= p99 for TTFT/TPOT/ITL/e2e."""
    df = _benchmark_row(artifact_store, context.partition_key)
    return _result(validate_benchmark_sanity(df, concurrency_levels(df)), variant=context.partition_key)


@dg.asset_check(asset=benchmark_results, blocking=True, partitions_def=variant_partitions)
def benchmark_results_within_quality_budget(context: dg.AssetCheckExecutionContext,
                                            artifact_store: ArtifactStore) -> dg.AssetCheckResult:
    """Mean KL, perplexity increase and top-1 agreement against the reference within the budget
    in variants.yaml. A variant that fails is never eligible for promotion."""
    df = _benchmark_row(artifact_store, context.partition_key)
    budget = CATALOGUE.quality_budget
    return _result(validate_quality_budget(df, budget), variant=context.partition_key,
                   budget=dg.MetadataValue.json(budget.model_dump()),
                   actual=dg.MetadataValue.json({k: float(df[k].iloc[0]) for k in
                                                 ("kl_mean", "ppl_increase_pct", "top1_agreement_pct")}))
