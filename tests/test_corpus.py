"""The shipped prompt corpora and their blocking Great Expectations check."""
from __future__ import annotations

import json

import dagster as dg
import pytest

from llm_assets.assets.model import prompt_corpus
from llm_assets.checks import prompt_corpus_is_valid
from llm_assets.core.corpus import load_corpus
from llm_assets.core.validation import validate_corpus


def test_shipped_corpus_is_valid_and_shifted():
    df = load_corpus()
    ref, shifted = df[df.set == "reference"], df[df.set == "shifted"]
    assert len(ref) >= 200 and ref["kind"].nunique() >= 4
    assert set(ref["kind"]) >= {"chat_qa", "summarization", "instruction", "code"}
    # The shifted set differs in domain and length profile: no shared kinds, prompts much longer.
    assert not set(shifted["kind"]) & set(ref["kind"])
    assert shifted["prompt"].str.len().median() > 4 * ref["prompt"].str.len().median()
    v = validate_corpus(df)
    assert v.success, v.failures
    assert v.evaluated >= 10


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda df: df.assign(prompt=[df.prompt[0], df.prompt[0]] + list(df.prompt[2:])),
         "expect_compound_columns_to_be_unique"),
        (lambda df: df.assign(prompt=[""] + list(df.prompt[1:])), "expect_column_value_lengths_to_be_between"),
        (lambda df: df.assign(prompt=["         "] + list(df.prompt[1:])), "expect_column_values_to_not_match_regex"),
        (lambda df: df.drop(columns=["reference"]), "missing columns"),
        (lambda df: df[df.set == "shifted"], "reference set has 0 prompts"),
    ],
    ids=["duplicate", "empty", "whitespace", "no-reference-column", "no-reference-set"],
)
def test_bad_corpus_fails_validation(mutate, expected):
    df = load_corpus()
    v = validate_corpus(mutate(df.reset_index(drop=True)))
    assert not v.success
    assert any(expected in f for f in v.failures), v.failures


def _write_corpus(dir_, rows_ref, rows_shift):
    dir_.mkdir()
    for name, rows in (("reference.jsonl", rows_ref), ("shifted.jsonl", rows_shift)):
        (dir_ / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_blocking_check_stops_a_corpus_with_a_duplicate(tmp_path, artifact_store):
    df = load_corpus()
    ref = df[df.set == "reference"].drop(columns="set").to_dict("records")
    shifted = df[df.set == "shifted"].drop(columns="set").to_dict("records")
    ref[5] = {**ref[5], "prompt": ref[4]["prompt"]}
    _write_corpus(tmp_path / "bad", ref, shifted)

    result = dg.materialize(
        [prompt_corpus, prompt_corpus_is_valid],
        resources={"artifact_store": artifact_store},
        run_config={"ops": {"prompt_corpus": {"config": {"data_dir": str(tmp_path / "bad")}}}},
        raise_on_error=False,
    )
    evals = result.get_asset_check_evaluations()
    assert len(evals) == 1 and not evals[0].passed
    assert "expect_compound_columns_to_be_unique" in evals[0].description


def test_check_passes_on_shipped_corpus(artifact_store):
    result = dg.materialize([prompt_corpus, prompt_corpus_is_valid], resources={"artifact_store": artifact_store})
    assert result.success
    [ev] = result.get_asset_check_evaluations()
    assert ev.passed
    mat = result.asset_materializations_for_node("prompt_corpus")[0]
    assert mat.metadata["reference_prompts"].value == len(load_corpus().query("set == 'reference'"))


def test_unreadable_corpus_line_names_file_and_line(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    (d / "reference.jsonl").write_text('{"id": "a", "kind": "k", "prompt": "p", "reference": "r"}\n{oops\n')
    (d / "shifted.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"reference\.jsonl:2: not valid JSON"):
        load_corpus(d)
