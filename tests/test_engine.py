"""The decode engine on the tiny model's variants: ONNX matches torch step by step through the
KV cache, sampling is seeded, stop/max tokens and streaming behave, corruption is caught."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from llm_assets.assets.common import read_latest
from llm_assets.core.engine import ContextLengthError, SamplingParams, load_engine
from llm_assets.core.hashing import IntegrityError

CHAT = [{"role": "user", "content": "Summarize the following text in one sentence. The town opened a library."}]


def _dir(store, variant):
    return store.get_dir(read_latest(store, "compressed_model", variant)["prefix"])


@pytest.fixture(scope="module")
def engines(variant_store):
    store, _ = variant_store
    return {v: load_engine(_dir(store, v)) for v in ("torch-fp32", "onnx-fp32", "onnx-int8", "onnx-int4")}


def test_onnx_fp32_logits_match_torch_at_every_step(engines):
    torch_e, onnx_e = engines["torch-fp32"], engines["onnx-fp32"]
    prompt = torch_e.encode_chat(CHAT)
    run = torch_e.generate(prompt, SamplingParams(max_new_tokens=32, stop_token_ids=[]))
    assert run.output_tokens == 32
    ref = torch_e.logits_stepwise(prompt, run.token_ids)
    got = onnx_e.logits_stepwise(prompt, run.token_ids)
    assert ref.shape == got.shape == (33, torch_e.vocab_size)
    np.testing.assert_allclose(got, ref, atol=2e-4, rtol=1e-3)
    # The greedy loop picks the argmax of exactly these logits at every step.
    assert list(ref[:-1].argmax(-1)) == run.token_ids


def test_kv_cache_decode_equals_one_full_pass(engines):
    for e in (engines["onnx-fp32"], engines["torch-fp32"]):
        prompt = e.encode_chat(CHAT)
        cont = e.generate(prompt, SamplingParams(max_new_tokens=12, stop_token_ids=[])).token_ids
        full = e.logits(prompt + cont)[len(prompt) - 1:]
        np.testing.assert_allclose(e.logits_stepwise(prompt, cont), full, atol=1e-4, rtol=1e-3)


def test_quantized_variants_stay_close_to_fp32(engines):
    prompt = engines["onnx-fp32"].encode_chat(CHAT)
    ref = engines["onnx-fp32"].logits(prompt)
    for v in ("onnx-int8", "onnx-int4"):
        got = engines[v].logits(prompt)
        assert got.shape == ref.shape and np.isfinite(got).all()
        assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.9, v


def test_seeded_sampling_is_reproducible(engines):
    e = engines["onnx-int8"]
    prompt = e.encode_chat(CHAT)
    p = dict(max_new_tokens=24, temperature=1.0, top_p=0.95, stop_token_ids=[])
    a = e.generate(prompt, SamplingParams(seed=7, **p)).token_ids
    b = e.generate(prompt, SamplingParams(seed=7, **p)).token_ids
    c = e.generate(prompt, SamplingParams(seed=8, **p)).token_ids
    assert a == b
    assert a != c
    greedy = e.generate(prompt, SamplingParams(max_new_tokens=24, stop_token_ids=[])).token_ids
    # A nucleus so small it holds one token is greedy, whatever the seed.
    assert e.generate(prompt, SamplingParams(max_new_tokens=24, temperature=1.0, top_p=1e-9, seed=3,
                                             stop_token_ids=[])).token_ids == greedy


def test_stop_tokens_and_max_tokens(engines):
    e = engines["onnx-fp32"]
    prompt = e.encode_chat(CHAT)
    free = e.generate(prompt, SamplingParams(max_new_tokens=20, stop_token_ids=[]))
    assert free.finish_reason == "length" and free.output_tokens == 20
    stop = free.token_ids[5]
    first = free.token_ids.index(stop)
    cut = e.generate(prompt, SamplingParams(max_new_tokens=20, stop_token_ids=[stop]))
    assert cut.finish_reason == "stop"
    assert cut.token_ids == free.token_ids[:first]
    short = e.generate(prompt, SamplingParams(max_new_tokens=7, stop_token_ids=[]))
    assert short.output_tokens == 7 and short.token_ids == free.token_ids[:7]
    # The model's EOS (<|im_end|>) is a stop token by default.
    assert e.tokenizer.token_id("<|im_end|>") in e.eos_token_ids


def test_streaming_callback_sees_every_token_in_order(engines):
    e = engines["onnx-int4"]
    seen: list[tuple[int, str]] = []
    out = e.chat(CHAT, SamplingParams(max_new_tokens=16, stop_token_ids=[]), on_token=lambda t, s: seen.append((t, s)))
    assert [t for t, _ in seen if t >= 0] == out.token_ids  # every token, in order
    assert "".join(s for _, s in seen) == out.text
    assert out.ttft_s <= out.token_times_s[-1] <= out.total_s
    assert out.token_times_s == sorted(out.token_times_s)


def test_context_window_is_enforced(engines):
    e = engines["onnx-fp32"]
    with pytest.raises(ContextLengthError, match="exceeds the context window of 512"):
        e.generate([5] * 500, SamplingParams(max_new_tokens=20))
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingParams(max_new_tokens=0)


def test_corrupted_variant_file_fails_clearly(variant_store, tmp_path):
    store, _ = variant_store
    copy = tmp_path / "int8"
    shutil.copytree(_dir(store, "onnx-int8"), copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"model\.onnx is corrupted: sha256"):
        load_engine(copy)


def test_optimized_session_is_cached_and_reused(variant_store, tmp_path):
    store, _ = variant_store
    d = _dir(store, "onnx-int4")
    first = load_engine(d, cache_dir=tmp_path)
    second = load_engine(d, cache_dir=tmp_path)
    assert (first.load_info.optimized_cache, second.load_info.optimized_cache) == ("created", "reused")
    assert len(list(tmp_path.glob("*.onnx"))) == 1
    ids = first.encode_chat(CHAT)
    np.testing.assert_allclose(first.logits(ids), second.logits(ids), atol=1e-5)
