"""ConfigurableResources for every external system the pipeline talks to."""
from resources.artifact_store import ArtifactStore, IntegrityError, LocalArtifactStore, S3ArtifactStore
from resources.deploy_target import LocalServerlessTarget
from resources.mlflow_tracking import MLflowTracking

__all__ = ["ArtifactStore", "IntegrityError", "LocalArtifactStore", "LocalServerlessTarget", "MLflowTracking",
           "S3ArtifactStore"]
