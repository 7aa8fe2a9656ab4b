"""The public endpoint: an OpenAI-compatible HTTP app in front of the serverless worker pool.

    python -m serving.gateway --deploy-dir .llmops/deploy [--port 8000]

Routes: /v1/completions, /v1/chat/completions (SSE streaming or not), /v1/models, /health,
/metrics (Prometheus), and /admin/* (deploy, status, shutdown; admin token required).
Bad input never crashes it and never gets a 500: 422 schema, 400 context window / encoding /
JSON, 413 body size, 401 API key, 429 overload (Retry-After), 504 timeout.
"""
from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import os
import secrets
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field, ValidationError

from serving.pool import Deployment, SmokeTestFailed, WorkerPool, WorkerStartError
from serving.schemas import ChatRequest, CompletionRequest
from serving.traffic import TrafficLog, TrafficRecord


class GatewaySettings(BaseModel):
    deploy_dir: str
    host: str = "127.0.0.1"
    port: int = 8000
    min_warm: int = Field(default=0, ge=0, description="Workers kept warm (provisioned concurrency).")
    max_instances: int = Field(default=2, ge=1, description="Max workers = max requests decoding at once.")
    max_queue: int = Field(default=8, ge=0, description="Requests that may wait for a worker; beyond: 429.")
    idle_timeout_s: float = Field(default=60.0, gt=0, description="Idle worker lifetime above min_warm.")
    request_timeout_s: float = Field(default=120.0, gt=0, description="Whole-request budget (queue + cold start "
                                                                       "+ decode); beyond: 504.")
    worker_start_timeout_s: float = Field(default=120.0, gt=0)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    api_keys: list[str] = Field(default_factory=list, description="Bearer keys; empty = no auth.")
    admin_token: str = Field(default_factory=lambda: secrets.token_urlsafe(24))
    store_prompts: bool = Field(default=True, description="False: the traffic log keeps a sha256 only.")


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("llmops_requests", "Requests by endpoint and status", ["endpoint", "status"],
                                registry=r)
        self.ttft = Histogram("llmops_ttft_seconds", "Time to first token", registry=r,
                              buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
        self.e2e = Histogram("llmops_e2e_seconds", "End-to-end request latency", registry=r,
                             buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300))
        self.output_tokens = Histogram("llmops_output_tokens", "Output tokens per request", registry=r,
                                       buckets=(1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096))
        self.queue_depth = Gauge("llmops_queue_depth", "Requests waiting for a worker", registry=r)
        self.in_flight = Gauge("llmops_in_flight", "Requests admitted and not finished", registry=r)
        self.warm = Gauge("llmops_warm_instances", "Running engine workers of the live version", registry=r)
        self.cold_starts = Counter("llmops_cold_starts", "Workers started by a request (cold starts)", registry=r)


class HTTPError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", headers=None):
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or {}


def _err(status: int, message: str, kind: str = "invalid_request_error", headers=None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status,
                        headers=headers)


def _has_surrogates(obj) -> bool:
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
            return False
        except UnicodeEncodeError:
            return True
    if isinstance(obj, dict):
        return any(_has_surrogates(k) or _has_surrogates(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_has_surrogates(v) for v in obj)
    return False


def create_app(settings: GatewaySettings, deployment: Deployment | None = None) -> FastAPI:
    metrics = Metrics()
    deploy_dir = Path(settings.deploy_dir)
    traffic = TrafficLog(deploy_dir / "traffic.sqlite", store_prompts=settings.store_prompts)
    pool = WorkerPool(min_warm=settings.min_warm, max_instances=settings.max_instances,
                      idle_timeout_s=settings.idle_timeout_s, start_timeout_s=settings.worker_start_timeout_s,
                      log_dir=deploy_dir / "logs", on_cold_start=lambda w: metrics.cold_starts.inc(),
                      on_change=lambda p: metrics.warm.set(len(p.live())))
    state = {"admitted": 0, "waiting": 0}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if deployment is not None:
            pool.deployment = deployment
        await pool.start()
        yield
        await pool.close()
        traffic.close()

    app = FastAPI(title="llmops endpoint", lifespan=lifespan)
    app.state.pool, app.state.traffic, app.state.settings, app.state.metrics = pool, traffic, settings, metrics

    @app.exception_handler(HTTPError)
    async def _http_error(request: Request, exc: HTTPError):
        return _err(exc.status, exc.message, exc.kind, exc.headers)

    def check_key(request: Request) -> None:
        if not settings.api_keys:
            return
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if not any(hmac.compare_digest(token, k) for k in settings.api_keys):
            raise HTTPError(401, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                            "authentication_error")

    def check_admin(request: Request) -> None:
        header = request.headers.get("authorization", "")
        if not hmac.compare_digest(header, f"Bearer {settings.admin_token}"):
            raise HTTPError(401, "admin token required", "authentication_error")

    async def read_json(request: Request) -> dict:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise HTTPError(413, f"request body of {declared} bytes exceeds the limit of {settings.max_body_bytes}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_body_bytes:
                raise HTTPError(413, f"request body exceeds the limit of {settings.max_body_bytes} bytes")
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HTTPError(400, f"request body is not valid UTF-8 (byte {exc.start})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HTTPError(400, f"request body is not valid JSON: {exc.msg} at char {exc.pos}") from None
        if _has_surrogates(data):
            raise HTTPError(400, "request contains lone UTF-16 surrogates; send valid Unicode text")
        if not isinstance(data, dict):
            raise HTTPError(422, "request body must be a JSON object")
        return data

    def log(endpoint: str, status: int, **kw) -> None:
        metrics.requests.labels(endpoint, str(status)).inc()
        dep = pool.deployment
        traffic.append(TrafficRecord(endpoint=endpoint, status=status, model_version=dep and dep.version,
                                     variant=dep and dep.variant, **kw))

    async def handle(request: Request, endpoint: str, schema):
        t0 = time.monotonic()
        try:
            check_key(request)
        except HTTPError as e:
            log(endpoint, e.status, error="unauthorized")  # no prompt is logged for a rejected caller
            raise
        prompt_text = None
        try:
            data = await read_json(request)
            try:
                req = schema.model_validate(data)
            except ValidationError as exc:
                errs = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
                raise HTTPError(422, f"invalid request: {errs}") from None
            dep = pool.deployment
            if dep is None:
                raise HTTPError(503, "no model is deployed yet", "service_unavailable")
            if endpoint == "chat":
                msgs = [m.model_dump() for m in req.messages]
                prompt_text = "\n".join(m["content"] for m in msgs)
                ids = dep.tokenizer.encode_chat(msgs)
            else:
                prompt_text = req.prompt
                ids = dep.tokenizer.encode(req.prompt)
            if len(ids) + req.max_tokens > dep.context_length:
                raise HTTPError(400, f"prompt ({len(ids)} tokens) + max_tokens ({req.max_tokens}) exceeds the "
                                     f"context window of {dep.context_length} tokens")
            if state["admitted"] >= settings.max_instances + settings.max_queue:
                raise HTTPError(429, f"overloaded: {state['admitted']} requests in flight or queued "
                                     f"(limit {settings.max_instances + settings.max_queue}); retry later",
                                "rate_limit_error", {"Retry-After": "1"})
        except HTTPError as e:
            log(endpoint, e.status, prompt=prompt_text, error=e.message[:500])
            raise
        return await run(endpoint, req, ids, prompt_text, dep, t0)

    async def run(endpoint, req, ids, prompt_text, dep, t0):
        state["admitted"] += 1
        metrics.in_flight.inc()
        deadline = t0 + settings.request_timeout_s
        worker = cold = None
        rid = f"{'chatcmpl' if endpoint == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        record = dict(prompt=prompt_text, prompt_tokens=len(ids))
        released = False

        async def finish(status: int, **kw):
            nonlocal released
            if not released:
                released = True
                state["admitted"] -= 1
                metrics.in_flight.dec()
                if worker is not None:
                    await pool.release(worker)
            e2e = time.monotonic() - t0
            if status == 200:
                metrics.e2e.observe(e2e)
                metrics.output_tokens.observe(kw.get("output_tokens") or 0)
                if kw.get("ttft_s") is not None:
                    metrics.ttft.observe(kw["ttft_s"])
            log(endpoint, status, cold=bool(cold), e2e_s=e2e, **record, **kw)

        client = httpx.AsyncClient(timeout=httpx.Timeout(settings.request_timeout_s, connect=5))
        try:
            state["waiting"] += 1
            metrics.queue_depth.set(state["waiting"])
            try:
                worker, cold = await pool.acquire(max(deadline - time.monotonic(), 0.001))
            finally:
                state["waiting"] -= 1
                metrics.queue_depth.set(state["waiting"])
            payload = {"prompt_ids": ids, "max_tokens": req.max_tokens, "temperature": req.temperature,
                       "top_p": req.top_p, "seed": req.seed}
            stream_cm = client.stream("POST", f"{worker.url}/generate", json=payload)
            resp = await asyncio.wait_for(stream_cm.__aenter__(), max(deadline - time.monotonic(), 0.001))
            lines = resp.aiter_lines()
            first = await asyncio.wait_for(_next_event(lines), max(deadline - time.monotonic(), 0.001))
        except asyncio.TimeoutError:
            await client.aclose()
            await finish(504, error="timeout before the first token")
            raise HTTPError(504, f"request exceeded its timeout of {settings.request_timeout_s}s before the first "
                                 f"token", "timeout") from None
        except WorkerStartError as exc:
            await client.aclose()
            await finish(503, error=str(exc)[:500])
            raise HTTPError(503, str(exc), "service_unavailable") from None
        except (httpx.HTTPError, ConnectionError) as exc:
            await client.aclose()
            await finish(502, error=str(exc)[:500])
            raise HTTPError(502, f"engine worker failed: {exc}", "worker_error") from None
        ttft = time.monotonic() - t0
        headers = {"x-llmops-cold-start": "true" if cold else "false", "x-llmops-model-version": dep.version,
                   "x-llmops-variant": dep.variant}
        stops = req.stop_strings

        async def events():
            """Token pieces until done, stop string or deadline: yields (piece, final dict | None)."""
            text = ""
            item = first
            while True:
                if item is None or item.get("done"):
                    yield "", item or {"done": True, "error": "worker closed the stream"}
                    return
                piece = item["text"]
                if stops:
                    cut = min((i for s in stops if (i := (text + piece).find(s)) >= 0), default=-1)
                    if cut >= 0:
                        yield (text + piece)[len(text):cut], {"done": True, "finish_reason": "stop", "stopped": True}
                        return
                text += piece
                yield piece, None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    yield "", {"done": True, "error": "timeout", "timeout": True}
                    return
                try:
                    item = await asyncio.wait_for(_next_event(lines), remaining)
                except asyncio.TimeoutError:
                    yield "", {"done": True, "error": "timeout", "timeout": True}
                    return

        async def close():
            await stream_cm.__aexit__(None, None, None)
            await client.aclose()

        def usage(n_out):
            return {"prompt_tokens": len(ids), "completion_tokens": n_out, "total_tokens": len(ids) + n_out}

        if not req.stream:
            parts, n_out, final = [], 0, {}
            try:
                async for piece, fin in events():
                    parts.append(piece)
                    if fin is not None:
                        final = fin
                        break
                    n_out += 1
            finally:
                await close()
            if final.get("timeout"):
                await finish(504, output_tokens=n_out, ttft_s=ttft, error="timeout")
                raise HTTPError(504, f"request exceeded its timeout of {settings.request_timeout_s}s", "timeout")
            if final.get("error"):
                await finish(502, output_tokens=n_out, ttft_s=ttft, error=final["error"][:500])
                raise HTTPError(502, f"engine worker failed: {final['error']}", "worker_error")
            n_out = final.get("output_tokens", n_out) if not final.get("stopped") else n_out
            await finish(200, output_tokens=n_out, ttft_s=ttft)
            text = "".join(parts)
            reason = final.get("finish_reason", "stop")
            if endpoint == "chat":
                choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
                body = {"id": rid, "object": "chat.completion", "created": created, "model": dep.version,
                        "choices": [choice], "usage": usage(n_out)}
            else:
                body = {"id": rid, "object": "text_completion", "created": created, "model": dep.version,
                        "choices": [{"index": 0, "text": text, "finish_reason": reason, "logprobs": None}],
                        "usage": usage(n_out)}
            return JSONResponse(body, headers=headers)

        async def sse():
            n_out, status, err = 0, 200, None
            obj = "chat.completion.chunk" if endpoint == "chat" else "text_completion"

            def chunk(piece: str | None, reason: str | None, role: bool = False) -> str:
                if endpoint == "chat":
                    delta = {"role": "assistant"} if role else ({"content": piece} if piece else {})
                    choice = {"index": 0, "delta": delta, "finish_reason": reason}
                else:
                    choice = {"index": 0, "text": piece or "", "finish_reason": reason, "logprobs": None}
                return "data: " + json.dumps({"id": rid, "object": obj, "created": created, "model": dep.version,
                                              "choices": [choice]}) + "\n\n"

            try:
                if endpoint == "chat":
                    yield chunk(None, None, role=True)
                async for piece, fin in events():
                    if fin is not None:
                        if fin.get("error"):
                            status, err = (504 if fin.get("timeout") else 502), fin["error"]
                            yield "data: " + json.dumps({"error": {"message": err, "code": status}}) + "\n\n"
                        else:
                            if piece:
                                yield chunk(piece, None)
                            yield chunk(None, fin.get("finish_reason", "stop"))
                            if not fin.get("stopped"):
                                n_out = fin.get("output_tokens", n_out)  # the engine's count is exact
                        break
                    n_out += 1
                    if piece:
                        yield chunk(piece, None)
                yield "data: [DONE]\n\n"
            finally:
                await close()
                await finish(status, output_tokens=n_out, ttft_s=ttft, error=err)

        return StreamingResponse(sse(), media_type="text/event-stream", headers=headers)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await handle(request, "completions", CompletionRequest)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await handle(request, "chat", ChatRequest)

    @app.get("/v1/models")
    async def models(request: Request):
        check_key(request)
        dep = pool.deployment
        data = [{"id": dep.version, "object": "model", "owned_by": "llmops", "variant": dep.variant}] if dep else []
        return {"object": "list", "data": data}

    @app.get("/health")
    async def health():
        dep = pool.deployment
        return {"status": "ok" if dep else "no_model", "deployment": dep.public() if dep else None,
                "warm_instances": len(pool.live()) if dep else 0, "in_flight": state["admitted"]}

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    class DeployBody(BaseModel):
        model_dir: str
        version: str
        variant: str
        threads: int | None = None

    @app.post("/admin/deploy")
    async def admin_deploy(request: Request):
        check_admin(request)
        try:
            body = DeployBody.model_validate(await read_json(request))
            dep = Deployment(**body.model_dump())
        except (ValidationError, ValueError) as exc:
            raise HTTPError(422, f"invalid deployment: {exc}") from None
        try:
            out = await pool.switch(dep)
        except (SmokeTestFailed, WorkerStartError) as exc:
            serving = pool.deployment.version if pool.deployment else "nothing"
            return _err(409, f"smoke test of {dep.version} failed ({exc}); rolled back: {serving} keeps serving",
                        "smoke_test_failed")
        return out

    @app.get("/admin/status")
    async def admin_status(request: Request):
        check_admin(request)
        return pool.status()

    @app.post("/admin/shutdown")
    async def admin_shutdown(request: Request):
        check_admin(request)
        server = getattr(app.state, "server", None)
        if server is not None:
            server.should_exit = True
        return PlainTextResponse("shutting down")

    return app


async def _next_event(lines) -> dict | None:
    async for line in lines:
        if line.strip():
            return json.loads(line)
    return None


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deploy-dir", required=True)
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--host", default=None)
    args = ap.parse_args(argv)
    deploy_dir = Path(args.deploy_dir)
    cfg_path = deploy_dir / "gateway.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    cfg["deploy_dir"] = str(deploy_dir)
    if args.port is not None:
        cfg["port"] = args.port
    if args.host:
        cfg["host"] = args.host
    keys = os.environ.get("LLMOPS_API_KEYS")
    if keys:
        cfg["api_keys"] = [k.strip() for k in keys.split(",") if k.strip()]
    token_file = deploy_dir / "admin_token"
    if token_file.is_file():
        cfg["admin_token"] = token_file.read_text().strip()
    settings = GatewaySettings(**cfg)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning"))
    app.state.server = server
    (deploy_dir / "gateway.pid").write_text(str(os.getpid()))
    try:
        server.run()
    finally:
        (deploy_dir / "gateway.pid").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
