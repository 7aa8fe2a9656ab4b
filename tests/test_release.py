"""Champion selection and the MLflow registry; the deployed endpoint as a detached process,
blue/green with a real smoke test, rollback on failure; the one-line CLI."""
from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import httpx
import pandas as pd
import pytest

from llm_assets.assets.common import read_latest
from llm_assets.assets.deployment import deployed_endpoint
from llm_assets.assets.registry import champion_model
from llm_assets.core.selection import SLO, rank_candidates
from resources.deploy_target import LocalServerlessTarget
from resources.mlflow_tracking import MLflowTracking
from tests.support import free_port


def test_rank_candidates_keeps_and_rejects_with_reasons():
    df = pd.DataFrame([
        {"variant": "a", "gate_passed": True, "ttft_p95_s": 0.2, "decode_tokens_per_s": 50, "kl_mean": 0.1,
         "e2e_p95_s": 1.0},
        {"variant": "b", "gate_passed": True, "ttft_p95_s": 0.1, "decode_tokens_per_s": 80, "kl_mean": 0.2,
         "e2e_p95_s": 0.5},
        {"variant": "c", "gate_passed": False, "gate_failures": "kl_mean 1.4 > max_kl 0.5", "ttft_p95_s": 0.05,
         "decode_tokens_per_s": 99, "kl_mean": 1.4, "e2e_p95_s": 0.2},
        {"variant": "d", "gate_passed": True, "ttft_p95_s": 3.0, "decode_tokens_per_s": 2, "kl_mean": 0.0,
         "e2e_p95_s": 4.0},
    ])
    t = rank_candidates(df, SLO(max_ttft_p95_s=2.0, min_decode_tokens_per_s=5), "latency")
    assert list(t["variant"]) == ["b", "a", "c", "d"] and list(t["eligible"]) == [True, True, False, False]
    reasons = dict(zip(t["variant"], t["reason"]))
    assert "failed the quality gate: kl_mean 1.4 > max_kl 0.5" in reasons["c"]
    assert "ttft_p95 3.000s > SLO 2.0s" in reasons["d"] and "decode 2.0 tok/s < SLO 5" in reasons["d"]
    # A stricter KL SLO changes the pick; "cost" falls back to latency while no cost column exists.
    t = rank_candidates(df, SLO(max_kl=0.15), "cost")
    assert t.iloc[0]["variant"] == "a" and "e2e_p95_s" in t.columns


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    return MLflowTracking(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "mlruns"),
                          experiment="release-tests")


def _champion(store, registry, **config):
    return dg.materialize([champion_model], resources={"artifact_store": store, "mlflow": registry},
                          run_config={"ops": {"champion_model": {"config": config}}}, raise_on_error=False)


def _versions(registry):
    return registry.client().search_model_versions(f"name='{registry.registered_model}'")


def test_champion_registration_aliases_and_no_op(benchmark_store, registry):
    store, _ = benchmark_store
    first = _champion(store, registry, max_kl=0.0)  # only the reference has KL exactly 0
    assert first.success
    md = first.asset_materializations_for_node("champion_model")[0].metadata
    assert md["champion"].value == "torch-fp32" and md["changed"].value is True
    champ = registry.get_alias("champion")
    comp = read_latest(store, "compressed_model", "torch-fp32")
    assert champ.tags["variant"] == "torch-fp32" and champ.tags["variant_digest"] == comp["digest"]
    assert champ.tags["base_sha256"] == comp["base_sha256"] and champ.tags["benchmark_run_id"]
    assert champ.source == store.uri(comp["prefix"])

    again = _champion(store, registry, max_kl=0.0)
    assert again.asset_materializations_for_node("champion_model")[0].metadata["changed"].value is False
    assert len(_versions(registry)) == 1

    second = _champion(store, registry)  # all gated variants: the fastest p95 wins (an ONNX one here)
    md2 = second.asset_materializations_for_node("champion_model")[0].metadata
    assert md2["champion"].value != "torch-fp32"
    assert registry.get_alias("champion").version == md2["version"].value
    assert registry.get_alias("previous").version == champ.version
    assert "| variant" in md2["candidates"].value


def test_nothing_eligible_fails_and_leaves_registry_alone(benchmark_store, registry):
    store, _ = benchmark_store
    before = (len(_versions(registry)), registry.get_alias("champion"))
    result = _champion(store, registry, max_ttft_p95_s=1e-9)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data
    text = failure.user_failure_data.description
    assert "no variant is eligible, registry untouched" in text and "ttft_p95" in text and "torch-fp32" in text
    after = (len(_versions(registry)), registry.get_alias("champion"))
    assert after[0] == before[0] and after[1].version == (before[1].version if before[1] else None)


def test_deployed_endpoint_blue_green_rollback_and_cli(benchmark_store, tmp_path):
    store, _ = benchmark_store
    registry = MLflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                              artifact_root=str(tmp_path / "mlruns"), experiment="deploy-tests")
    target = LocalServerlessTarget(deploy_dir=str(tmp_path / "deploy"), port=free_port(), min_warm=1,
                                   idle_timeout_s=60)
    resources = {"artifact_store": store, "mlflow": registry, "deploy_target": target}
    try:
        assert dg.materialize([champion_model], resources=resources).success
        result = dg.materialize([deployed_endpoint], resources=resources)
        md = result.asset_materializations_for_node("deployed_endpoint")[0].metadata
        champ = registry.get_alias("champion")
        url = md["url"].value
        assert url == f"http://127.0.0.1:{target.port}"
        assert md["version"].value == f"{registry.registered_model}-v{champ.version}"
        assert md["cold_start_s"].value > 0 and md["sample_answer"].value
        assert registry.get_alias("deployed").version == champ.version
        health = httpx.get(f"{url}/health").json()
        assert health["deployment"]["version"] == md["version"].value and health["warm_instances"] == 1
        pid = int((tmp_path / "deploy" / "gateway.pid").read_text())
        os.kill(pid, 0)  # a detached process that outlives the run

        # A champion whose model cannot load: its files match their manifest, so only the smoke test
        # can catch it. The old version keeps serving and no alias moves.
        broken = tmp_path / "broken"
        good = store.get_dir(champ.tags["prefix"])
        broken.mkdir()
        for p in good.iterdir():
            if p.is_file() and not p.name.endswith(".sha256") and p.name != "MANIFEST.json":
                (broken / p.name).write_bytes(p.read_bytes())
        weights = "model.onnx" if (broken / "model.onnx").exists() else "model.safetensors"
        (broken / weights).write_bytes(b"not a model")
        store.put_dir("broken/champion", broken)
        with registry.run("test") as run:
            bad_version, _ = registry.register_champion(store.uri("broken/champion"), run.run_id,
                                                        {**champ.tags, "prefix": "broken/champion"})
        failed = dg.materialize([deployed_endpoint], resources=resources, raise_on_error=False)
        assert not failed.success
        err = next(e for e in failed.all_events if e.is_step_failure).step_failure_data.user_failure_data
        assert "smoke test of" in err.description and "rolled back: deploy-tests-llm-v1 keeps serving" in err.description
        assert httpx.get(f"{url}/health").json()["deployment"]["version"] == md["version"].value
        assert registry.get_alias("deployed").version == champ.version != bad_version
        ok = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}],
                                                            "max_tokens": 4})
        assert ok.status_code == 200 and ok.headers["x-llmops-model-version"] == md["version"].value

        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        cli = [sys.executable, "-m", "serving.cli", "--deploy-dir", str(tmp_path / "deploy")]
        out = subprocess.run([*cli, "ask", "What is the capital of France?", "--max-tokens", "8"],
                             capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        same = httpx.post(f"{url}/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 8}).json()
        assert out.stdout == same["choices"][0]["message"]["content"] + "\n"
        stop = subprocess.run([*cli, "stop"], capture_output=True, text=True, env=env, timeout=60)
        assert stop.stdout.strip() == "stopped"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/health", timeout=2)
    finally:
        target.stop()


def test_champion_is_the_build_that_was_benchmarked(benchmark_store, tmp_path):
    import shutil

    from llm_assets.assets.common import publish_latest
    from resources.artifact_store import LocalArtifactStore

    store, _ = benchmark_store
    own = LocalArtifactStore(root=str(tmp_path / "store"))
    shutil.copytree(store.root, own.root)
    measured = read_latest(own, "compressed_model", "torch-fp32")
    # compressed_model rebuilt (say, from a new base) after the benchmark ran: not yet measured.
    publish_latest(own, "compressed_model", {**measured, "prefix": "compressed_model/torch-fp32/unmeasured",
                                             "digest": "0" * 64}, partition="torch-fp32")
    reg = MLflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "mlruns"),
                         experiment="measured-build")
    assert _champion(own, reg, max_kl=0.0).success
    champ = reg.get_alias("champion")
    assert champ.tags["prefix"] == measured["prefix"] and champ.tags["variant_digest"] == measured["digest"]
