"""An engine worker: one process, one loaded variant, one request at a time, on 127.0.0.1.

    python -m serving.worker --model-dir DIR [--threads N] [--version V] [--variant NAME]

Loads the engine (verifying every file against its manifest), binds a free loopback port and
prints `READY <port> <seconds>` on stdout; the gateway reads that line and routes requests here.

The internal API (only the gateway calls it) is a bare ASGI app on uvicorn, not FastAPI: importing
FastAPI cost 0.2 s of every cold start. POST /generate takes `{"prompt_ids", "max_tokens",
"temperature", "top_p", "seed"}` and streams NDJSON: one `{"token", "text"}` line per generated
token, then `{"done": true, ...}`. A client that disconnects cancels its generation. GET /health.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import threading
import time


class _Cancelled(Exception):
    pass


def _parse_generate(body: bytes) -> dict:
    try:
        req = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    ids = req.get("prompt_ids") if isinstance(req, dict) else None
    if not (isinstance(ids, list) and ids and all(isinstance(t, int) and t >= 0 for t in ids)):
        raise ValueError("prompt_ids must be a non-empty list of token ids")
    if not (isinstance(req.get("max_tokens"), int) and req["max_tokens"] >= 1):
        raise ValueError("max_tokens must be an integer >= 1")
    return {"prompt_ids": ids, "max_tokens": req["max_tokens"], "temperature": float(req.get("temperature") or 0.0),
            "top_p": float(req.get("top_p") or 1.0), "seed": req.get("seed")}


def build_app(engine, version: str, variant: str):
    from llm_assets.core.engine import SamplingParams

    lock = threading.Lock()  # one generation at a time: decode is CPU-bound

    async def respond(send, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def generate(receive, send) -> None:
        body, more = b"", True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        try:
            req = _parse_generate(body)
            params = SamplingParams(max_new_tokens=req["max_tokens"], temperature=req["temperature"],
                                    top_p=req["top_p"], seed=req["seed"])
        except ValueError as exc:
            await respond(send, 422, {"error": str(exc)})
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def on_token(tok: int, piece: str) -> None:
            if cancel.is_set():
                raise _Cancelled
            loop.call_soon_threadsafe(queue.put_nowait, {"token": tok, "text": piece})  # tok -1: trailing text

        def run() -> None:
            try:
                with lock:
                    g = engine.generate(req["prompt_ids"], params, on_token)
                done = {"done": True, "finish_reason": g.finish_reason, "prompt_tokens": g.prompt_tokens,
                        "output_tokens": g.output_tokens, "ttft_s": g.ttft_s, "total_s": g.total_s}
            except _Cancelled:
                done = {"done": True, "finish_reason": "cancelled"}
            except Exception as exc:  # reported to the gateway, which answers with a clear error
                done = {"done": True, "error": f"{type(exc).__name__}: {exc}"}
            loop.call_soon_threadsafe(queue.put_nowait, done)

        async def watch_disconnect():
            while (await receive())["type"] != "http.disconnect":
                pass
            cancel.set()  # client gone: stop decoding at the next token

        threading.Thread(target=run, daemon=True).start()
        watcher = asyncio.create_task(watch_disconnect())
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/x-ndjson")]})
        try:
            while True:
                item = await queue.get()
                done = bool(item.get("done"))
                await send({"type": "http.response.body", "body": (json.dumps(item) + "\n").encode(),
                            "more_body": not done})
                if done:
                    return
        finally:
            cancel.set()
            watcher.cancel()

    async def app(scope, receive, send) -> None:  # HTTP only: uvicorn runs it with lifespan="off"
        route = (scope["method"], scope["path"])
        if route == ("GET", "/health"):
            await respond(send, 200, {"status": "ok", "version": version, "variant": variant, "kind": engine.kind,
                                      "threads": engine.threads, "context_length": engine.context_length})
        elif route == ("POST", "/generate"):
            await generate(receive, send)
        else:
            await respond(send, 404, {"error": f"no route {route[0]} {route[1]}"})

    return app


def _exit_with_parent() -> None:
    """A worker never outlives its gateway: if the parent dies (even by SIGKILL), exit."""
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
    from llm_assets.core.engine import load_engine

    engine = load_engine(args.model_dir, threads=args.threads)
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, 0))
    sock.listen(64)
    print(f"READY {sock.getsockname()[1]} {time.perf_counter() - t0:.3f}", flush=True)
    config = uvicorn.Config(build_app(engine, args.version, args.variant), log_level="warning", access_log=False,
                            lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
