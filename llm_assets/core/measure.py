"""Speed, memory and cold-start measurements of one variant on the decode engine.

Metric definitions follow vLLM's and GuideLLM's benchmarks:
- TTFT, time to first token: request start to the first generated token;
- TPOT, time per output token: (end-to-end - TTFT) / (output tokens - 1), per request;
- ITL, inter-token latency: the gap between consecutive tokens, over every token of every request;
- end-to-end latency: request start to the last token.
Each is reported as mean, p50, p95, p99 (seconds).
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from llm_assets.core.engine import Engine, Generation, SamplingParams
from llm_assets.core.settings import PROJECT_ROOT, subprocess_env

STATS = ("mean", "p50", "p95", "p99")


def summarize(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {k: float("nan") for k in STATS}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"mean": float(a.mean()), "p50": float(p50), "p95": float(p95), "p99": float(p99)}


def latency(engine: Engine, prompts: list[str], max_new_tokens: int,
            progress: Callable[[int, int], None] | None = None) -> dict:
    """One request at a time over `prompts`; every request generates exactly `max_new_tokens`."""
    params = SamplingParams(max_new_tokens=max_new_tokens, stop_token_ids=[])
    engine.chat([{"role": "user", "content": prompts[0]}], SamplingParams(max_new_tokens=2))  # warm-up
    runs: list[Generation] = []
    for i, p in enumerate(prompts):
        runs.append(engine.chat([{"role": "user", "content": p}], params))
        if progress:
            progress(i + 1, len(prompts))
    ttft = [g.ttft_s for g in runs]
    e2e = [g.total_s for g in runs]
    tpot = [(g.total_s - g.ttft_s) / (g.output_tokens - 1) for g in runs if g.output_tokens > 1]
    itl = [b - a for g in runs for a, b in zip(g.token_times_s, g.token_times_s[1:])]
    out = {}
    for name, values in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2e", e2e)):
        out.update({f"{name}_{k}_s": v for k, v in summarize(values).items()})
    out["prefill_tokens_per_s"] = sum(g.prompt_tokens for g in runs) / sum(ttft)
    out["decode_tokens_per_s"] = statistics.mean(g.decode_tokens_per_s for g in runs)
    out["requests"] = len(runs)
    out["output_tokens_per_request"] = max_new_tokens
    return out


def throughput(engine: Engine, prompts: list[str], max_new_tokens: int, concurrency: int) -> dict:
    """`concurrency` requests in flight against ONE shared engine session (ORT sessions and torch
    inference are thread-safe; each request has its own KV cache). Returns requests/s, output tokens/s."""
    params = SamplingParams(max_new_tokens=max_new_tokens, stop_token_ids=[])
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        runs = list(pool.map(lambda p: engine.chat([{"role": "user", "content": p}], params), prompts))
    wall = time.perf_counter() - t
    return {f"c{concurrency}_requests_per_s": len(runs) / wall,
            f"c{concurrency}_output_tokens_per_s": sum(g.output_tokens for g in runs) / wall}


def cold_start(model_dir: str | Path, threads: int, runs: int = 3, serve_tokens: int = 32) -> dict:
    """Fresh processes from start to first token (`python -m llm_assets.core.coldstart`), medians.

    `total_s` runs from the moment the parent launches the process to the first token (interpreter
    start-up included); import, load and first-token times are measured inside the process.
    """
    env = subprocess_env()
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-m", "llm_assets.core.coldstart", str(model_dir), str(threads),
                              str(serve_tokens), repr(time.time())], capture_output=True, text=True, env=env,
                             cwd=PROJECT_ROOT)
        if out.returncode:
            raise RuntimeError(f"cold-start probe failed on {model_dir}: {out.stderr[-1500:]}")
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {f"cold_{k}": statistics.median(s[k] for s in samples) for k in samples[0]} | {"cold_runs": runs}
