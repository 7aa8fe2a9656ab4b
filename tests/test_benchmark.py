"""benchmark_results on the tiny model: every column measured and plausible, the reference
scores itself perfectly, onnx-fp32 matches it, and the blocking GX checks stop a variant whose
weights were broken (naming the metric and the budget) or a table with NaN / p95 < p50."""
from __future__ import annotations

import io
import re
import shutil

import dagster as dg
import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import numpy_helper

from llm_assets.assets.benchmark import benchmark_results, latest_results
from llm_assets.assets.common import publish_latest, read_latest
from llm_assets.assets.compression import CATALOGUE
from llm_assets.checks import benchmark_results_are_sane, benchmark_results_within_quality_budget
from llm_assets.core.validation import benchmark_columns, validate_benchmark_sanity, validate_quality_budget
from resources.artifact_store import LocalArtifactStore
from tests.conftest import BENCH_CONFIG


def _evals(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_every_variant_has_a_complete_plausible_row(benchmark_store):
    store, results = benchmark_store
    df = latest_results(store).set_index("variant")
    assert set(df.index) == set(CATALOGUE.names)
    for col in benchmark_columns(BENCH_CONFIG["concurrency"]):
        if col != "variant":
            assert df[col].notna().all(), col
    for m in ("ttft", "tpot", "itl", "e2e"):
        assert (df[f"{m}_p50_s"] > 0).all()
        assert (df[f"{m}_p50_s"] <= df[f"{m}_p95_s"]).all() and (df[f"{m}_p95_s"] <= df[f"{m}_p99_s"]).all()
    assert (df["e2e_p50_s"] > df["ttft_p50_s"]).all()
    assert (df["decode_tokens_per_s"] > 0).all() and (df["c4_output_tokens_per_s"] > 0).all()
    assert (df["peak_rss_mb"] > 10).all() and (df["cold_total_s"] > df["cold_first_token_s"]).all()
    assert (df["model_bytes"] > 0).all()
    # The reference scores itself perfectly; the fp32 export is numerically the same model.
    ref = df.loc["torch-fp32"]
    assert ref["kl_mean"] == 0 and ref["top1_agreement_pct"] == 100 and ref["greedy_exact_match_pct"] == 100
    assert ref["perplexity"] == pytest.approx(ref["reference_perplexity"])
    fp32 = df.loc["onnx-fp32"]
    assert fp32["kl_mean"] < 1e-5 and fp32["top1_agreement_pct"] >= 99
    assert abs(fp32["ppl_increase_pct"]) < 0.01
    for v in ("onnx-int8", "onnx-int4"):
        assert df.loc[v, "kl_mean"] > fp32["kl_mean"]
    # The reference and the fp32 export pass both blocking checks.
    for v in ("torch-fp32", "onnx-fp32"):
        evals = _evals(results[v])
        assert set(evals) == {"benchmark_results_are_sane", "benchmark_results_within_quality_budget"}
        assert all(e.passed for e in evals.values()), v
        assert read_latest(store, "benchmark_results", v)["gate_passed"] is True


def test_materialization_shows_table_and_plot(benchmark_store):
    _, results = benchmark_store
    md = results["onnx-int4"].asset_materializations_for_node("benchmark_results")[0].metadata
    assert "| variant" in md["all_variants"].value
    assert md["quality_vs_latency"].value.startswith("![quality vs latency](data:image/png;base64,")
    assert md["ttft_p95_s"].value > 0


def test_broken_variant_fails_the_quality_gate(benchmark_store, tmp_path, mlflow_tracking):
    store, _ = benchmark_store
    own = LocalArtifactStore(root=str(tmp_path / "store"))
    shutil.copytree(store.root, own.root)
    # Perturb every weight matrix of onnx-fp32 and publish it as that variant.
    info = read_latest(own, "compressed_model", "onnx-fp32")
    broken = tmp_path / "broken"
    shutil.copytree(own.get_dir(info["prefix"]), broken, ignore=shutil.ignore_patterns("MANIFEST.json*", "*.sha256"))
    model = onnx.load(str(broken / "model.onnx"))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.ndim == 2:
            init.CopyFrom(numpy_helper.from_array((w + rng.normal(0, 3 * w.std(), w.shape)).astype(w.dtype),
                                                  init.name))
    onnx.save(model, str(broken / "model.onnx"))
    manifest = own.put_dir("compressed_model/onnx-fp32/broken", broken)
    publish_latest(own, "compressed_model", {**info, "prefix": "compressed_model/onnx-fp32/broken",
                                             "digest": manifest["digest"]}, partition="onnx-fp32")

    result = dg.materialize(
        [benchmark_results, benchmark_results_are_sane, benchmark_results_within_quality_budget],
        partition_key="onnx-fp32", raise_on_error=False,
        resources={"artifact_store": own, "mlflow": mlflow_tracking},
        run_config={"ops": {"benchmark_results": {"config": BENCH_CONFIG}}})
    evals = _evals(result)
    assert evals["benchmark_results_are_sane"].passed
    gate = evals["benchmark_results_within_quality_budget"]
    assert not gate.passed
    budget = CATALOGUE.quality_budget.model_dump()
    latest = read_latest(own, "benchmark_results", "onnx-fp32")
    assert latest["gate_passed"] is False and latest["gate_failures"]
    bound_of = {"kl_mean": "max_kl", "ppl_increase_pct": "max_ppl_increase_pct",
                "top1_agreement_pct": "min_top1_agreement_pct"}
    for failure in latest["gate_failures"]:  # e.g. "top1_agreement_pct 24.6 < min_top1_agreement_pct 65.0"
        m = re.fullmatch(r"(\w+) [-\d.]+ [<>] (\w+) ([\d.]+)", failure)
        assert m and bound_of[m[1]] == m[2] and float(m[3]) == budget[m[2]], failure
        # The GX check names the same metric and the same bound.
        kind = "max_value" if m[2].startswith("max") else "min_value"
        assert f"column={m[1]}, {kind}={budget[m[2]]}" in gate.description
    md = result.asset_materializations_for_node("benchmark_results")[0].metadata
    assert md["gate_passed"].value is False


def _row(store, variant="onnx-fp32"):
    return pd.read_parquet(io.BytesIO(store.get_bytes(read_latest(store, "benchmark_results", variant)["key"])))


def test_nan_or_inverted_percentiles_fail_the_sanity_check(benchmark_store):
    store, _ = benchmark_store
    good = _row(store)
    assert validate_benchmark_sanity(good, BENCH_CONFIG["concurrency"]).success
    nan = good.assign(ttft_p95_s=float("nan"))
    v = validate_benchmark_sanity(nan, BENCH_CONFIG["concurrency"])
    assert not v.success and any("ttft_p95_s" in f for f in v.failures)
    inverted = good.assign(tpot_p95_s=good["tpot_p50_s"] / 2)
    v = validate_benchmark_sanity(inverted, BENCH_CONFIG["concurrency"])
    assert not v.success and any("column_pair" in f and "tpot_p95_s" in f for f in v.failures)
    negative = good.assign(cold_load_s=-1.0)
    assert not validate_benchmark_sanity(negative, BENCH_CONFIG["concurrency"]).success


def test_quality_budget_validation_names_metric_and_bound(benchmark_store):
    store, _ = benchmark_store
    row = _row(store).assign(top1_agreement_pct=10.0)
    v = validate_quality_budget(row, CATALOGUE.quality_budget)
    assert not v.success
    assert any("top1_agreement_pct" in f and f"min_value={CATALOGUE.quality_budget.min_top1_agreement_pct}" in f
               for f in v.failures)


def test_cold_start_probe_measures_its_own_memory_not_the_parents(variant_store):
    from llm_assets.core import measure

    store, _ = variant_store
    d = store.get_dir(read_latest(store, "compressed_model", "onnx-int4")["prefix"])
    ballast = np.ones(200 * 1024 * 1024, dtype=np.float64)  # 1.6 GB resident in this (the parent) process
    cold = measure.cold_start(d, threads=1, runs=1, serve_tokens=4)
    assert ballast.sum() > 0
    assert 20 < cold["cold_peak_rss_mb"] < 1000, cold
    assert 0 < cold["cold_first_token_s"] < cold["cold_total_s"]
    assert cold["cold_import_s"] + cold["cold_load_s"] + cold["cold_first_token_s"] <= cold["cold_total_s"]


def test_concurrency_levels_are_read_from_the_table(benchmark_store):
    from llm_assets.core.validation import concurrency_levels

    store, _ = benchmark_store
    assert concurrency_levels(_row(store)) == sorted(BENCH_CONFIG["concurrency"])
