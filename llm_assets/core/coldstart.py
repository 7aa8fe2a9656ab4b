"""Cold-start probe: run in a fresh process, time import, load and first token, report peak RSS.

    python -m llm_assets.core.coldstart MODEL_DIR THREADS SERVE_TOKENS LAUNCH_EPOCH_S

Prints one JSON line; `total_s` runs from LAUNCH_EPOCH_S (when the parent started this
process, wall clock) to the first token, so interpreter start-up counts. `measure.cold_start` runs it several times and takes medians. The
imports are inside `main` so the timer sees them; this module imports nothing heavy itself.
"""
import json
import sys
import time


def peak_rss_mb() -> float:
    """VmHWM: this process's own high-water mark (ru_maxrss would include the parent's at fork)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    t0 = time.perf_counter()
    from llm_assets.core.engine import SamplingParams, load_engine

    t1 = time.perf_counter()
    engine = load_engine(sys.argv[1], threads=int(sys.argv[2]))
    t2 = time.perf_counter()
    engine.chat([{"role": "user", "content": "Hello"}], SamplingParams(max_new_tokens=1, stop_token_ids=[]))
    t3 = time.perf_counter()
    to_first_token = time.time() - float(sys.argv[4])
    # Serve a little more so the peak RSS includes a grown KV cache and the decode working set.
    engine.chat([{"role": "user", "content": "Write a haiku about the sea."}],
                SamplingParams(max_new_tokens=int(sys.argv[3]), stop_token_ids=[]))
    print(json.dumps({
        "import_s": t1 - t0, "load_s": t2 - t1, "first_token_s": t3 - t2,
        "verify_s": engine.load_info.verify_s, "total_s": to_first_token,
        "peak_rss_mb": peak_rss_mb(),
    }))


if __name__ == "__main__":
    main()
