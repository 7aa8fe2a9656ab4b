"""Great Expectations 1.x validations, called directly (dagster-ge does not support 1.x).

Each function returns a `Validation`: success, one line per failed expectation
naming the column and what was unexpected, and the raw per-expectation results
for the UI.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

import pandas as pd

from llm_assets.core.corpus import COLUMNS, PROMPT_CHARS, REFERENCE_CHARS

MIN_REFERENCE_PROMPTS = 200
MIN_KINDS = 4

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
logging.getLogger("great_expectations").setLevel(logging.WARNING)


@dataclass
class Validation:
    success: bool
    failures: list[str] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)

    @property
    def evaluated(self) -> int:
        return len(self.results)


def run_suite(df: pd.DataFrame, name: str, expectations: list) -> Validation:
    import great_expectations as gx

    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas(name).add_dataframe_asset(name=name)
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df})
    suite = gx.ExpectationSuite(name=name)
    for exp in expectations:
        suite.add_expectation(exp)
    result = batch.validate(suite, result_format="SUMMARY")
    failures, rows = [], []
    for r in result.results:
        kwargs = {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"}
        detail = {k: r.result.get(k) for k in ("observed_value", "unexpected_count", "partial_unexpected_list")
                  if r.result.get(k) not in (None, [])}
        rows.append({"expectation": r.expectation_config.type, "success": bool(r.success), **kwargs, **detail})
        if not r.success:
            failures.append(f"{r.expectation_config.type}({_fmt(kwargs)}) failed: {_fmt(detail)}")
    return Validation(success=bool(result.success), failures=failures, results=rows)


def _fmt(d: dict) -> str:
    return ", ".join(f"{k}={str(v)[:120]}" for k, v in d.items())


def validate_corpus(df: pd.DataFrame) -> Validation:
    """Schema, non-empty, length bounds and no duplicate prompts within a set."""
    import great_expectations as gx

    E = gx.expectations
    exps = [
        E.ExpectTableColumnsToMatchSet(column_set=["set", *COLUMNS], exact_match=True),
        E.ExpectTableRowCountToBeBetween(min_value=1),
        E.ExpectColumnValuesToBeInSet(column="set", value_set=["reference", "shifted"]),
        E.ExpectColumnValuesToBeUnique(column="id"),
        E.ExpectCompoundColumnsToBeUnique(column_list=["set", "prompt"]),
    ]
    for col in COLUMNS:
        exps.append(E.ExpectColumnValuesToNotBeNull(column=col))
    exps.append(E.ExpectColumnValueLengthsToBeBetween(column="prompt", min_value=PROMPT_CHARS[0],
                                                      max_value=PROMPT_CHARS[1]))
    exps.append(E.ExpectColumnValueLengthsToBeBetween(column="reference", min_value=REFERENCE_CHARS[0],
                                                      max_value=REFERENCE_CHARS[1]))
    # Whitespace-only prompts are empty prompts.
    exps.append(E.ExpectColumnValuesToNotMatchRegex(column="prompt", regex=r"^\s*$"))
    missing = [c for c in ["set", *COLUMNS] if c not in df.columns]
    if missing:
        return Validation(False, [f"corpus is missing columns {missing}; expected {['set', *COLUMNS]}"], [])
    validation = run_suite(df, "prompt_corpus", exps)
    # Coverage the benchmarks rely on: enough reference prompts over enough task kinds.
    ref = df[df["set"] == "reference"]
    for ok, msg in (
        (len(ref) >= MIN_REFERENCE_PROMPTS, f"reference set has {len(ref)} prompts; need >= {MIN_REFERENCE_PROMPTS}"),
        (ref["kind"].nunique() >= MIN_KINDS, f"reference set has {ref['kind'].nunique()} task kinds; need >= {MIN_KINDS}"),
        ((df["set"] == "shifted").any(), "shifted set is empty; drift scenarios need it"),
    ):
        if not ok:
            validation.success = False
            validation.failures.append(msg)
    return validation


# ---- benchmark_results ---------------------------------------------------------------
LATENCY_METRICS = ("ttft", "tpot", "itl", "e2e")
QUALITY_COLUMNS = ["perplexity", "reference_perplexity", "ppl_increase_pct", "kl_mean", "top1_agreement_pct",
                   "greedy_exact_match_pct"]
TIME_COLUMNS = [f"{m}_{s}_s" for m in LATENCY_METRICS for s in ("mean", "p50", "p95", "p99")] + [
    "cold_import_s", "cold_load_s", "cold_first_token_s", "cold_total_s"]
RATE_COLUMNS = ["prefill_tokens_per_s", "decode_tokens_per_s"]
RESOURCE_COLUMNS = ["peak_rss_mb", "model_bytes"]


def concurrency_levels(df: pd.DataFrame) -> list[int]:
    """The concurrency levels a benchmark table measured (its `c<N>_requests_per_s` columns)."""
    return sorted(int(m[1]) for c in df.columns if (m := re.fullmatch(r"c(\d+)_requests_per_s", c)))


def benchmark_columns(concurrency: list[int]) -> list[str]:
    rates = RATE_COLUMNS + [f"c{c}_{k}" for c in concurrency for k in ("requests_per_s", "output_tokens_per_s")]
    return ["variant", *QUALITY_COLUMNS, *TIME_COLUMNS, *rates, *RESOURCE_COLUMNS]


def validate_benchmark_sanity(df: pd.DataFrame, concurrency: list[int]) -> Validation:
    """Schema and types, no NaN, non-negative times and rates, p50 <= p95 <= p99 for every latency."""
    import great_expectations as gx

    E = gx.expectations
    columns = benchmark_columns(concurrency)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        return Validation(False, [f"benchmark table is missing columns {missing}"], [])
    numeric = [c for c in columns if c != "variant"]
    exps: list = [E.ExpectTableRowCountToBeBetween(min_value=1),
                  E.ExpectColumnValuesToNotBeNull(column="variant")]
    for c in numeric:
        exps.append(E.ExpectColumnValuesToBeInTypeList(column=c, type_list=["float64", "int64", "float32", "int32"]))
        exps.append(E.ExpectColumnValuesToNotBeNull(column=c))  # NaN is null to pandas
        exps.append(E.ExpectColumnValuesToBeBetween(column=c, min_value=0))
    for m in LATENCY_METRICS:
        for lo, hi in (("p50", "p95"), ("p95", "p99")):
            exps.append(E.ExpectColumnPairValuesAToBeGreaterThanB(column_A=f"{m}_{hi}_s", column_B=f"{m}_{lo}_s",
                                                                  or_equal=True))
    return run_suite(df, "benchmark_sanity", exps)


def validate_quality_budget(df: pd.DataFrame, budget) -> Validation:
    """Every row within the quality budget (a `core.quality.QualityBudget`)."""
    import great_expectations as gx

    E = gx.expectations
    missing = [c for c in ("kl_mean", "ppl_increase_pct", "top1_agreement_pct") if c not in df.columns]
    if missing:
        return Validation(False, [f"benchmark table is missing quality columns {missing}"], [])
    return run_suite(df, "quality_budget", [
        E.ExpectColumnValuesToBeBetween(column="kl_mean", max_value=budget.max_kl),
        E.ExpectColumnValuesToBeBetween(column="ppl_increase_pct", max_value=budget.max_ppl_increase_pct),
        E.ExpectColumnValuesToBeBetween(column="top1_agreement_pct", min_value=budget.min_top1_agreement_pct),
    ])
