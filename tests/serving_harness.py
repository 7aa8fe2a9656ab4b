"""A real gateway on 127.0.0.1 for tests: uvicorn in a background thread, real worker processes."""
from __future__ import annotations

import threading
import time

import httpx
import uvicorn

from serving.gateway import GatewaySettings, create_app
from serving.pool import Deployment
from tests.support import free_port


class RunningGateway:
    def __init__(self, deploy_dir, model_dir, version="v1", variant="onnx-int4", **settings):
        self.settings = GatewaySettings(deploy_dir=str(deploy_dir), port=free_port(), **settings)
        self.app = create_app(self.settings, Deployment(model_dir=str(model_dir), version=version, variant=variant))
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.settings.port,
                                                    log_level="warning"))
        self.app.state.server = self.server
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.settings.port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.02)
        self.client = httpx.Client(base_url=self.url, timeout=60)
        return self

    def __exit__(self, *exc):
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)

    @property
    def pool(self):
        return self.app.state.pool

    @property
    def traffic(self):
        return self.app.state.traffic

    def admin(self, method, path, **kw):
        return self.client.request(method, path, headers={"Authorization": f"Bearer {self.settings.admin_token}"},
                                   **kw)

    def wait_for(self, predicate, timeout=30.0, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def warm(self) -> int:
        return self.client.get("/health").json()["warm_instances"]
