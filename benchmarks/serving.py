"""Serving benchmark: what the HTTP layer, the gateway and the traffic log cost, in one run.

    .venv/bin/python -m benchmarks.serving            # the SmolLM2 champion (run `make demo` first)
    .venv/bin/python -m benchmarks.serving --tiny     # the tiny test model

Prints, on the same prompts:
1. streamed output tokens/s of one client through the gateway (SSE, client-side clock)
   / the engine's in-process decode tokens/s (bar: >= 0.8);
2. cold start through the gateway (first request after scale-to-zero, client-side time to
   first token) / the engine's own cold start (fresh process launch to first token) (bar: <= 1.3).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm_assets.core import measure  # noqa: E402
from llm_assets.core.engine import SamplingParams, load_engine, read_variant  # noqa: E402
from benchmarks.engine import PROMPTS  # noqa: E402  (the same prompts as the engine benchmark)
from tests.serving_harness import RunningGateway  # noqa: E402


def champion_dir() -> tuple[Path, str]:
    from resources.artifact_store import LocalArtifactStore
    from resources.mlflow_tracking import MLflowTracking

    champ = MLflowTracking().get_alias("champion")
    if champ is None:
        sys.exit("no @champion in the registry: run `make demo` first (or use --tiny)")
    return LocalArtifactStore().get_dir(champ.tags["prefix"]), champ.tags["variant"]


def stream_rate(client: httpx.Client, prompt: str, max_tokens: int) -> tuple[float, int, float]:
    """(output tokens/s after the first, tokens, client TTFT) for one streamed chat request."""
    times = []
    t0 = time.perf_counter()
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                event = json.loads(line[6:])
                if event["choices"][0]["delta"].get("content"):
                    times.append(time.perf_counter())
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    return rate, len(times), times[0] - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3, help="cold starts measured on each side")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        if args.tiny:
            from benchmarks.engine import variant_dirs_tiny

            model_dir, variant = variant_dirs_tiny(Path(work))["onnx-int8"], "onnx-int8"
        else:
            model_dir, variant = champion_dir()
        threads = int(read_variant(model_dir).get("threads") or 1)
        print(f"model: {'tiny' if args.tiny else 'SmolLM2-135M-Instruct'} {variant}, {threads} thread(s), "
              f"up to {args.tokens} tokens x {len(PROMPTS)} prompts, greedy\n")

        engine = load_engine(model_dir, threads=threads)
        engine.chat([{"role": "user", "content": "Hi"}], SamplingParams(max_new_tokens=4))
        in_proc = []
        for p in PROMPTS:
            g = engine.chat([{"role": "user", "content": p}], SamplingParams(max_new_tokens=args.tokens))
            in_proc.append((g.decode_tokens_per_s, g.output_tokens))
        del engine
        engine_cold = measure.cold_start(model_dir, threads, args.runs)["cold_total_s"]

        with RunningGateway(Path(work) / "deploy", model_dir, variant=variant, min_warm=0, idle_timeout_s=0.5,
                            max_instances=1) as gw:
            cold = []
            for _ in range(args.runs):
                gw.wait_for(lambda: gw.warm() == 0, what="scale to zero")
                cold.append(stream_rate(gw.client, "Hello", 4)[2])
            through = [stream_rate(gw.client, p, args.tokens) for p in PROMPTS]

    print("| prompt | engine in-process tok/s | through gateway tok/s | tokens (engine / gateway) |")
    print("|---|---|---|---|")
    for p, (e_rate, e_n), (g_rate, g_n, _) in zip(PROMPTS, in_proc, through):
        print(f"| {p[:40]}… | {e_rate:.1f} | {g_rate:.1f} | {e_n} / {g_n} |")
    ratio = statistics.median(g[0] for g in through) / statistics.median(e[0] for e in in_proc)
    print(f"\nbar: gateway streamed tok/s ÷ engine in-process >= 0.8 -> {ratio:.2f} {'MET' if ratio >= 0.8 else 'NOT MET'}")
    c_ratio = statistics.median(cold) / engine_cold
    print(f"cold start: through the gateway {statistics.median(cold):.2f} s (client TTFT after scale-to-zero, median of "
          f"{args.runs}); engine alone {engine_cold:.2f} s (launch to first token)")
    print(f"bar: gateway cold start ÷ engine cold start <= 1.3 -> {c_ratio:.2f} {'MET' if c_ratio <= 1.3 else 'NOT MET'}")


if __name__ == "__main__":
    main()
