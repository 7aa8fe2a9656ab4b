"""An engine worker: one process, one loaded variant, one request at a time, on 127.0.0.1.

    python -m serving.worker --model-dir DIR [--threads N] [--version V] [--variant NAME]

Loads the engine (verifying every file against its manifest), binds a free loopback port and
prints `READY <port>` on stdout; the gateway reads that line and routes requests here. The
internal API streams NDJSON: one `{"token", "text"}` line per generated token, then a final
`{"done": true, ...}` line. A client that disconnects cancels its generation.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import threading
import time

from pydantic import BaseModel, Field


class GenerateBody(BaseModel):
    prompt_ids: list[int] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


class _Cancelled(Exception):
    pass


def build_app(engine, version: str, variant: str):
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    from llm_assets.core.engine import SamplingParams

    app = FastAPI(title="llmops engine worker")
    lock = threading.Lock()  # one generation at a time: decode is CPU-bound

    @app.get("/health")
    def health():
        return {"status": "ok", "version": version, "variant": variant, "kind": engine.kind,
                "threads": engine.threads, "context_length": engine.context_length}

    @app.post("/generate")
    async def generate(body: GenerateBody):
        params = SamplingParams(max_new_tokens=body.max_tokens, temperature=body.temperature, top_p=body.top_p,
                                seed=body.seed)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def on_token(tok: int, piece: str) -> None:
            if cancel.is_set():
                raise _Cancelled
            loop.call_soon_threadsafe(queue.put_nowait, {"token": tok, "text": piece})

        def run() -> None:
            try:
                with lock:
                    g = engine.generate(body.prompt_ids, params, on_token)
                done = {"done": True, "finish_reason": g.finish_reason, "prompt_tokens": g.prompt_tokens,
                        "output_tokens": g.output_tokens, "ttft_s": g.ttft_s, "total_s": g.total_s}
            except _Cancelled:
                done = {"done": True, "finish_reason": "cancelled"}
            except Exception as exc:  # reported to the gateway, which answers with a clear error
                done = {"done": True, "error": f"{type(exc).__name__}: {exc}"}
            loop.call_soon_threadsafe(queue.put_nowait, done)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        async def stream():
            try:
                while True:
                    item = await queue.get()
                    yield json.dumps(item) + "\n"
                    if item.get("done"):
                        return
            finally:
                cancel.set()  # client gone (or finished): stop decoding at the next token

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    return app


def _exit_with_parent() -> None:
    """A worker never outlives its gateway: if the parent dies (even by SIGKILL), exit."""
    import os

    parent = os.getppid()

    def watch():
        while True:
            time.sleep(1)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--version", default="")
    ap.add_argument("--variant", default="")
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    _exit_with_parent()
    # Import the web stack while the engine loads: ONNX Runtime's session creation releases the
    # GIL, so the ~0.3 s of fastapi/uvicorn imports come off the cold start.
    web = threading.Thread(target=lambda: __import__("serving.worker_web_imports"), daemon=True)
    web.start()
    from llm_assets.core.engine import load_engine

    engine = load_engine(args.model_dir, threads=args.threads)
    web.join()
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, 0))
    sock.listen(64)
    print(f"READY {sock.getsockname()[1]} {time.perf_counter() - t0:.3f}", flush=True)
    config = uvicorn.Config(build_app(engine, args.version, args.variant), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
