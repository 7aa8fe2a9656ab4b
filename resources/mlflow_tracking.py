"""MLflow tracking and registry, through an explicit client (no global active run).

The embedded default is a SQLite file and a local artifact root inside the
project; at scale point `tracking_uri` at an MLflow server. One experiment per
pipeline. Assets open a run with `with mlflow.run(name, tags) as run:` and log
through the returned `RunLogger`; a run that raises is marked FAILED.
"""

import json
import math
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import dagster as dg
from pydantic import Field

from llm_assets.core.settings import default_mlflow_artifact_root, default_mlflow_uri


class RunLogger:
    """Logs params, metrics and artifacts to one MLflow run."""

    def __init__(self, client, run_id: str, experiment_id: str, tracking_uri: str):
        self.client, self.run_id, self.experiment_id, self.tracking_uri = client, run_id, experiment_id, tracking_uri

    def log_params(self, params: dict[str, Any]) -> None:
        for k, v in params.items():
            self.client.log_param(self.run_id, k, str(v)[:6000])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for k, v in metrics.items():
            if v is not None and math.isfinite(float(v)):
                self.client.log_metric(self.run_id, k, float(v), step=step or 0)

    def set_tags(self, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dict(self, obj: Any, name: str) -> None:
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / name
            p.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
            self.client.log_artifact(self.run_id, str(p))

    @property
    def url(self) -> str:
        """A link to the run in the MLflow UI (or a locator when the store is a local file)."""
        if self.tracking_uri.startswith(("http://", "https://")):
            return f"{self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"
        return f"mlflow run {self.run_id} (experiment {self.experiment_id}) in {self.tracking_uri}"


class MLflowTracking(dg.ConfigurableResource):
    """MLflow tracking + model registry for one pipeline."""

    tracking_uri: str = Field(default=default_mlflow_uri(), description="MLflow tracking URI (sqlite:/// or http://).")
    artifact_root: str = Field(
        default=default_mlflow_artifact_root(),
        description="Artifact location for the pipeline's experiment when it is created.",
    )
    experiment: str = Field(default="llmops", description="Experiment name: one per pipeline.")

    def client(self):
        from mlflow.tracking import MlflowClient

        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self, client=None) -> str:
        client = client or self.client()
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        location = self.artifact_root
        if "://" not in location:
            Path(location).mkdir(parents=True, exist_ok=True)
            location = Path(location).resolve().as_uri()
        return client.create_experiment(self.experiment, artifact_location=location)

    @contextmanager
    def run(self, name: str, tags: dict[str, Any] | None = None) -> Iterator[RunLogger]:
        client = self.client()
        exp_id = self.experiment_id(client)
        run = client.create_run(exp_id, run_name=name, tags={k: str(v) for k, v in (tags or {}).items()})
        logger = RunLogger(client, run.info.run_id, exp_id, self.tracking_uri)
        try:
            yield logger
        except BaseException:
            client.set_terminated(run.info.run_id, status="FAILED")
            raise
        client.set_terminated(run.info.run_id, status="FINISHED")

    # ---- model registry -----------------------------------------------------
    @property
    def registered_model(self) -> str:
        """One registered model per pipeline."""
        return f"{self.experiment}-llm"

    def get_alias(self, alias: str):
        """The model version behind `alias`, or None."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_model_version_by_alias(self.registered_model, alias)
        except MlflowException:
            return None

    def set_alias(self, alias: str, version: str) -> None:
        self.client().set_registered_model_alias(self.registered_model, alias, version)

    def register_champion(self, source: str, run_id: str, tags: dict) -> tuple[str, str | None]:
        """A new version with `tags`, alias `champion` moved to it, `previous` to the one it replaces.

        Returns (new version, previous champion version or None).
        """
        from mlflow.exceptions import MlflowException

        client = self.client()
        try:
            client.get_registered_model(self.registered_model)
        except MlflowException:
            client.create_registered_model(self.registered_model,
                                           description="Champion LLM variants promoted by the llmops pipeline")
        mv = client.create_model_version(self.registered_model, source=source, run_id=run_id,
                                         tags={k: str(v) for k, v in tags.items()})
        previous = self.get_alias("champion")
        if previous is not None:
            client.set_registered_model_alias(self.registered_model, "previous", previous.version)
        client.set_registered_model_alias(self.registered_model, "champion", mv.version)
        return mv.version, previous.version if previous else None
