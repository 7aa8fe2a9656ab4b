"""The local serverless pool: engine workers that start on demand, stay warm, and scale to zero.

- A request that finds no idle worker starts one if fewer than `max_instances` run: a cold start.
- `min_warm` workers are kept running (provisioned concurrency); above that, a worker idle for
  `idle_timeout_s` is stopped, down to zero.
- `switch()` is the blue/green step: start the new version on a fresh port, smoke-test it,
  route new requests to it, drain the old workers (each stops when its request ends).
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from llm_assets.core.engine import ChatTokenizer
from llm_assets.core.settings import PROJECT_ROOT, subprocess_env


class WorkerStartError(RuntimeError):
    pass


class SmokeTestFailed(RuntimeError):
    pass


@dataclass
class Deployment:
    """One model version the pool can serve, with the tokenizer the gateway uses to count tokens."""

    model_dir: str
    version: str
    variant: str
    threads: int | None = None
    tokenizer: ChatTokenizer = field(init=False, repr=False)
    context_length: int = field(init=False)

    def __post_init__(self):
        d = Path(self.model_dir)
        if not (d / "config.json").is_file():
            raise ValueError(f"model directory {d} has no config.json")
        self.tokenizer = ChatTokenizer(d)
        self.context_length = int(json.loads((d / "config.json").read_text()).get("max_position_embeddings") or 2048)

    def public(self) -> dict:
        return {"model_dir": self.model_dir, "version": self.version, "variant": self.variant}


class Worker:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, deployment: Deployment, start_s: float):
        self.proc, self.port, self.deployment, self.start_s = proc, port, deployment, start_s
        self.url = f"http://127.0.0.1:{port}"
        self.busy = False
        self.draining = False
        self.last_used = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None


class WorkerPool:
    def __init__(self, *, min_warm: int, max_instances: int, idle_timeout_s: float, start_timeout_s: float,
                 log_dir: Path, on_cold_start=None, on_change=None):
        if max_instances < 1 or min_warm < 0 or min_warm > max_instances:
            raise ValueError(f"need 0 <= min_warm ({min_warm}) <= max_instances ({max_instances}), max >= 1")
        self.min_warm, self.max_instances, self.idle_timeout_s = min_warm, max_instances, idle_timeout_s
        self.start_timeout_s, self.log_dir = start_timeout_s, log_dir
        self.on_cold_start, self.on_change = on_cold_start, on_change
        self.deployment: Deployment | None = None
        self.workers: list[Worker] = []
        self.starting = 0
        self.peak_busy = 0  # most requests ever decoding at once (admission control's proof)
        self.cond = asyncio.Condition()
        self._reaper: asyncio.Task | None = None

    # ---- processes --------------------------------------------------------
    async def spawn(self, dep: Deployment) -> Worker:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"worker-{dep.version or 'x'}-{time.time_ns()}.log"
        cmd = [sys.executable, "-m", "serving.worker", "--model-dir", dep.model_dir, "--version", dep.version,
               "--variant", dep.variant]
        if dep.threads:
            cmd += ["--threads", str(dep.threads)]
        env = subprocess_env()
        t0 = time.perf_counter()
        with open(log_path, "wb") as log:
            proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=log,
                                                        cwd=PROJECT_ROOT, env=env)
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), self.start_timeout_s)
        except asyncio.TimeoutError:
            line = b""
        except BaseException:  # cancelled (shutdown): never leave an orphan worker behind
            await _stop(proc)
            raise
        if not line.startswith(b"READY "):
            await _stop(proc)
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise WorkerStartError(f"worker for {dep.variant} {dep.version} did not start: "
                                   f"{' | '.join(tail) or 'no output (timed out)'}")
        port = int(line.split()[1])
        return Worker(proc, port, dep, time.perf_counter() - t0)

    async def stop_worker(self, w: Worker) -> None:
        if w in self.workers:
            self.workers.remove(w)
        await _stop(w.proc)
        self._changed()

    def _changed(self) -> None:
        if self.on_change:
            self.on_change(self)

    # ---- routing ----------------------------------------------------------
    def live(self, dep: Deployment | None = None) -> list[Worker]:
        dep = dep or self.deployment
        return [w for w in self.workers if w.alive and not w.draining and w.deployment is dep]

    async def acquire(self, timeout_s: float) -> tuple[Worker, bool]:
        """An idle worker of the current version (warm), or a new one (cold). Waits while at max_instances."""
        deadline = time.monotonic() + timeout_s
        async with self.cond:
            while True:
                for w in list(self.workers):
                    if not w.alive:
                        self.workers.remove(w)
                dep = self.deployment
                if dep is None:
                    raise WorkerStartError("no model is deployed")
                idle = [w for w in self.live(dep) if not w.busy]
                if idle:
                    idle[0].busy = True
                    self.peak_busy = max(self.peak_busy, sum(x.busy for x in self.workers))
                    return idle[0], False
                if len(self.live(dep)) + self.starting < self.max_instances:
                    self.starting += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise asyncio.TimeoutError
                await asyncio.wait_for(self.cond.wait(), remaining)
        # The start goes on even if this request gives up waiting (as a serverless instance keeps
        # initializing): the worker then joins the pool idle, warm for the next request.
        task = asyncio.create_task(self._start_worker(dep, claim=True))
        try:
            w = await asyncio.wait_for(asyncio.shield(task), max(deadline - time.monotonic(), 0.001))
        except asyncio.TimeoutError:
            task.add_done_callback(self._release_orphan)
            raise
        if self.on_cold_start:
            self.on_cold_start(w)
        return w, True

    async def _start_worker(self, dep: Deployment, claim: bool) -> Worker:
        """Start a worker the caller counted in `starting`; `claim` hands it to a waiting request (busy),
        otherwise it joins the pool idle (warm)."""
        try:
            w = await self.spawn(dep)
        finally:
            async with self.cond:
                self.starting -= 1
                self.cond.notify_all()  # a failed start frees a slot for waiting requests
        w.busy = claim
        async with self.cond:
            self.workers.append(w)
            if dep is not self.deployment:  # switched while it started: serve at most this request, then retire
                w.draining = True
            self.peak_busy = max(self.peak_busy, sum(x.busy for x in self.workers))
            self.cond.notify_all()
        self._changed()
        return w

    def _release_orphan(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is None:
            asyncio.ensure_future(self.release(task.result()))

    async def release(self, w: Worker) -> None:
        async with self.cond:
            w.busy = False
            w.last_used = time.monotonic()
            self.cond.notify_all()
        if w.draining or not w.alive:
            await self.stop_worker(w)

    # ---- scaling ----------------------------------------------------------
    async def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_forever())

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(min(0.25, self.idle_timeout_s / 4 or 0.25))
            try:
                await self.reap()
            except Exception:  # keep the loop alive whatever one pass hit
                pass

    async def reap(self) -> None:
        now = time.monotonic()
        async with self.cond:
            for w in [w for w in self.workers if not w.alive]:
                self.workers.remove(w)
            live = self.live()
            idle = sorted((w for w in live if not w.busy), key=lambda w: w.last_used)
            excess = len(live) - self.min_warm
            victims = [w for w in idle if now - w.last_used >= self.idle_timeout_s][:max(excess, 0)]
            victims += [w for w in self.workers if w.draining and not w.busy]  # an old version left idle
            for w in victims:
                self.workers.remove(w)
            need_warm = self.deployment is not None and len(live) + self.starting < self.min_warm
            if need_warm:
                self.starting += 1
        for w in victims:
            await _stop(w.proc)
        if victims:
            self._changed()
        if need_warm:
            await self._start_worker(self.deployment, claim=False)

    async def switch(self, new: Deployment, smoke_prompt: str = "Say hello.") -> dict:
        """Blue/green: the new version on a fresh port, smoke-tested, then live; the old drains."""
        w = await self.spawn(new)
        try:
            async with httpx.AsyncClient(timeout=60) as client:
                health = (await client.get(f"{w.url}/health")).json()
                ids = new.tokenizer.encode_chat([{"role": "user", "content": smoke_prompt}])
                r = await client.post(f"{w.url}/generate", json={"prompt_ids": ids, "max_tokens": 8})
                lines = [json.loads(x) for x in r.text.splitlines() if x.strip()]
            done = lines[-1] if lines else {}
            if r.status_code != 200 or "error" in done or not done.get("done"):
                raise SmokeTestFailed(f"smoke completion failed: {done.get('error') or r.text[:300]}")
            smoke_text = "".join(x.get("text", "") for x in lines[:-1])
            first_token_s = float(done.get("ttft_s") or 0.0)  # engine-side: prompt in, first token out
        except SmokeTestFailed:
            await _stop(w.proc)
            raise
        except Exception as exc:
            await _stop(w.proc)
            raise SmokeTestFailed(f"smoke test failed: {type(exc).__name__}: {exc}") from exc
        async with self.cond:
            previous = self.deployment
            self.deployment = new
            old = [x for x in self.workers if x.deployment is not new]
            for x in old:
                x.draining = True
            self.workers.append(w)
            idle_old = [x for x in old if not x.busy]
            for x in idle_old:
                self.workers.remove(x)
            self.cond.notify_all()
        for x in idle_old:
            await _stop(x.proc)
        self._changed()
        return {"version": new.version, "variant": new.variant, "previous_version": previous and previous.version,
                "worker_start_s": w.start_s, "cold_start_s": w.start_s + first_token_s,
                "smoke_output": smoke_text, "health": health}

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
        async with self.cond:
            workers, self.workers = self.workers, []
        for w in workers:
            await _stop(w.proc)
        self._changed()

    def status(self) -> dict:
        return {
            "deployment": self.deployment.public() if self.deployment else None,
            "workers": [{"port": w.port, "version": w.deployment.version, "busy": w.busy, "draining": w.draining,
                         "alive": w.alive, "idle_s": round(time.monotonic() - w.last_used, 2)}
                        for w in self.workers],
            "starting": self.starting,
            "peak_busy": self.peak_busy,
        }


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 5)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
