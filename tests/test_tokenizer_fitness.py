"""Tokenizer fitness per language (docs/definitions.md, definition 18): the stored counts equal a direct count,
fertility and its ratio to the best-served language equal a hand computation, and a language the tokenizer
spells in pieces (with no unknown token at all) is named in the summary, `runs`, the caveats and the report."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from toolkit.cli import cli
from toolkit.store.warehouse import Warehouse

LIMIT = 1.5  # definition 18's fertility limit, restated here as the contract


def _pieces(n: int, seed: int) -> list[str]:
    """Sentences of made-up words over letters the tiny tokenizer knows one by one but never saw joined."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("tnsrlkdmgb"))
    return [" ".join("".join(rng.choice(letters, 9)) for _ in range(5)) + "." for _ in range(n)]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, checkpoint, sample):
    """A run on the sample's English and Dutch sentences plus 'xx', whose words the tokenizer spells in pieces
    (every letter known, no unknown token)."""
    keep = sample.filter(pl.col("language").is_in(["en", "nl"])).select("text", "language", "label")
    labels = keep["label"].unique().sort().to_list()
    xx = pl.DataFrame({"text": _pieces(24, 3), "language": "xx", "label": [labels[i % len(labels)] for i in range(24)]})
    data = pl.concat([keep, xx])
    path = tmp_path_factory.mktemp("fitness") / "d.csv"
    data.write_csv(path)
    db = path.parent / "w.duckdb"
    r = CliRunner().invoke(cli, ["--db", str(db), "extract", str(checkpoint()), str(path), "--run", "r", "--quiet"])
    assert r.exit_code == 0, r.output
    return db, data, r.stdout


def test_counts_and_fertility_equal_a_direct_count(fitted, checkpoint):
    from transformers import AutoTokenizer

    db, data, _ = fitted
    tok = AutoTokenizer.from_pretrained(checkpoint())
    special = set(tok.all_special_ids) - {tok.unk_token_id}
    expected = {}
    for lang in ("en", "nl", "xx"):
        texts = data.filter(pl.col("language") == lang)["text"].to_list()
        ids = tok(texts)["input_ids"]
        tokens = sum(sum(t not in special for t in seq) for seq in ids)
        unknown = sum(seq.count(tok.unk_token_id) for seq in ids)
        words = sum(len(re.findall(r"\w+|[^\w\s]", t)) for t in texts)  # ASCII/Latin text: definition 18's words
        expected[lang] = (len(texts), tokens, unknown, words, tokens / words)
    with Warehouse(db, read_only=True) as wh:
        stored = wh.sql("select * from tokenization order by language")
        fit = wh.tokenizer_fitness("r")
    for row in stored.iter_rows(named=True):
        n, tokens, unknown, words, _ = expected[row["language"]]
        assert (row["n_texts"], row["n_tokens"], row["n_unknown"], row["n_words"]) == (n, tokens, unknown, words)
        assert row["n_word_tokens"] == tokens  # nothing was cut at max length
    best = min(("en", "nl"), key=lambda lang: expected[lang][4])
    for row in fit.iter_rows(named=True):
        f = expected[row["language"]][4]
        assert row["fertility"] == pytest.approx(f)
        assert row["reference_language"] == best
        assert row["fertility_ratio"] == pytest.approx(f / expected[best][4])
        assert row["underserved"] == (f / expected[best][4] > LIMIT)
        assert row["unknown_share"] == 0  # no unknown token anywhere: the unknown share alone says "fine"
    assert fit.filter("underserved")["language"].to_list() == ["xx"]


def test_the_underserved_language_is_named_where_users_look(fitted, neurons):
    db, _, summary = fitted
    line = next(ln for ln in summary.splitlines() if ln.strip().startswith("warning"))
    assert "xx" in line and "en" not in line.split(":")[0] and "nl" not in line.split(":")[0]
    assert "fertility" in summary
    r = neurons("--db", db, "runs", "--json")
    assert "xx" in r.stdout and "underserved" in r.stdout
    r = neurons("--db", db, "analyze", "--run", "r")
    assert r.exit_code == 0, r.stderr
    assert "tokenizer serves xx poorly" in r.stdout


def test_unspaced_scripts_count_each_character_as_a_word():
    from toolkit.capture.tokens import tokenization

    class Tok:
        unk_token_id = 0
        all_special_ids = [0, 1]

    texts = ["でも毎年酒で", "ok 日本 go!", "a b"]
    ids = [[1, 5, 6, 7, 1], [1, 5, 6, 0, 1], [1, 8, 9, 1]]
    got = tokenization(Tok(), texts, ids, np.array([False, False, True]), ["ja", "mix", "en"]).sort("language")
    rows = {r["language"]: r for r in got.iter_rows(named=True)}
    assert (rows["ja"]["n_words"], rows["ja"]["n_unspaced"], rows["ja"]["n_chars"]) == (6, 6, 6)
    assert (rows["mix"]["n_words"], rows["mix"]["n_unspaced"], rows["mix"]["n_tokens"]) == (5, 2, 3)
    assert rows["mix"]["n_unknown"] == 1
    # a text cut at max length counts for the unknown share but not for fertility
    assert (rows["en"]["n_whole"], rows["en"]["n_words"], rows["en"]["n_word_tokens"], rows["en"]["n_tokens"]) == (
        0,
        0,
        0,
        2,
    )
