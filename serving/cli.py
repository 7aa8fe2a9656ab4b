"""Talk to the running endpoint from a shell.

    python -m serving.cli ask "What is the capital of France?"
    python -m serving.cli status
    python -m serving.cli stop
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import httpx

from serving import deploy


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m serving.cli", description="The llmops endpoint from a shell.")
    ap.add_argument("--deploy-dir", default=str(deploy.default_deploy_dir()))
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("ask", help="send one chat message and stream the answer")
    a.add_argument("prompt")
    a.add_argument("--max-tokens", type=int, default=128)
    sub.add_parser("status", help="the deployment and its workers")
    sub.add_parser("stop", help="stop the endpoint and its workers")
    args = ap.parse_args(argv)
    deploy_dir = Path(args.deploy_dir)
    url = deploy.running(deploy_dir)
    if args.cmd == "stop":
        print("stopped" if deploy.stop_gateway(deploy_dir) else "no endpoint was running")
        return 0
    if url is None:
        print(f"no endpoint running for {deploy_dir}; run `make demo` (or materialize deployed_endpoint)",
              file=sys.stderr)
        return 1
    if args.cmd == "status":
        status = httpx.get(f"{url}/admin/status", timeout=5,
                           headers={"Authorization": f"Bearer {deploy.admin_token(deploy_dir)}"}).json()
        print(json.dumps({"url": url, **status}, indent=2))
        return 0
    try:
        deploy.ask(url, args.prompt, args.max_tokens, api_key=os.environ.get("LLMOPS_API_KEY"),
                   on_text=lambda t: print(t, end="", flush=True))
    except deploy.DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
