"""Permutation nulls, BH q-values, bootstrap intervals, ANOVA and the layer sweep."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import synthetic as syn
from scipy import stats

from toolkit.capture.load import load_long
from toolkit.stats.analysis import layer_sweep
from toolkit.stats.significance import SignificanceOptions, benjamini_hochberg, significance, store
from toolkit.store.warehouse import Warehouse


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """Run 'planted' (layer 11, planted neurons; layer 5, none) and run 'null' (labels independent of activations)."""
    tmp = tmp_path_factory.mktemp("sig")
    planted = syn.make(seed=0, per_cell=30)
    unplanted = syn.make(seed=1, per_cell=30, planted=syn.Planted(polyglot={}, monolingual={}))
    db = tmp / "w.duckdb"
    load_long(
        db, syn.write_long(tmp / "p.parquet", [syn.long_frame(*planted, 11), syn.long_frame(*unplanted, 5)]), "planted"
    )
    load_long(db, syn.write_long(tmp / "n.parquet", [syn.long_frame(*unplanted, 11)]), "null")
    return db, planted, unplanted


def test_planted_findings_are_significant(db):
    path, _, _ = db
    with Warehouse(path) as wh:
        r = significance(wh, "planted", 11, SignificanceOptions(permutations=200, bootstraps=100, seed=1))
    counts = r.counts
    planted = syn.Planted()
    for label, ns in planted.polyglot.items():
        row = counts.filter((pl.col("label") == label) & (pl.col("neuron_class") == "polyglot")).row(0, named=True)
        assert row["observed"] == len(ns) and row["p_value"] <= 1 / 201 + 1e-12 and row["null_high"] < len(ns)
    sensitive = set(r.neurons.filter(pl.col("q_value") < 0.05)["neuron"])
    expected = set().union(*planted.polyglot.values(), *planted.monolingual.values())
    assert expected <= sensitive and len(sensitive - expected) <= 2
    assert r.settings["n_sentences"] == 4 * 6 * 30 and r.settings["n_neurons"] == 48


def test_no_structure_gives_uniform_p_values_and_counts_inside_the_null(db):
    path, _, _ = db
    with Warehouse(path) as wh:
        r = significance(wh, "null", 11, SignificanceOptions(permutations=400, bootstraps=0, seed=2))
    p = r.neurons["p_value"].to_numpy()
    assert stats.kstest(p, "uniform").pvalue > 0.01  # roughly uniform
    assert (r.neurons["q_value"] < 0.05).sum() <= 1
    inside = r.counts.filter((pl.col("observed") >= pl.col("null_low")) & (pl.col("observed") <= pl.col("null_high")))
    assert inside.height >= 0.85 * r.counts.height


def test_fixed_seed_gives_identical_results(db):
    path, _, _ = db
    with Warehouse(path) as wh:
        a = significance(wh, "planted", 11, SignificanceOptions(permutations=50, bootstraps=50, seed=7))
        b = significance(wh, "planted", 11, SignificanceOptions(permutations=50, bootstraps=50, seed=7))
        c = significance(wh, "planted", 11, SignificanceOptions(permutations=50, bootstraps=50, seed=8))
    for name in ("counts", "neurons", "correlation"):  # everything drawn at random: bit for bit
        assert (
            getattr(a, name)
            .drop("eta_squared", "omega_squared", strict=False)
            .equals(getattr(b, name).drop("eta_squared", "omega_squared", strict=False))
        ), name
    np.testing.assert_allclose(a.neurons["eta_squared"].to_numpy(), b.neurons["eta_squared"].to_numpy(), rtol=1e-12)
    # ANOVA involves no randomness; DuckDB's parallel sums may differ in the last bits between queries
    np.testing.assert_allclose(a.anova["f"].to_numpy(), b.anova["f"].to_numpy(), rtol=1e-12)
    assert not a.counts.equals(c.counts) or not a.correlation.equals(c.correlation)


def test_anova_matches_scipy(db):
    path, (values, lang, lab), _ = db
    with Warehouse(path) as wh:
        r = significance(wh, "planted", 11, SignificanceOptions(permutations=10, bootstraps=0))
    z = syn.zscore(values, lang)
    for language in (None, "ja"):
        rows = r.anova.filter(
            pl.col("language").is_null() if language is None else pl.col("language") == language
        ).sort("neuron")
        mask = np.ones(len(lang), bool) if language is None else lang == language
        for n in (0, 3, 30, 47):
            groups = [z[mask & (lab == l), n] for l in syn.LABELS]
            ref = stats.f_oneway(*groups)
            row = rows.row(n, named=True)
            assert row["f"] == pytest.approx(ref.statistic, rel=1e-6)
            assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300)
            allz = np.concatenate(groups)
            ss_b = sum(len(g) * (g.mean() - allz.mean()) ** 2 for g in groups)
            ss_t = ((allz - allz.mean()) ** 2).sum()
            ms_w = (ss_t - ss_b) / (len(allz) - len(groups))
            assert row["eta_squared"] == pytest.approx(ss_b / ss_t, rel=1e-6)
            omega = (ss_b - (len(groups) - 1) * ms_w) / (ss_t + ms_w)  # Hays's omega squared
            assert row["omega_squared"] == pytest.approx(omega, rel=1e-6, abs=1e-12)


def test_benjamini_hochberg_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    # sorted: 0.005, 0.01, 0.03, 0.04, 0.5 -> p*m/rank: 0.025, 0.025, 0.05, 0.05, 0.5 -> cumulative min from the top
    assert benjamini_hochberg(p).tolist() == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.5])
    assert benjamini_hochberg(np.array([0.9, 0.95])).tolist() == pytest.approx([0.95, 0.95])


def test_bootstrap_intervals_contain_the_observed_on_well_powered_data(tmp_path):
    values, lang, lab = syn.make(seed=3, per_cell=200, neurons=40)
    db = tmp_path / "w.duckdb"
    load_long(db, syn.write_long(tmp_path / "b.parquet", [syn.long_frame(values, lang, lab, 1)]), "big")
    with Warehouse(db) as wh:
        r = significance(wh, "big", 1, SignificanceOptions(permutations=20, bootstraps=300, seed=0))
        view = wh.crosslingual_correlation("big", 1)
        store(wh, r)
        stored = wh.sql("select spearman, bias, corrected from correlation_intervals where run = 'big'")
    # the bias-corrected estimate beside each interval: 2 rho - mean(draws), cut to [-1, 1]
    want = np.clip(stored["spearman"].to_numpy() - stored["bias"].to_numpy(), -1, 1)
    np.testing.assert_allclose(stored["corrected"].to_numpy(), want, rtol=1e-12)
    per_label = r.correlation.filter(pl.col("label").is_not_null())
    assert per_label.height == view.height == 36
    joined = per_label.join(
        view.select("label", "language_a", "language_b", pl.col("spearman").alias("sql")),
        on=["label", "language_a", "language_b"],
    )
    np.testing.assert_allclose(joined["spearman"], joined["sql"], rtol=1e-9)  # observed = the view
    inside = joined.filter((pl.col("low") <= pl.col("spearman")) & (pl.col("spearman") <= pl.col("high")))
    assert inside.height >= 0.9 * joined.height
    assert (per_label["high"] - per_label["low"]).max() < 0.5


def test_results_are_stored_and_replaced(db, neurons):
    path, _, _ = db
    r = neurons(
        "--db",
        path,
        "significance",
        "--run",
        "planted",
        "--layer",
        "11",
        "--permutations",
        "300",
        "--bootstraps",
        "20",
        "--seed",
        "3",
        "--quiet",
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["permutations"] == 300 and out["seed"] == 3 and out["sensitive_neurons"] >= 7
    again = neurons(
        "--db",
        path,
        "significance",
        "--run",
        "planted",
        "--layer",
        "11",
        "--permutations",
        "40",
        "--bootstraps",
        "0",
        "--quiet",
    )
    assert again.exit_code == 0 and "Label-sensitive neurons" in again.stdout
    with Warehouse(path, read_only=True) as wh:
        assert wh.sql("select permutations, bootstraps from significance")[0].rows() == [(40, 0)]
        cs = wh.sql("select * from class_significance where run = 'planted'")
        assert cs.height == 6 * 3 + 4 and set(cs["permutations"]) == {40}
        ns = wh.sql("select * from neuron_significance where run = 'planted' and layer = 11")
        assert ns.height == 48
        sens = wh.sql(
            "select * from count_classes(0.5, sensitive := true) where run = 'planted' and layer = 11 and label = 'joy'"
        )
        assert sens["n_neurons"].sum() == ns["sensitive"].sum()
        assert wh.sql("select count(*) as n from anova_significance")["n"][0] == 48 * 5
        assert wh.sql("select count(*) as n from correlation_intervals where label is null")["n"][0] == 6


def test_layer_sweep(db, neurons):
    path, _, _ = db
    with Warehouse(path, read_only=True) as wh:
        sweep = layer_sweep(wh, "planted")
        assert sweep["layer"].to_list() == [5, 11]
        for layer in (5, 11):
            row = sweep.filter(pl.col("layer") == layer).row(0, named=True)
            classes = wh.neuron_classes("planted", layer)
            assert row["polyglot_share"] == pytest.approx((classes["neuron_class"] == "polyglot").mean())
            assert row["monolingual_share"] == pytest.approx((classes["neuron_class"] == "monolingual").mean())
            assert row["top_variance"] == pytest.approx(wh.between_label_variance("planted", layer)["variance"].max())
            pairs = wh.language_pair_summary("planted", layer)
            assert row["mean_spearman"] == pytest.approx(pairs["mean_spearman"].mean())
            assert row["rho_ar-ja"] == pytest.approx(
                pairs.filter((pl.col("language_a") == "ar") & (pl.col("language_b") == "ja"))["mean_spearman"][0]
            )
    assert (
        sweep.filter(pl.col("layer") == 11)["polyglot_share"][0]
        > sweep.filter(pl.col("layer") == 5)["polyglot_share"][0]
    )
    r = neurons("--db", path, "analyze", "--run", "planted", "--sweep", "--json")
    assert [row["layer"] for row in json.loads(r.stdout)] == [5, 11]
    old = neurons("--db", path, "analyze", "--run", "planted", "--layers", "all", "--json")  # deprecated alias
    assert [row["layer"] for row in json.loads(old.stdout)] == [5, 11]
    assert "--sweep" in old.stderr and len(old.stderr.strip().splitlines()) == 1


def test_bad_input(db, neurons):
    from conftest import assert_one_line_error, digest

    path, _, _ = db
    before = digest(path)
    assert_one_line_error(
        neurons("--db", path, "significance", "--run", "planted", "--layer", "3", "--quiet"), "has no layer 3"
    )
    assert_one_line_error(neurons("--db", path, "significance", "--run", "x", "--quiet"), "no run named 'x'")
    assert_one_line_error(
        neurons("--db", path, "significance", "--run", "planted", "--permutations", "0", "--quiet"),
        "--permutations must be at least 1",
    )
    assert digest(path) == before


def test_significance_in_charts_and_report(db, neurons, tmp_path):
    from toolkit.figures.charts import ChartOptions, build

    path, _, _ = db
    r = neurons(
        "--db",
        path,
        "significance",
        "--run",
        "planted",
        "--layer",
        "11",
        "--permutations",
        "50",
        "--bootstraps",
        "30",
        "--quiet",
    )
    assert r.exit_code == 0, r.stderr
    with Warehouse(path, read_only=True) as wh:
        null = build(wh, "classes-null", ChartOptions(run="planted", layer=11)).to_dict()
        rows = pl.DataFrame(next(iter(null["datasets"].values())))
        assert rows.height == 6 * 3 + 4  # per label and class, and the monolingual neurons of each language
        assert set(rows.filter(pl.col("panel") == "monolingual, per language")["row"]) == set(syn.LANGS)
        sens = pl.DataFrame(
            next(iter(build(wh, "sensitivity", ChartOptions(run="planted", layer=11)).to_dict()["datasets"].values()))
        )
        per_language = wh.language_sensitive_counts("planted", 11)
        assert sens["group"].to_list() == ["pooled", *per_language["language"].to_list()]
        assert sens["n_sensitive"].to_list() == [
            wh.sensitive_counts("planted", 11)["sensitive"],
            *per_language["n_sensitive"].to_list(),
        ]
        heat = build(wh, "correlation", ChartOptions(run="planted", layer=11)).to_dict()
        cells = next(iter(heat["datasets"].values()))
        assert len(cells) == 36 and all("[" in c["text"] for c in cells)  # intervals shown beside rho
        layers = build(wh, "layers", ChartOptions(run="planted")).to_dict()
        assert sorted(len(v) for v in layers["datasets"].values()) == [2 * 2, 2 * 6]
    rep = tmp_path / "rep"
    assert neurons("--db", path, "report", "--run", "planted", "--layer", "11", "--out", rep).exit_code == 0
    page = (rep / "index.html").read_text()
    for key in ("classes-null", "sensitivity", "layers"):
        assert f"id='chart-{key}'" in page and (rep / "figures" / f"{key}.png").exists()
    for key in ("class-significance", "sensitive-neurons", "sensitive-classes", "pair-intervals", "anova", "layers"):
        assert (rep / "tables" / f"{key}.tex").exists(), key


def test_neuron_ids_need_not_start_at_zero(tmp_path):
    values, lang, lab = syn.make(seed=6, per_cell=20, neurons=40)
    frame = syn.long_frame(values, lang, lab, 4).with_columns(pl.col("neuron") + 100)  # neurons 100..139
    db = tmp_path / "w.duckdb"
    load_long(db, syn.write_long(tmp_path / "o.parquet", [frame]), "offset")
    with Warehouse(db) as wh:
        r = significance(wh, "offset", 4, SignificanceOptions(permutations=100, bootstraps=0))
    assert r.neurons["neuron"].to_list() == list(range(100, 140))
    sensitive = set(r.neurons.filter(pl.col("q_value") < 0.05)["neuron"])
    assert {103, 107, 111, 120, 121} <= sensitive  # the planted polyglot neurons, shifted


def test_many_labels_and_few_neurons(tmp_path):
    """210 labels (so the first rows of the class null all lack a language) and 8 neurons (fewer than the
    smallest top-k of the criteria): significance returns a row per label and class and per language, and the
    report's figures leave out the criteria agreement, which has no top-k to show, instead of failing."""
    from toolkit.figures.report import _figures
    from toolkit.stats.significance import TESTED_CLASSES

    rng = np.random.default_rng(5)
    n, width = 840, 8
    labels = (np.arange(n) % 210).astype(str)
    languages = np.where(np.arange(n) % 420 < 210, "en", "fr")
    frame = pl.DataFrame(
        {
            "sentence_id": np.repeat(np.arange(n), width),
            "language": np.repeat(languages, width),
            "label": np.repeat(labels, width),
            "layer": np.full(n * width, 2),
            "neuron": np.tile(np.arange(width), n),
            "value": rng.normal(size=n * width),
        }
    )
    db = tmp_path / "w.duckdb"
    load_long(db, syn.write_long(tmp_path / "many.parquet", [frame]), "many")
    with Warehouse(db) as wh:
        r = significance(wh, "many", 2, SignificanceOptions(permutations=20, bootstraps=0))
        figures = [f.key for f in _figures(wh, "many", 2, 0.5, False)]
    assert r.counts.height == 210 * len(TESTED_CLASSES) + 2
    assert r.counts.filter(pl.col("language").is_not_null())["neuron_class"].to_list() == ["monolingual"] * 2
    assert "agreement" not in figures and sum(k.startswith("profiles-") for k in figures) == 12


def test_per_language_sensitivity_finds_the_one_language_that_carries_it(tmp_path, neurons):
    """Planted: only Japanese has a label effect (neurons 5-9, joy shifted). The per-language view finds those
    neurons in Japanese and no neuron anywhere else; the pooled headline names Japanese. Null data: the share
    called sensitive is at most alpha, pooled and in every language."""
    planted = syn.Planted(polyglot={}, monolingual={("joy", "ja"): {5, 6, 7, 8, 9}})
    one = syn.make(seed=3, per_cell=40, neurons=40, shift=1.5, planted=planted)
    null = syn.make(seed=4, per_cell=40, neurons=40, planted=syn.Planted(polyglot={}, monolingual={}))
    db = tmp_path / "w.duckdb"
    load_long(db, syn.write_long(tmp_path / "o.parquet", [syn.long_frame(*one, 3)]), "one")
    load_long(db, syn.write_long(tmp_path / "n.parquet", [syn.long_frame(*null, 3)]), "null")
    for run in ("one", "null"):
        r = neurons("--db", db, "significance", "--run", run, "--permutations", "200", "--bootstraps", "0")
        assert r.exit_code == 0, r.output
    with Warehouse(db, read_only=True) as wh:
        per = wh.sql("select run, language, neuron, q_value, sensitive from language_sensitivity")
        counts = wh.sql("select * from language_sensitive_counts")
        pooled = wh.sql(
            "select run, count(*) filter (where sensitive) / count(*) as share from neuron_significance group by run"
        )
    found = per.filter(pl.col("sensitive") & (pl.col("run") == "one"))
    assert set(found["language"]) == {"ja"}  # there, and nowhere else
    assert {5, 6, 7, 8, 9} <= set(found["neuron"]) and len(set(found["neuron"]) - {5, 6, 7, 8, 9}) <= 2  # BH: FDR
    headline = neurons("--db", db, "significance", "--run", "one", "--permutations", "50", "--bootstraps", "0")
    assert f"ja {found.height}" in headline.output.split("Per language")[1].split("\n")[0]
    assert counts.filter(pl.col("run") == "null")["share"].max() <= 0.05
    assert pooled.filter(pl.col("run") == "null")["share"][0] <= 0.05
    # on null data omega squared averages 0 (within 3 standard errors) where eta squared averages (k-1)/(N-1)
    with Warehouse(db, read_only=True) as wh:
        effects = wh.sql(
            "select omega_squared, eta_squared from anova_significance where run = 'null' and language is not null"
        )
    omega = effects["omega_squared"].to_numpy()
    assert abs(omega.mean()) < 3 * omega.std() / np.sqrt(omega.size)
    assert effects["eta_squared"].mean() == pytest.approx(5 / 239, rel=0.15)  # 6 labels x 40 sentences
    # the BH q-values of each language equal scipy's
    for language in ("ja", "nl"):
        rows = per.filter((pl.col("run") == "one") & (pl.col("language") == language)).sort("neuron")
        with Warehouse(db, read_only=True) as wh:
            p = wh.sql(
                "select neuron, p_value from anova_significance where run = 'one' and language = ? order by neuron",
                [language],
            )["p_value"].to_numpy()
        np.testing.assert_allclose(rows["q_value"].to_numpy(), stats.false_discovery_control(p), rtol=1e-9)
