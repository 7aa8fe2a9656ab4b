"""The one `dg.Definitions`: every asset, check, resource, job, sensor and schedule is wired here.

Resources come from the environment so the same code runs on one machine and at scale:
- `LLMOPS_S3_BUCKET` set: artifacts go to S3 (`LLMOPS_S3_ENDPOINT_URL` for MinIO or moto),
  otherwise to `.llmops/artifacts` (or `$LLMOPS_HOME/artifacts`);
- `MLFLOW_TRACKING_URI` set: that MLflow server, otherwise a SQLite store in `.llmops/`.
"""

import os

import dagster as dg

from llm_assets.assets import benchmark, compression, deployment, model, registry
from llm_assets.checks import (benchmark_results_are_sane, benchmark_results_within_quality_budget,
                               prompt_corpus_is_valid)
from resources.artifact_store import ArtifactStore, LocalArtifactStore, S3ArtifactStore
from resources.deploy_target import LocalServerlessTarget
from resources.mlflow_tracking import MLflowTracking


def artifact_store_from_env() -> ArtifactStore:
    bucket = os.environ.get("LLMOPS_S3_BUCKET")
    if bucket:
        return S3ArtifactStore(bucket=bucket, endpoint_url=os.environ.get("LLMOPS_S3_ENDPOINT_URL") or None)
    return LocalArtifactStore()


def mlflow_from_env() -> MLflowTracking:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return MLflowTracking(tracking_uri=uri) if uri else MLflowTracking()


lifecycle_job = dg.define_asset_job(
    "lifecycle",
    selection=dg.AssetSelection.assets(model.prompt_corpus, model.base_model),
    description="The unpartitioned head of the lifecycle: prompt corpus and base model.",
)
release_job = dg.define_asset_job(
    "release",
    selection=dg.AssetSelection.assets(registry.champion_model, deployment.deployed_endpoint),
    description="Promote the best gated variant to @champion and deploy it blue/green.",
)
variants_job = dg.define_asset_job(
    "variants",
    selection=dg.AssetSelection.assets(compression.compressed_model, benchmark.benchmark_results),
    partitions_def=compression.variant_partitions,
    description="Per variant (partition): build the compressed model, then benchmark and gate it.",
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([model, compression, benchmark, registry, deployment]),
    asset_checks=[prompt_corpus_is_valid, benchmark_results_are_sane, benchmark_results_within_quality_budget],
    jobs=[lifecycle_job, variants_job, release_job],
    resources={"artifact_store": artifact_store_from_env(), "mlflow": mlflow_from_env(),
               "deploy_target": LocalServerlessTarget()},
)
