"""Shared fixtures: the tiny llama model, real resources in temp dirs, moto S3 on loopback.

The tiny model is a real LlamaForCausalLM (2 layers, hidden 64) with a BPE
tokenizer trained here on the shipped prompts and a ChatML chat template, so
every code path that runs on SmolLM2 runs on it too, in seconds.
"""
from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# State the code writes by default (ORT optimized-model cache, S3 download cache) stays out of the repo.
os.environ["LLMOPS_HOME"] = tempfile.mkdtemp(prefix="llmops-test-home-")

import pytest  # noqa: E402

from tests.support import build_tiny_model, free_port  # noqa: E402,F401  (re-exported for tests)

@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_llama")
    build_tiny_model(out)
    return out


@pytest.fixture
def artifact_store(tmp_path):
    from resources.artifact_store import LocalArtifactStore

    return LocalArtifactStore(root=str(tmp_path / "artifacts"))


@pytest.fixture(scope="session")
def mlflow_tracking(tmp_path_factory):
    """A real MLflow SQLite store, shared by the session (creating its schema takes seconds)."""
    from resources.mlflow_tracking import MLflowTracking

    root = tmp_path_factory.mktemp("mlflow")
    return MLflowTracking(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "mlruns"),
                          experiment="llmops-tests")


@pytest.fixture(scope="session")
def moto_s3():
    """moto in server mode on 127.0.0.1: a real HTTP S3 endpoint that boto3 talks to over loopback."""
    from moto.server import ThreadedMotoServer

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(k, v)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def variant_store(tmp_path_factory, tiny_model_dir, mlflow_tracking):
    """Every variant of the tiny model, materialized once through Dagster into one store.

    Returns (store, {variant: materialization metadata}).
    """
    import dagster as dg

    from llm_assets.assets.compression import CATALOGUE, compressed_model
    from llm_assets.assets.model import base_model
    from resources.artifact_store import LocalArtifactStore

    store = LocalArtifactStore(root=str(tmp_path_factory.mktemp("variant_store")))
    resources = {"artifact_store": store, "mlflow": mlflow_tracking}
    assert dg.materialize([base_model], resources=resources, run_config={
        "ops": {"base_model": {"config": {"source": str(tiny_model_dir)}}}}).success
    metadata = {}
    for variant in CATALOGUE.names:
        result = dg.materialize([compressed_model], partition_key=variant, resources=resources, run_config={
            "ops": {"compressed_model": {"config": {"thread_candidates": [1, 2], "sweep_tokens": 8}}}})
        assert result.success
        metadata[variant] = result.asset_materializations_for_node("compressed_model")[0].metadata
    return store, metadata


BENCH_CONFIG = {"quality_samples": 8, "match_tokens": 8, "latency_requests": 4, "max_new_tokens": 8,
                "concurrency": [1, 2, 4], "throughput_requests": 4, "cold_start_runs": 1}


@pytest.fixture(scope="session")
def benchmark_store(variant_store, mlflow_tracking):
    """benchmark_results (with its blocking checks) for every tiny variant, materialized once.

    Returns (store, {variant: ExecuteInProcessResult})."""
    import dagster as dg

    from llm_assets.assets.benchmark import benchmark_results
    from llm_assets.assets.compression import CATALOGUE
    from llm_assets.assets.model import prompt_corpus
    from llm_assets.checks import benchmark_results_are_sane, benchmark_results_within_quality_budget

    store, _ = variant_store
    resources = {"artifact_store": store, "mlflow": mlflow_tracking}
    assert dg.materialize([prompt_corpus], resources=resources).success
    results = {}
    for variant in CATALOGUE.names:
        results[variant] = dg.materialize(
            [benchmark_results, benchmark_results_are_sane, benchmark_results_within_quality_budget],
            partition_key=variant, resources=resources, raise_on_error=False,
            run_config={"ops": {"benchmark_results": {"config": BENCH_CONFIG}}})
    return store, results
