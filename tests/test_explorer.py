"""The neuron explorer: top_sentences against numpy, and `neurons neuron` cards."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import synthetic as syn
from conftest import assert_one_line_error

from toolkit.capture.load import load_long
from toolkit.store.warehouse import Warehouse


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explorer")
    values, lang, lab = syn.make(seed=2, per_cell=6, neurons=48)
    texts = [f"sentence {i} ({lang[i]}, {lab[i]})" for i in range(len(lang))]
    path = tmp / "w.duckdb"
    load_long(path, syn.write_long(tmp / "e.parquet", [syn.long_frame(values, lang, lab, 7, texts)]), "e")
    return path, values.astype(np.float32), lang, texts


def test_top_sentences_are_the_extremes_per_language(db):
    path, values, lang, texts = db
    with Warehouse(path, read_only=True) as wh:
        got = wh.sql(
            "select neuron, language, rank, sentence_id, value, z from top_sentences where run = 'e' and layer = 7"
        )
    assert got.height == values.size  # every sentence once per neuron, with a positive or negative rank
    for neuron in (3, 20, 33):
        for language in syn.LANGS:
            rows = np.flatnonzero(lang == language)
            col = values[rows, neuron]
            order = rows[np.lexsort((rows, -col))]  # highest first, ties by sentence id
            mine = got.filter((got["neuron"] == neuron) & (got["language"] == language))
            ranked = dict(zip(mine["rank"].to_list(), mine["sentence_id"].to_list()))
            assert [ranked[k] for k in (1, 2, 3)] == order[:3].tolist()
            low = rows[np.lexsort((rows, col))]
            assert [ranked[k] for k in (-1, -2)] == low[:2].tolist()
            # z in the sentence's language (population sd), the scale of the card's profiles
            z = (col.astype(np.float64) - col.mean(dtype=np.float64)) / col.std(dtype=np.float64)
            by_id = dict(zip(mine["sentence_id"].to_list(), mine["z"].to_list()))
            assert [by_id[int(r)] for r in rows] == pytest.approx(z, abs=1e-5)


def test_neuron_card_in_the_terminal(db, neurons):
    path, values, lang, texts = db
    with Warehouse(path, read_only=True) as wh:
        rank = wh.sql("select rank from between_label_variance where run = 'e' and neuron = 3").item()
    out = neurons("--db", path, "neuron", "3", "--run", "e", "--sentences", "1")
    assert out.exit_code == 0, out.stderr
    assert f"rank {rank} of 48" in out.stdout
    rows = np.flatnonzero(lang == "ja")
    top = rows[np.argmax(values[rows, 3])]
    assert texts[top][:60] in out.stdout
    js = json.loads(neurons("--db", path, "neuron", "3", "--run", "e", "--json").stdout)
    card = js["neurons"]["3"]
    assert card["rank"] == rank and len(card["profile"]) == 4 * 6 and len(card["classes"]) == 6
    assert_one_line_error(neurons("--db", path, "neuron", "99", "--run", "e"), "no neuron 99")


def test_library_calls_take_a_path_or_an_open_warehouse(db):
    """One convention for every library entry point's first argument: a warehouse path or an open Warehouse give
    the same answer, and the run object names its layers and default layer."""
    from polars.testing import assert_frame_equal

    from toolkit.figures.export import export_query
    from toolkit.stats.analysis import analyze, layer_sweep
    from toolkit.stats.explorer import neuron_cards
    from toolkit.store.warehouse import Warehouse

    path = db[0]
    by_path = analyze(path, "e")
    with Warehouse(path, read_only=True) as wh:
        run = wh.run("e")
        assert (run.layers, run.default_layer, run.stored_in) == ([7], 7, "warehouse")
        by_object = analyze(wh, "e")
        assert_frame_equal(by_object.top_variance, by_path.top_variance)
        assert_frame_equal(layer_sweep(wh, "e"), layer_sweep(path, "e"))  # floats to rounding (parallel sums)
        a, b = neuron_cards(wh, "e", 7, [3], 2), neuron_cards(path, "e", 7, [3], 2)
        assert_frame_equal(a.profile, b.profile)
        assert_frame_equal(a.sentences, b.sentences)
        assert_frame_equal(export_query(wh, "label_profiles", "e"), export_query(path, "label_profiles", "e"))


def test_a_long_sentence_is_cut_with_an_ellipsis():
    from toolkit.stats.explorer import TEXT_WIDTH, shortened

    texts = ["a" * TEXT_WIDTH, "b" * (TEXT_WIDTH + 1), "ü" * (TEXT_WIDTH + 5)]
    got = pl.DataFrame({"text": texts}).select(shortened("text"))["text"].to_list()
    assert got[0] == texts[0]
    assert got[1] == "b" * (TEXT_WIDTH - 1) + "…" and got[2] == "ü" * (TEXT_WIDTH - 1) + "…"
    assert all(len(t) <= TEXT_WIDTH for t in got)
