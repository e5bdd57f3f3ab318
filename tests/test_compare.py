"""`neurons compare`: linear CKA (plain and debiased) against a numpy port of the reference's Gram-matrix form,
its known properties, matching by text, the per-neuron changes against numpy, and bad input in one line."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import synthetic as syn
from conftest import assert_one_line_error

from toolkit.capture.load import load_long
from toolkit.stats.compare import cka
from toolkit.store.warehouse import Warehouse


def reference_cka(x: np.ndarray, y: np.ndarray, debiased: bool) -> float:
    """Kornblith et al.'s linear CKA on Gram matrices (their `cka.py`: gram_linear, center_gram, cka), with the
    unbiased centring for the debiased estimate, ported here line by line in float64."""

    def center_gram(gram: np.ndarray, unbiased: bool) -> np.ndarray:
        gram = gram.copy()
        if unbiased:
            n = gram.shape[0]
            np.fill_diagonal(gram, 0)
            means = np.sum(gram, 0, dtype=np.float64) / (n - 2)
            means -= np.sum(means) / (2 * (n - 1))
            gram -= means[:, None]
            gram -= means[None, :]
            np.fill_diagonal(gram, 0)
        else:
            means = np.mean(gram, 0, dtype=np.float64)
            means -= np.mean(means) / 2
            gram -= means[:, None]
            gram -= means[None, :]
        return gram

    gx, gy = center_gram(x @ x.T, debiased), center_gram(y @ y.T, debiased)
    return float(gx.ravel() @ gy.ravel() / (np.linalg.norm(gx) * np.linalg.norm(gy)))


@pytest.mark.parametrize("n, d1, d2", [(40, 12, 30), (300, 200, 64)])
def test_cka_equals_the_reference_gram_form(n, d1, d2):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, d1)) * rng.uniform(0.1, 5, d1) + rng.uniform(-20, 20, d1)  # uncentred, unequal scales
    y = np.tanh(x[:, : min(d1, d2)] @ rng.normal(size=(min(d1, d2), d2))) + rng.normal(size=(n, d2)) + 7
    plain, debiased = cka(x, y)
    assert plain == pytest.approx(reference_cka(x, y, False), rel=1e-9, abs=1e-12)
    assert debiased == pytest.approx(reference_cka(x, y, True), rel=1e-9, abs=1e-12)


def test_debiased_cka_of_unrelated_representations_is_near_zero_where_plain_is_not():
    rng = np.random.default_rng(1)
    draws = np.array([cka(rng.normal(size=(120, 200)), rng.normal(size=(120, 150))) for _ in range(20)])
    assert draws[:, 0].min() > 0.3  # plain: biased upwards with more neurons than sentences
    assert abs(draws[:, 1].mean()) < 0.01 and np.abs(draws[:, 1]).max() < 0.05
    x = rng.normal(size=(100, 30))
    q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    assert cka(x, 3 * x @ q + 5) == pytest.approx((1.0, 1.0), abs=1e-9)  # rotation, scale and shift: the same


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Run A (layers 1 and 2) and run B on the same texts in another order: B's layer 1 is A's layer 1 rotated,
    scaled and shifted; B's layer 2 is A's layer 2 with a joy signal planted in neuron 15 and neuron 7 (a planted
    joy neuron in A) replaced by noise."""
    tmp = tmp_path_factory.mktemp("compare")
    rng = np.random.default_rng(0)
    one, lang, lab = syn.make(seed=1, per_cell=10, neurons=40)
    two, _, _ = syn.make(seed=2, per_cell=10, neurons=40)
    texts = np.array([f"sentence {i}" for i in range(len(lang))])
    q, _ = np.linalg.qr(rng.normal(size=(40, 40)))
    b_one = 2.5 * one @ q + 4
    b_two = two.copy()
    for language in np.unique(lang):  # neuron 15 (unplanted in A) gains a joy signal of 6 sd in every language
        m = lang == language
        b_two[m & (lab == "joy"), 15] += 6 * two[m, 15].std()
    b_two[:, 7] = rng.normal(size=len(lang))
    order = rng.permutation(len(lang))  # B holds the sentences in another order, under other ids
    db = tmp / "w.duckdb"
    frames_a = [syn.long_frame(one, lang, lab, 1, texts), syn.long_frame(two, lang, lab, 2, texts)]
    frames_b = [
        syn.long_frame(m[order], lang[order], lab[order], layer, texts[order]) for layer, m in ((1, b_one), (2, b_two))
    ]
    load_long(db, syn.write_long(tmp / "a.parquet", frames_a), "a")
    load_long(db, syn.write_long(tmp / "b.parquet", frames_b), "b")
    far = syn.make(seed=3, per_cell=10, neurons=40)
    others = np.array([f"other {i}" for i in range(len(lang))])
    load_long(db, syn.write_long(tmp / "c.parquet", [syn.long_frame(far[0], lang, lab, 1, others)]), "other")
    return db, (one, two), (b_one, b_two), lang, lab


def test_compare_stores_cka_for_every_layer_pair(pair, neurons, tmp_path):
    db, a, b, lang, lab = pair
    r = neurons("--db", db, "compare", "a", "b", "--json", "--quiet", "--out", tmp_path / "cka.png")
    assert r.exit_code == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["n_shared"] == len(lang) and got["matched_by"] == "text"
    with Warehouse(db, read_only=True) as wh:
        stored = wh.sql("select * from run_comparison where run_a = 'a' and run_b = 'b' order by layer_a, layer_b")
    assert stored.height == 4
    for row in stored.iter_rows(named=True):
        x = a[row["layer_a"] - 1].astype(np.float32).astype(np.float64)
        y = b[row["layer_b"] - 1].astype(np.float32).astype(np.float64)
        assert row["cka"] == pytest.approx(reference_cka(x, y, False), rel=1e-9)
        assert row["cka_debiased"] == pytest.approx(reference_cka(x, y, True), rel=1e-9)
    assert stored.filter((pl.col("layer_a") == 1) & (pl.col("layer_b") == 1))["cka"][0] == pytest.approx(1, abs=1e-6)
    assert (tmp_path / "cka.png").stat().st_size > 1000
    itself = neurons("--db", db, "compare", "a", "a", "--json", "--quiet")
    diagonal = [r for r in json.loads(itself.stdout)["cka"] if r["layer_a"] == r["layer_b"]]
    assert all(
        r["cka"] == pytest.approx(1, abs=1e-9) and r["cka_debiased"] == pytest.approx(1, abs=1e-9) for r in diagonal
    )


def test_neuron_changes_equal_numpy(pair, neurons):
    db, a, b, lang, lab = pair
    with Warehouse(db, read_only=True) as wh:
        changes = wh.sql("select * from neuron_changes('a', 'b') where layer = 2 order by neuron")
        ranks = wh.sql(
            "select run, neuron, rank from between_label_variance where layer = 2 and run in ('a', 'b') order by neuron"
        )
    pa_, pb_ = (syn.profiles(syn.zscore(m, lang), lang, lab) for m in (a[1], b[1]))
    cells = sorted(pa_)
    for row in changes.iter_rows(named=True):
        n = row["neuron"]
        va = np.array([pa_[c][0][n] for c in cells])
        vb = np.array([pb_[c][0][n] for c in cells])
        assert row["profile_correlation"] == pytest.approx(np.corrcoef(va, vb)[0, 1], abs=1e-6)
        assert row["n_cells"] == len(cells)
    rank = {(r["run"], r["neuron"]): r["rank"] for r in ranks.iter_rows(named=True)}
    assert changes["rank_change"].to_list() == [rank[("b", n)] - rank[("a", n)] for n in changes["neuron"]]
    fifteen = changes.row(15, named=True)
    assert fifteen["rank_b"] == 1, fifteen
    assert any(c.startswith("joy: ") and c.endswith("-> polyglot") for c in fifteen["class_changes"]), fifteen
    assert changes.row(7, named=True)["profile_correlation"] < 0.5  # neuron 7 was replaced by noise
    with Warehouse(db, read_only=True) as wh:
        summary = wh.sql("select * from neuron_change_summary('a', 'b') where layer = 2").row(0, named=True)
    assert summary["median_profile_correlation"] == pytest.approx(np.median(changes["profile_correlation"].to_numpy()))
    assert summary["class_changed"] == int((changes["n_class_changes"] > 0).sum())
    moved = np.abs(changes["rank_change"].to_numpy()) > 0.1 * changes.height
    assert summary["rank_moved_10pct"] == int(moved.sum()) and summary["neurons"] == changes.height


def test_compare_bad_input(pair, neurons):
    db, *_ = pair
    assert_one_line_error(neurons("--db", db, "compare", "a", "nope"), "nope")
    assert_one_line_error(neurons("--db", db, "compare", "a", "other"), "share 0 sentences", "same data")


def test_a_constant_representation_has_no_cka():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 8))
    constant = np.tile(rng.normal(size=(1, 16)) * 100, (50, 1)).astype(np.float32).astype(np.float64)
    assert all(np.isnan(v) for v in cka(x, constant)) and all(np.isnan(v) for v in cka(constant, constant))


def test_a_large_offset_does_not_cancel_the_variation_it_carries():
    """A layer whose vectors sit at 1000 and vary by 0.004 (as a model's near-constant [CLS]) still has its CKA."""
    rng = np.random.default_rng(3)
    x = 1000 + 0.004 * rng.normal(size=(200, 64))
    y = (x - 1000)[:, :10] @ rng.normal(size=(10, 32)) * 250 + rng.normal(size=(200, 32))
    plain, debiased = cka(x, y)
    xc = x - x.mean(axis=0)
    assert plain == pytest.approx(reference_cka(xc, y, False), rel=1e-9)
    assert debiased == pytest.approx(reference_cka(xc, y, True), rel=1e-6)
