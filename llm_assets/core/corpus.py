"""The prompt corpora: loading, schema, and the numbers that describe them."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from llm_assets.core.settings import DATA_DIR

COLUMNS = ["id", "kind", "prompt", "reference"]
SETS = {"reference": "reference.jsonl", "shifted": "shifted.jsonl"}
# Bounds the GX check enforces: long enough to be a prompt, short enough to fit
# a small model's context with room for the answer.
PROMPT_CHARS = (8, 4000)
REFERENCE_CHARS = (1, 2000)


class CorpusError(ValueError):
    pass


def load_jsonl(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"corpus file {path} does not exist")
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{i}: not valid JSON ({exc.msg})") from exc
    return pd.DataFrame(rows, columns=None if rows else COLUMNS)


def load_corpus(data_dir: str | Path = DATA_DIR) -> pd.DataFrame:
    """Both sets in one frame with a `set` column (`reference` or `shifted`)."""
    frames = []
    for name, file in SETS.items():
        df = load_jsonl(Path(data_dir) / file)
        df.insert(0, "set", name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def describe(df: pd.DataFrame) -> pd.DataFrame:
    """Per set and kind: how many prompts and their length profile (chars)."""
    lengths = df.assign(prompt_chars=df["prompt"].str.len(), reference_chars=df["reference"].str.len())
    return (
        lengths.groupby(["set", "kind"])
        .agg(prompts=("prompt", "size"), mean_prompt_chars=("prompt_chars", "mean"),
             max_prompt_chars=("prompt_chars", "max"), mean_reference_chars=("reference_chars", "mean"))
        .round(1)
        .reset_index()
    )


def write_corpus_parquet(df: pd.DataFrame, path: str | Path) -> None:
    df.to_parquet(path, index=False)
