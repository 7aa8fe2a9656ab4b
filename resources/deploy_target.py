"""Deploy targets: where the champion is served. The embedded default is the local serverless
gateway (serving/), a detached process on 127.0.0.1 that outlives the Dagster run."""
import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from llm_assets.core.settings import llmops_home
from serving import deploy


class LocalServerlessTarget(dg.ConfigurableResource):
    """The local serverless gateway: scale to zero, warm pool, admission control, traffic log."""

    deploy_dir: str = Field(default=str(llmops_home() / "deploy"), description="Pid, settings, logs, traffic log.")
    host: str = Field(default="127.0.0.1", description="Bind address; loopback unless you mean it.")
    port: int = Field(default=int(os.environ.get("LLMOPS_PORT", "8000")), description="Public port.")
    min_warm: int = Field(default=1, description="Workers kept warm (provisioned concurrency).")
    max_instances: int = Field(default=2, description="Max engine workers (= requests decoding at once).")
    max_queue: int = Field(default=8, description="Requests that may wait for a worker before 429.")
    idle_timeout_s: float = Field(default=300.0, description="Idle lifetime of a worker above min_warm.")
    request_timeout_s: float = Field(default=120.0, description="Whole-request budget before 504.")
    store_prompts: bool = Field(default=True, description="False: the traffic log keeps prompt hashes only.")

    @property
    def path(self) -> Path:
        return Path(self.deploy_dir)

    def settings(self) -> dict:
        return {"host": self.host, "port": self.port, "min_warm": self.min_warm, "max_instances": self.max_instances,
                "max_queue": self.max_queue, "idle_timeout_s": self.idle_timeout_s,
                "request_timeout_s": self.request_timeout_s, "store_prompts": self.store_prompts}

    def url(self) -> str | None:
        return deploy.running(self.path)

    def serving_version(self) -> str | None:
        return deploy.serving_version(self.path)

    def deploy(self, model_dir: str, version: str, variant: str, threads: int | None = None) -> dict:
        """Start the gateway if needed, then blue/green to `version`. Raises deploy.DeployError on rollback."""
        url, started = deploy.ensure_gateway(self.path, self.settings())
        return {"url": url, "gateway_started": started,
                **deploy.deploy_version(self.path, model_dir, version, variant, threads)}

    def ask(self, prompt: str, max_tokens: int = 48) -> str:
        url = self.url()
        if url is None:
            raise deploy.DeployError(f"no endpoint running for {self.deploy_dir}")
        return deploy.ask(url, prompt, max_tokens)

    def stop(self) -> bool:
        return deploy.stop_gateway(self.path)
