"""The endpoint on 127.0.0.1 with the tiny model: every route streaming and not, bad input
answered with the right 4xx (and the server still serving), admission control, scale to zero,
warm pools, API keys, the traffic log, and blue/green switching with rollback."""
from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from llm_assets.assets.common import read_latest
from llm_assets.core.engine import SamplingParams, load_engine
from tests.serving_harness import RunningGateway

CHAT = {"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 12}


@pytest.fixture(scope="module")
def model_dirs(variant_store):
    store, _ = variant_store
    return {v: store.get_dir(read_latest(store, "compressed_model", v)["prefix"])
            for v in ("onnx-int4", "onnx-int8", "onnx-fp32")}


@pytest.fixture(scope="module")
def gw(model_dirs, tmp_path_factory):
    with RunningGateway(tmp_path_factory.mktemp("deploy"), model_dirs["onnx-int4"], min_warm=0, max_instances=2,
                        max_queue=4, idle_timeout_s=30, max_body_bytes=64 * 1024) as g:
        yield g


def _sse(resp) -> list[dict | str]:
    out = []
    for line in resp.iter_lines():
        if line.startswith("data: "):
            payload = line[6:]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_every_route_streaming_and_not(gw, model_dirs):
    r = gw.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "v1"
    assert body["usage"]["completion_tokens"] >= 1
    assert r.headers["x-llmops-model-version"] == "v1"
    # The text is exactly what the engine produces in-process for the same request.
    engine = load_engine(model_dirs["onnx-int4"])
    expected = engine.chat(CHAT["messages"], SamplingParams(max_new_tokens=12))
    assert body["choices"][0]["message"]["content"] == expected.text
    assert body["usage"]["completion_tokens"] == expected.output_tokens
    assert body["usage"]["prompt_tokens"] == expected.prompt_tokens

    with gw.client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as s:
        assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
        events = _sse(s)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == expected.text
    streamed = gw.traffic.rows()[-1]
    assert streamed["output_tokens"] == expected.output_tokens and streamed["status"] == 200

    r = gw.client.post("/v1/completions", json={"prompt": "The capital of France is", "max_tokens": 6})
    assert r.status_code == 200 and r.json()["object"] == "text_completion"
    text = r.json()["choices"][0]["text"]
    with gw.client.stream("POST", "/v1/completions",
                          json={"prompt": "The capital of France is", "max_tokens": 6, "stream": True}) as s:
        events = _sse(s)
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == text

    assert gw.client.get("/v1/models").json()["data"][0]["id"] == "v1"
    assert gw.client.get("/health").json()["status"] == "ok"
    metrics = gw.client.get("/metrics").text
    assert 'llmops_requests_total{endpoint="chat",status="200"} 2.0' in metrics
    assert "llmops_ttft_seconds_bucket" in metrics and 'le="60.0"' in metrics
    assert "llmops_cold_starts_total" in metrics and "llmops_queue_depth" in metrics
    assert "llmops_warm_instances" in metrics


def test_stop_strings_cut_the_output(gw):
    full = gw.client.post("/v1/completions", json={"prompt": "Write a Python function", "max_tokens": 16}).json()
    text = full["choices"][0]["text"]
    if len(text) < 4:
        pytest.fail(f"tiny model produced too little text to test stop strings: {text!r}")
    stop = text[2:4]
    cut = gw.client.post("/v1/completions", json={"prompt": "Write a Python function", "max_tokens": 16,
                                                  "stop": [stop]}).json()
    assert cut["choices"][0]["text"] == text[: text.find(stop)]
    assert cut["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("body, headers, status, message", [
    (json.dumps({"messages": []}).encode(), {}, 422, "invalid request"),
    (json.dumps({**CHAT, "max_tokens": 0}).encode(), {}, 422, "max_tokens"),
    (json.dumps({**CHAT, "temperature": -1}).encode(), {}, 422, "temperature"),
    (json.dumps([1, 2]).encode(), {}, 422, "JSON object"),
    (b'{"messages": [', {}, 400, "not valid JSON"),
    (b'{"prompt": "caf\xff"}', {}, 400, "not valid UTF-8"),
    (b'{"prompt": "lone \\ud800 surrogate"}', {}, 400, "surrogates"),
    (json.dumps({"prompt": "word " * 600, "max_tokens": 8}).encode(), {}, 400, "context window of 512"),
    (b'{"prompt": "' + b"a" * (70 * 1024) + b'"}', {}, 413, "exceeds the limit"),
], ids=["empty-messages", "max-tokens-0", "negative-temperature", "not-object", "bad-json", "bad-utf8",
        "surrogate", "context-window", "too-large"])
def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(gw, body, headers, status, message):
    path = "/v1/completions" if b'"prompt"' in body else "/v1/chat/completions"
    r = gw.client.post(path, content=body, headers={"content-type": "application/json", **headers})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"]
    ok = gw.client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2})
    assert ok.status_code == 200


def test_admission_control_caps_concurrency(gw):
    before = len(gw.traffic.rows())
    body = {"prompt": "Write a Python function that reverses a string.", "max_tokens": 300}

    def call(_):
        with httpx.Client(base_url=gw.url, timeout=60) as c:
            return c.post("/v1/completions", json=body)

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(call, range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 2 and statuses.count(429) >= 1, statuses
    assert all(r.headers.get("retry-after") for r in responses if r.status_code == 429)
    assert gw.admin("GET", "/admin/status").json()["peak_busy"] == 2  # never more than the cap decoding
    rows = gw.traffic.rows()[before:]
    assert len(rows) == 20 and sorted(r["status"] for r in rows) == statuses  # none lost


def test_api_keys_and_private_rejections(model_dirs, tmp_path):
    with RunningGateway(tmp_path, model_dirs["onnx-int4"], api_keys=["sk-test-1"]) as g:
        assert g.client.post("/v1/chat/completions", json=CHAT).status_code == 401
        assert g.client.post("/v1/chat/completions", json=CHAT,
                             headers={"Authorization": "Bearer nope"}).status_code == 401
        assert g.client.get("/v1/models").status_code == 401
        ok = g.client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer sk-test-1"})
        assert ok.status_code == 200
        rows = g.traffic.rows()
        assert [r["status"] for r in rows] == [401, 401, 200]
        assert rows[0]["prompt"] is None and rows[0]["prompt_sha256"] is None  # rejected: prompt not logged
        assert rows[2]["prompt"] == CHAT["messages"][0]["content"]


def test_traffic_log_rows_and_privacy(model_dirs, tmp_path):
    with RunningGateway(tmp_path, model_dirs["onnx-int4"], store_prompts=False) as g:
        assert g.client.post("/v1/chat/completions", json=CHAT).status_code == 200
        row = g.traffic.rows()[-1]
    assert row["status"] == 200 and row["cold"] == 1 and row["model_version"] == "v1"
    assert row["variant"] == "onnx-int4" and row["prompt_tokens"] > 0 and row["output_tokens"] >= 1
    assert 0 < row["ttft_s"] <= row["e2e_s"]
    assert row["prompt"] is None and len(row["prompt_sha256"]) == 64
    assert (tmp_path / "traffic.sqlite").is_file()


def test_scale_to_zero_and_cold_flag(model_dirs, tmp_path):
    with RunningGateway(tmp_path, model_dirs["onnx-int4"], min_warm=0, idle_timeout_s=0.5) as g:
        assert g.warm() == 0
        first = g.client.post("/v1/chat/completions", json=CHAT)
        second = g.client.post("/v1/chat/completions", json=CHAT)
        assert first.headers["x-llmops-cold-start"] == "true" and second.headers["x-llmops-cold-start"] == "false"
        g.wait_for(lambda: g.warm() == 0, what="scale to zero")
        procs = [w.proc for w in g.pool.workers]
        assert procs == [] and g.pool.status()["workers"] == []
        third = g.client.post("/v1/chat/completions", json=CHAT)
        assert third.headers["x-llmops-cold-start"] == "true"
        assert "llmops_cold_starts_total 2.0" in g.client.get("/metrics").text


def test_min_warm_means_no_cold_request(model_dirs, tmp_path):
    with RunningGateway(tmp_path, model_dirs["onnx-int4"], min_warm=1, idle_timeout_s=0.3) as g:
        g.wait_for(lambda: g.warm() == 1, what="the warm worker")
        for _ in range(3):
            r = g.client.post("/v1/chat/completions", json=CHAT)
            assert r.headers["x-llmops-cold-start"] == "false"
        time.sleep(0.8)  # past idle_timeout_s: the provisioned worker stays
        assert g.warm() == 1
        assert g.client.post("/v1/chat/completions", json=CHAT).headers["x-llmops-cold-start"] == "false"


def test_timeout_gives_504_and_the_worker_still_comes_up(model_dirs, tmp_path):
    # A cold start (process spawn, Python, numpy and ONNX Runtime imports, session) takes far longer than
    # 0.1 s; a warm one-token request on the tiny model takes a few milliseconds.
    with RunningGateway(tmp_path, model_dirs["onnx-int4"], min_warm=0, request_timeout_s=0.1) as g:
        r = g.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 504 and "timeout" in r.json()["error"]["message"]
        g.wait_for(lambda: g.warm() == 1, what="the worker the timed-out request started")
        ok = g.client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 1})
        assert ok.status_code == 200 and ok.headers["x-llmops-cold-start"] == "false"


def test_blue_green_switch_and_rollback(model_dirs, tmp_path):
    with RunningGateway(tmp_path, model_dirs["onnx-int4"], min_warm=1) as g:
        g.wait_for(lambda: g.warm() == 1, what="the blue worker")
        blue_port = g.pool.live()[0].port
        r = g.admin("POST", "/admin/deploy", json={"model_dir": str(model_dirs["onnx-int8"]), "version": "v2",
                                                   "variant": "onnx-int8"})
        assert r.status_code == 200, r.text
        assert r.json()["previous_version"] == "v1" and r.json()["cold_start_s"] > 0
        assert [w.port for w in g.pool.live()] != [blue_port]
        answer = g.client.post("/v1/chat/completions", json=CHAT)
        assert answer.headers["x-llmops-model-version"] == "v2"
        assert all(w.deployment.version == "v2" for w in g.pool.workers)  # blue drained and stopped

        broken = tmp_path / "broken"
        shutil.copytree(model_dirs["onnx-fp32"], broken)
        data = bytearray((broken / "model.onnx").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (broken / "model.onnx").write_bytes(bytes(data))
        r = g.admin("POST", "/admin/deploy", json={"model_dir": str(broken), "version": "v3", "variant": "onnx-fp32"})
        assert r.status_code == 409 and "rolled back: v2 keeps serving" in r.json()["error"]["message"]
        assert "corrupted" in r.json()["error"]["message"]
        after = g.client.post("/v1/chat/completions", json=CHAT)
        assert after.status_code == 200 and after.headers["x-llmops-model-version"] == "v2"
        assert g.admin("POST", "/admin/deploy", json={}).status_code == 422
        assert g.client.post("/admin/deploy", json={}).status_code == 401


def test_worker_internal_api_rejects_bad_requests(model_dirs):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "serving.worker", "--model-dir", str(model_dirs["onnx-int4"]),
                             "--version", "w1", "--variant", "onnx-int4"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        port = int(proc.stdout.readline().split()[1])
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/health").json()["version"] == "w1"
        for body in (b"not json", b'{"prompt_ids": [], "max_tokens": 3}', b'{"prompt_ids": [1, "x"], "max_tokens": 3}',
                     b'{"prompt_ids": [1, 2], "max_tokens": 0}', b'{"prompt_ids": [1], "max_tokens": 2, "top_p": 5}'):
            r = httpx.post(f"{url}/generate", content=body)
            assert r.status_code == 422 and r.json()["error"], body
        assert httpx.get(f"{url}/nope").status_code == 404
        lines = httpx.post(f"{url}/generate", json={"prompt_ids": [5, 6, 7], "max_tokens": 3}).text.splitlines()
        events = [json.loads(x) for x in lines]
        assert len(events) == 4 and events[-1]["done"] and events[-1]["output_tokens"] == 3
    finally:
        proc.terminate()
        proc.wait(10)
