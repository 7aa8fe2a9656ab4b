"""Where the project keeps its state on one machine.

Everything the embedded default writes (artifact store, MLflow store, Dagster
home, deployments) lives under one git-ignored directory, `.llmops/` in the
repository, or wherever `LLMOPS_HOME` points.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = PROJECT_ROOT / "data"


def llmops_home() -> Path:
    """The state directory: `$LLMOPS_HOME`, else `<repo>/.llmops`."""
    return Path(os.environ.get("LLMOPS_HOME") or PROJECT_ROOT / ".llmops").resolve()


def default_artifact_root() -> str:
    return str(llmops_home() / "artifacts")


def default_mlflow_uri() -> str:
    return f"sqlite:///{llmops_home() / 'mlflow.db'}"


def default_mlflow_artifact_root() -> str:
    return str(llmops_home() / "mlruns")


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python process that must import this project from anywhere."""
    path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}
