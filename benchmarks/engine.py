"""Engine benchmark: the llmops decode engine against the generic paths, side by side in one run.

    .venv/bin/python -m benchmarks.engine            # SmolLM2 variants from the artifact store (run `make demo` first)
    .venv/bin/python -m benchmarks.engine --tiny     # the tiny test model, built on the fly (seconds)

Prints, on the same prompts and the same number of generated tokens, each side at its best
thread count from a sweep:
1. decode tokens/s of the engine on each variant / transformers `generate` on torch-fp32
   (bar: >= 2.5x for onnx-int8);
2. cold start, a fresh process from start to first token, split into import / load / first
   token: engine on onnx-int8 / `ORTModelForCausalLM.from_pretrained` + first token (bar: <= 0.25);
3. decode tokens/s / the memory-bandwidth roofline (weight bytes read per token / read bandwidth
   measured here).
Ratios, not absolute times, are the result: the machines are shared and noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm_assets.core import measure  # noqa: E402
from llm_assets.core.engine import SamplingParams, load_engine  # noqa: E402
from llm_assets.core.settings import subprocess_env  # noqa: E402
from llm_assets.core.variants import load_catalogue  # noqa: E402

PROMPTS = [
    "Write a Python function that checks whether a number is prime.",
    "Summarize in one sentence: The town of Ashford opened a new sports center on Friday with 120 lockers.",
    "Explain what a hash table is to a new programmer.",
]


def variant_dirs_from_store() -> dict[str, Path]:
    from resources.artifact_store import LocalArtifactStore

    store = LocalArtifactStore()
    out = {}
    for v in load_catalogue().names:
        key = f"compressed_model/{v}/latest.json"
        if not store.exists(key):
            sys.exit(f"compressed_model[{v}] is not in {store.root}; run `make demo` first (or use --tiny)")
        out[v] = store.get_dir(store.get_json(key)["prefix"])
    return out


def variant_dirs_tiny(work: Path) -> dict[str, Path]:
    from llm_assets.core import compress
    from tests.support import build_tiny_model

    base = work / "base"
    build_tiny_model(base)
    cat = load_catalogue()
    exports: dict[bool, Path] = {}
    out = {}
    for name, spec in cat.variants.items():
        d = work / name
        if not spec.is_onnx:
            out[name] = base
            continue
        if spec.untie_lm_head not in exports:
            exports[spec.untie_lm_head] = work / f"export-{spec.untie_lm_head}"
            compress.export_onnx(base, exports[spec.untie_lm_head], spec.untie_lm_head, log=lambda m: None)
        compress.quantize(exports[spec.untie_lm_head], d, spec)
        compress.write_variant_file(d, {"variant": name, "optimization": spec.optimization})
        out[name] = d
    return out


def decode_rate(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0])


def bench_generate(model_dir: Path, threads: int, tokens: int) -> float:
    """transformers `generate` on torch fp32: decode tokens/s (first token excluded), best prompt-median."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rates = []
    for prompt in PROMPTS:
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                      return_tensors="pt")
        kw = dict(attention_mask=torch.ones_like(ids), do_sample=False, pad_token_id=tok.pad_token_id or 0)
        with torch.inference_mode():
            model.generate(ids, max_new_tokens=2, **kw)  # warm-up
            t = time.perf_counter()
            model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kw)
            first = time.perf_counter() - t
            t = time.perf_counter()
            out = model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, **kw)
            total = time.perf_counter() - t
        assert out.shape[1] - ids.shape[1] == tokens
        rates.append((tokens - 1) / (total - first))
    return statistics.median(rates)


def bench_engine(model_dir: Path, threads: int, tokens: int) -> float:
    engine = load_engine(model_dir, threads=threads, verify=False)
    params = SamplingParams(max_new_tokens=tokens, stop_token_ids=[])
    engine.chat([{"role": "user", "content": PROMPTS[0]}], SamplingParams(max_new_tokens=4))  # warm-up
    rates = []
    for prompt in PROMPTS:
        g = engine.chat([{"role": "user", "content": prompt}], params)
        assert g.output_tokens == tokens
        rates.append(decode_rate(g.token_times_s))
    return statistics.median(rates)


OPTIMUM_COLD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
torch.set_num_threads(int(sys.argv[2]))
from optimum.onnxruntime import ORTModelForCausalLM
from transformers import AutoTokenizer
t1 = time.perf_counter()
tok = AutoTokenizer.from_pretrained(sys.argv[1])
m = ORTModelForCausalLM.from_pretrained(sys.argv[1], use_cache=True, use_io_binding=False)
t2 = time.perf_counter()
ids = tok.apply_chat_template([{"role": "user", "content": "Hello"}], add_generation_prompt=True, return_tensors="pt")
m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=1, do_sample=False)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "first_token": t3 - t2, "total": time.time() - float(sys.argv[3])}))
"""


def optimum_cold_start(model_dir: Path, threads: int, runs: int) -> dict:
    """As `measure.cold_start`, for ORTModelForCausalLM: medians over fresh processes, launch to first token."""
    code = OPTIMUM_COLD
    samples = []
    env = subprocess_env(TRANSFORMERS_VERBOSITY="error")
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code, str(model_dir), str(threads), repr(time.time())],
                             capture_output=True, text=True, env=env, cwd=ROOT)
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {k: statistics.median(s[k] for s in samples) for k in samples[0]}


def read_bandwidth_gbs(threads: int) -> float:
    """Streaming read bandwidth (GB/s) with `threads` readers, as many as decode uses: best of 5 passes
    over a 512 MB array (far beyond any cache), each thread summing its own slice (numpy drops the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    a = np.ones(64 * 1024 * 1024, dtype=np.float64)
    parts = np.array_split(a, threads)
    best = 0.0
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(5):
            t = time.perf_counter()
            list(pool.map(np.sum, parts))
            best = max(best, a.nbytes / (time.perf_counter() - t) / 1e9)
    return best


def bytes_read_per_token(model_dir: Path) -> int:
    """Weight bytes one decode step reads: every weight except the embedding table (one row is gathered)."""
    onnx_path = model_dir / "model.onnx"
    if onnx_path.is_file():
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(onnx_path))
        gathered = {n.input[0] for n in model.graph.node if n.op_type == "Gather"}
        consumed = {i for n in model.graph.node if n.op_type != "Gather" for i in n.input}
        return sum(numpy_helper.to_array(i).nbytes for i in model.graph.initializer
                   if i.name not in gathered or i.name in consumed)  # a tied head reads the table too
    cfg = json.loads((model_dir / "config.json").read_text())
    total = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    return total if cfg.get("tie_word_embeddings") else total - 4 * cfg["vocab_size"] * cfg["hidden_size"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="benchmark the tiny test model (built on the fly)")
    ap.add_argument("--tokens", type=int, default=64, help="generated tokens per prompt (same on every side)")
    ap.add_argument("--threads", default="1,2", help="thread counts to sweep, comma-separated")
    ap.add_argument("--cold-runs", type=int, default=3, help="fresh processes per cold-start measurement")
    args = ap.parse_args()
    sweep = [int(t) for t in args.threads.split(",")]

    with tempfile.TemporaryDirectory() as work:
        dirs = variant_dirs_tiny(Path(work)) if args.tiny else variant_dirs_from_store()
        print(f"model: {'tiny llama (test fixture)' if args.tiny else 'SmolLM2-135M-Instruct'}; "
              f"{args.tokens} tokens x {len(PROMPTS)} prompts, greedy; thread sweep {sweep}; "
              f"{os.cpu_count()} CPUs\n")

        base = {t: bench_generate(dirs["torch-fp32"], t, args.tokens) for t in sweep}
        base_t = max(base, key=base.get)
        bw = {t: read_bandwidth_gbs(t) for t in sweep}
        print(f"baseline transformers generate, torch-fp32: {base[base_t]:.1f} tok/s at {base_t} thread(s) "
              f"(sweep {', '.join(f'{t}: {r:.1f}' for t, r in base.items())})")
        print(f"measured read bandwidth: {', '.join(f'{t} thread(s) {b:.1f} GB/s' for t, b in bw.items())}\n")
        rows = []
        for v, d in dirs.items():
            rates = {t: bench_engine(d, t, args.tokens) for t in sweep}
            best_t = max(rates, key=rates.get)
            per_token = bytes_read_per_token(d)
            roofline = bw[best_t] * 1e9 / per_token
            rows.append((v, rates[best_t], best_t, rates[best_t] / base[base_t], per_token / 1e6, roofline,
                         rates[best_t] / roofline))
        print("| variant | engine decode tok/s | threads | ÷ generate (torch-fp32) | MB read/token | roofline tok/s | ÷ roofline |")
        print("|---|---|---|---|---|---|---|")
        for v, r, t, ratio, mb, roof, frac in rows:
            print(f"| {v} | {r:.1f} | {t} | {ratio:.2f}x | {mb:.1f} | {roof:.0f} | {frac:.2f} |")
        int8 = next(r for r in rows if r[0] == "onnx-int8")
        print(f"\nbar: onnx-int8 ÷ generate >= 2.5x -> {int8[3]:.2f}x {'MET' if int8[3] >= 2.5 else 'NOT MET'}")

        d8 = dirs["onnx-int8"]
        eng = measure.cold_start(d8, int8[2], args.cold_runs)
        opt = optimum_cold_start(d8, int8[2], args.cold_runs)
        print(f"\ncold start, fresh process to first token, onnx-int8, median of {args.cold_runs}:")
        print("| path | import s | load s | first token s | launch to first token s |")
        print("|---|---|---|---|---|")
        print(f"| llmops engine | {eng['cold_import_s']:.2f} | {eng['cold_load_s']:.2f} (sha256 verify "
              f"{eng['cold_verify_s']:.2f}) | {eng['cold_first_token_s']:.3f} | {eng['cold_total_s']:.2f} |")
        print(f"| ORTModelForCausalLM | {opt['import']:.2f} | {opt['load']:.2f} | {opt['first_token']:.3f} | "
              f"{opt['total']:.2f} |")
        ratio = eng["cold_total_s"] / opt["total"]
        print(f"\nbar: engine ÷ optimum cold start <= 0.25 -> {ratio:.2f} {'MET' if ratio <= 0.25 else 'NOT MET'}; "
              f"long-term target < 1 s: {eng['cold_total_s']:.2f} s")


if __name__ == "__main__":
    main()
