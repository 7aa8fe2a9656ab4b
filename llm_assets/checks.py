"""Great Expectations-backed asset checks. Blocking checks stop bad data from flowing downstream."""

import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

from llm_assets.assets.common import read_latest
from llm_assets.assets.model import prompt_corpus
from llm_assets.core.validation import Validation, validate_corpus
from resources.artifact_store import ArtifactStore


def _result(validation: Validation, **metadata) -> dg.AssetCheckResult:
    table = pd.DataFrame(validation.results)
    return dg.AssetCheckResult(
        passed=validation.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None if validation.success else "; ".join(validation.failures)[:2000],
        metadata={
            "expectations_evaluated": validation.evaluated,
            "failures": dg.MetadataValue.json(validation.failures),
            "results": dg.MetadataValue.md(table.to_markdown(index=False)) if len(table) else "none",
            **metadata,
        },
    )


@dg.asset_check(asset=prompt_corpus, blocking=True)
def prompt_corpus_is_valid(artifact_store: ArtifactStore) -> dg.AssetCheckResult:
    """Schema, no empty or whitespace prompt, length bounds, no duplicate prompt within a set,
    >= 200 reference prompts over >= 4 task kinds, and a non-empty shifted set."""
    latest = read_latest(artifact_store, "prompt_corpus")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "corpus.parquet"
        path.write_bytes(artifact_store.get_bytes(latest["key"]))
        df = pd.read_parquet(path)
    return _result(validate_corpus(df), rows=len(df))
