"""Run the endpoint as a detached process and deploy versions to it (used by the deployed_endpoint
asset and by `python -m serving.cli`).

The gateway outlives the Dagster run that started it: it runs in its own session, its pid is in
`<deploy_dir>/gateway.pid`, its settings in `gateway.json`, its admin token in `admin_token`
(mode 0600, never in the repo). Workers are its children and stop with it.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from llm_assets.core.settings import PROJECT_ROOT, llmops_home, subprocess_env


class DeployError(RuntimeError):
    pass


def default_deploy_dir() -> Path:
    return llmops_home() / "deploy"


def _pid(deploy_dir: Path) -> int | None:
    try:
        pid = int((deploy_dir / "gateway.pid").read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def gateway_url(deploy_dir: Path) -> str | None:
    cfg = deploy_dir / "gateway.json"
    if not cfg.is_file():
        return None
    c = json.loads(cfg.read_text())
    return f"http://{c.get('host', '127.0.0.1')}:{c.get('port', 8000)}"


def running(deploy_dir: Path) -> str | None:
    """The URL of a live gateway for `deploy_dir`, or None."""
    url = gateway_url(deploy_dir)
    if url is None or _pid(deploy_dir) is None:
        return None
    try:
        httpx.get(f"{url}/health", timeout=2).raise_for_status()
        return url
    except httpx.HTTPError:
        return None


def admin_token(deploy_dir: Path) -> str:
    path = deploy_dir / "admin_token"
    if not path.is_file():
        deploy_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def ensure_gateway(deploy_dir: Path, settings: dict, start_timeout_s: float = 60) -> tuple[str, bool]:
    """Start the gateway if it is not running (settings -> gateway.json). Returns (url, started_now)."""
    deploy_dir.mkdir(parents=True, exist_ok=True)
    url = running(deploy_dir)
    if url is not None:
        current = json.loads((deploy_dir / "gateway.json").read_text())
        if current.get("port") == settings.get("port", current.get("port")):
            return url, False
        stop_gateway(deploy_dir)
    admin_token(deploy_dir)
    (deploy_dir / "gateway.json").write_text(json.dumps(settings, indent=2))
    env = subprocess_env()
    with open(deploy_dir / "gateway.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "serving.gateway", "--deploy-dir", str(deploy_dir)],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=PROJECT_ROOT, env=env,
                                start_new_session=True)
    url = gateway_url(deploy_dir)
    deadline = time.time() + start_timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            tail = (deploy_dir / "gateway.log").read_text(errors="replace").strip().splitlines()[-5:]
            raise DeployError(f"gateway exited with {proc.returncode}: {' | '.join(tail)}")
        try:
            httpx.get(f"{url}/health", timeout=1).raise_for_status()
            return url, True
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise DeployError(f"gateway did not answer on {url} within {start_timeout_s}s")


def deploy_version(deploy_dir: Path, model_dir: str, version: str, variant: str, threads: int | None = None,
                   timeout_s: float = 300) -> dict:
    """Blue/green through the gateway's admin API; raises DeployError (nothing switched) if the smoke test fails."""
    url = running(deploy_dir)
    if url is None:
        raise DeployError(f"no gateway running for {deploy_dir}")
    r = httpx.post(f"{url}/admin/deploy", timeout=timeout_s,
                   headers={"Authorization": f"Bearer {admin_token(deploy_dir)}"},
                   json={"model_dir": model_dir, "version": version, "variant": variant, "threads": threads})
    if r.status_code != 200:
        raise DeployError(r.json().get("error", {}).get("message", r.text))
    return r.json()


def serving_version(deploy_dir: Path) -> str | None:
    url = running(deploy_dir)
    if url is None:
        return None
    dep = httpx.get(f"{url}/health", timeout=5).json().get("deployment")
    return dep and dep["version"]


def stop_gateway(deploy_dir: Path, timeout_s: float = 15) -> bool:
    """Stop the gateway (and its workers). Returns whether one was running."""
    pid = _pid(deploy_dir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + timeout_s
    while time.time() < deadline and _pid(deploy_dir) is not None:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
        except ChildProcessError:
            pass
        time.sleep(0.1)
    if _pid(deploy_dir) is not None:
        os.killpg(pid, signal.SIGKILL)
    (deploy_dir / "gateway.pid").unlink(missing_ok=True)
    return True


def ask(url: str, prompt: str, max_tokens: int = 64, api_key: str | None = None, on_text=None) -> str:
    """Send one chat message; stream the answer through `on_text`; return it."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "stream": True}
    parts = []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=120) as r:
        if r.status_code != 200:
            r.read()
            raise DeployError(f"{r.status_code}: {r.text}")
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                raise DeployError(event["error"]["message"])
            piece = event["choices"][0]["delta"].get("content", "")
            if piece:
                parts.append(piece)
                if on_text:
                    on_text(piece)
    return "".join(parts)
