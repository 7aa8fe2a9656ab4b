"""The one Definitions object loads, wires every asset and check to real resources, and
the env switches pick the S3 store and a remote MLflow."""
from __future__ import annotations

import dagster as dg

from llm_assets import definitions
from resources.artifact_store import LocalArtifactStore, S3ArtifactStore


def test_definitions_load_and_wire_everything():
    defs = definitions.defs
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"prompt_corpus", "base_model"} <= keys
    assert defs.resolve_job_def("lifecycle") is not None
    checks = {c.name for c in repo.asset_graph.asset_check_keys}
    assert "prompt_corpus_is_valid" in checks
    spec = repo.asset_graph.get(dg.AssetKey("base_model"))
    assert spec.pools == {"model_heavy"}


def test_env_selects_artifact_store_and_mlflow(monkeypatch):
    monkeypatch.delenv("LLMOPS_S3_BUCKET", raising=False)
    assert isinstance(definitions.artifact_store_from_env(), LocalArtifactStore)
    monkeypatch.setenv("LLMOPS_S3_BUCKET", "b")
    monkeypatch.setenv("LLMOPS_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    store = definitions.artifact_store_from_env()
    assert isinstance(store, S3ArtifactStore) and store.endpoint_url == "http://127.0.0.1:9"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert definitions.mlflow_from_env().tracking_uri == "http://127.0.0.1:5000"
