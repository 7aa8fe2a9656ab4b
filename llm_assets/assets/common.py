"""Helpers the asset modules share: the `latest` pointer each asset publishes, metadata formatting."""
from __future__ import annotations

import dagster as dg
import pandas as pd

from resources.artifact_store import ArtifactNotFound, ArtifactStore


def latest_key(asset: str, partition: str | None = None) -> str:
    return f"{asset}/{partition}/latest.json" if partition else f"{asset}/latest.json"


def publish_latest(store: ArtifactStore, asset: str, record: dict, partition: str | None = None) -> None:
    """Point downstream assets (and the endpoint) at what this materialization produced. One atomic put."""
    store.put_json(latest_key(asset, partition), record)


def read_latest(store: ArtifactStore, asset: str, partition: str | None = None) -> dict:
    key = latest_key(asset, partition)
    if not store.exists(key):
        what = f"{asset}[{partition}]" if partition else asset
        raise ArtifactNotFound(f"{what} has not been materialized into {store.uri(key)}; materialize {what} first")
    return store.get_json(key)


def md_table(df: pd.DataFrame) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.to_markdown(index=False))


def mlflow_link(url: str) -> dg.MetadataValue:
    return dg.MetadataValue.url(url) if url.startswith("http") else dg.MetadataValue.text(url)
