"""compressed_model on the tiny model: every variant builds, is stored with its manifest,
loads in the engine and generates; the recipe catalogue rejects bad config; rebuilds are reused."""
from __future__ import annotations

import dagster as dg
import numpy as np
import pytest

from llm_assets.assets.common import read_latest
from llm_assets.assets.compression import CATALOGUE, compressed_model
from llm_assets.core.engine import SamplingParams, load_engine
from llm_assets.core.variants import VariantError, load_catalogue


def _dir(store, variant):
    return store.get_dir(read_latest(store, "compressed_model", variant)["prefix"])


def test_every_variant_builds_loads_and_generates(variant_store):
    store, md = variant_store
    assert set(md) == {"torch-fp32", "onnx-fp32", "onnx-int8", "onnx-int8-wo", "onnx-int4"}
    for variant in md:
        d = _dir(store, variant)
        info = store.get_json(read_latest(store, "compressed_model", variant)["prefix"] + "/variant.json")
        assert info["variant"] == variant and info["threads"] in (1, 2)
        assert set(info["thread_sweep_tokens_per_s"]) == {"1", "2"}
        assert all(v > 0 for v in info["thread_sweep_tokens_per_s"].values())
        assert {"onnx", "onnxruntime", "transformers"} <= set(info["tool_versions"])
        engine = load_engine(d)
        assert engine.kind == ("torch" if variant == "torch-fp32" else "onnx")
        assert engine.threads == info["threads"]
        out = engine.chat([{"role": "user", "content": "What is the capital of France?"}],
                          SamplingParams(max_new_tokens=8, stop_token_ids=[]))
        assert out.output_tokens == 8
        assert all(0 <= t < engine.vocab_size for t in out.token_ids)


def _initializer_bytes(path) -> int:
    import onnx
    from onnx import numpy_helper

    return sum(numpy_helper.to_array(i).nbytes for i in onnx.load(str(path)).graph.initializer)


def test_quantized_sizes_shrink_by_the_expected_factors(variant_store):
    store, md = variant_store
    ratio = {v: m["size_ratio_to_fp32"].value for v, m in md.items()}
    assert ratio["torch-fp32"] == pytest.approx(1.0, abs=0.01)
    # On disk the tiny graph's protobuf (node names, shapes) adds ~20 % to its 450 kB of weights.
    assert 1.0 <= ratio["onnx-fp32"] < 1.3
    assert ratio["onnx-int4"] < ratio["onnx-int8-wo"] < ratio["onnx-fp32"]
    size = {v: _initializer_bytes(_dir(store, v) / "model.onnx") for v in md if v != "torch-fp32"}
    # Expected bytes per weight: dynamic int8 1 (every MatMul, the untied head and the embedding
    # Gather); weight-only quantizes only MatMuls (the embedding stays fp32): 8-bit 1 + 4/32 (an fp32
    # scale per block of 32), 4-bit 0.5 + 4/32.
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(_dir(variant_store[0], "torch-fp32"))
    embed = cfg.vocab_size * cfg.hidden_size
    per_layer = (cfg.hidden_size * cfg.hidden_size * 2  # q, o
                 + cfg.hidden_size * (cfg.hidden_size // cfg.num_attention_heads) * cfg.num_key_value_heads * 2
                 + 3 * cfg.hidden_size * cfg.intermediate_size)
    linear = per_layer * cfg.num_hidden_layers + embed  # + the untied LM head
    for variant, embed_bytes, per_weight in (("onnx-int8", 1, 1.0), ("onnx-int8-wo", 4, 1.125),
                                             ("onnx-int4", 4, 0.625)):
        expected = embed_bytes * embed + per_weight * linear
        assert size[variant] == pytest.approx(expected, rel=0.15), (variant, size[variant], expected)
    assert size["onnx-fp32"] == pytest.approx(4 * (embed + linear - embed), rel=0.05)
    assert md["onnx-int4"]["ops"].value["MatMulNBits"] == md["onnx-int8-wo"]["ops"].value["MatMulNBits"] > 0
    assert md["onnx-int8"]["ops"].value["MatMulInteger"] > 0


def test_rebuilding_same_base_and_recipe_is_reused(variant_store, mlflow_tracking):
    store, md = variant_store
    result = dg.materialize([compressed_model], partition_key="onnx-int4",
                            resources={"artifact_store": store, "mlflow": mlflow_tracking})
    again = result.asset_materializations_for_node("compressed_model")[0].metadata
    assert md["onnx-int4"]["reused"].value is False and again["reused"].value is True
    assert again["digest"].value == md["onnx-int4"]["digest"].value


def test_variant_needs_base_model_first(artifact_store, mlflow_tracking):
    result = dg.materialize([compressed_model], partition_key="onnx-fp32", raise_on_error=False,
                            resources={"artifact_store": artifact_store, "mlflow": mlflow_tracking})
    assert not result.success
    err = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert "materialize base_model first" in (err.cause.message if err.cause else err.message)


def test_unknown_variant_names_the_known_ones():
    with pytest.raises(VariantError, match="variant 'onnx-int3' unknown; known: torch-fp32, onnx-fp32, onnx-int8"):
        CATALOGUE.get("onnx-int3")


def test_unknown_option_names_the_known_ones(tmp_path):
    f = tmp_path / "v.yaml"
    f.write_text("reference: a\nvariants:\n  a: {kind: torch}\n  b: {kind: onnx, quantization: weight_only, bitz: 3}\n")
    with pytest.raises(VariantError, match=r"variant 'b'.*unknown option 'bitz' \(known: .*block_size"):
        load_catalogue(f)
    f.write_text("reference: a\nvariants:\n  a: {kind: torch}\n  b: {kind: onnx, quantization: weight_only, bits: 3}\n")
    with pytest.raises(VariantError, match=r"variant 'b'.*bits"):
        load_catalogue(f)
    f.write_text("reference: zz\nvariants:\n  a: {kind: torch}\n")
    with pytest.raises(VariantError, match="reference variant 'zz'"):
        load_catalogue(f)


def test_a_new_variant_is_config_only(tmp_path, monkeypatch):
    f = tmp_path / "v.yaml"
    f.write_text("reference: torch-fp32\nvariants:\n  torch-fp32: {kind: torch}\n"
                 "  onnx-int4-b128: {kind: onnx, quantization: weight_only, bits: 4, block_size: 128}\n")
    cat = load_catalogue(f)
    assert cat.names == ["torch-fp32", "onnx-int4-b128"]
    assert cat.get("onnx-int4-b128").block_size == 128
    # Different options, different stored recipe.
    assert cat.get("onnx-int4-b128").options_digest() != CATALOGUE.get("onnx-int4").options_digest()


def test_weight_only_quantizes_the_untied_head(variant_store):
    store, md = variant_store
    # Untied: every linear layer plus the LM head becomes MatMulNBits (2 layers x 7 + head).
    assert md["onnx-int8-wo"]["ops"].value["MatMulNBits"] == 2 * 7 + 1
    engine = load_engine(_dir(store, "onnx-int8-wo"))
    ref = load_engine(_dir(store, "onnx-fp32"))
    ids = ref.encode_chat([{"role": "user", "content": "Sort these numbers: 3, 1, 2."}])
    a, b = engine.logits(ids), ref.logits(ids)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
