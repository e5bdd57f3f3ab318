"""Every statistics view against an independent numpy/scipy computation, and planted-neuron recovery."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import synthetic as syn

from toolkit.capture.load import load_long
from toolkit.store.warehouse import Warehouse

RTOL, ATOL = 1e-6, 1e-9


@pytest.fixture(scope="module")
def planted_db(tmp_path_factory):
    """Run 'a' (layers 5 and 11, different data) and run 'b' (layer 11) in one file."""
    tmp = tmp_path_factory.mktemp("stats")
    a11 = syn.make(seed=0)
    a5 = syn.make(seed=1, planted=syn.Planted(polyglot={"anger": {1}}, monolingual={}))
    b11 = syn.make(seed=2, planted=syn.Planted(polyglot={"love": {2}}, monolingual={("fear", "ja"): {5}}))
    db = tmp / "w.duckdb"
    load_long(db, syn.write_long(tmp / "a.parquet", [syn.long_frame(*a11, 11), syn.long_frame(*a5, 5)]), "a")
    load_long(db, syn.write_long(tmp / "b.parquet", [syn.long_frame(*b11, 11)]), "b")
    wh = Warehouse(db, read_only=True)
    yield wh, {"a11": a11, "a5": a5, "b11": b11}
    wh.close()


def close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("run, layer, key", [("a", 11, "a11"), ("a", 5, "a5"), ("b", 11, "b11")])
def test_views_match_reference(planted_db, run, layer, key):
    wh, data = planted_db
    values, lang, lab = data[key]
    z = syn.zscore(values, lang)

    zs = wh.zscores(run, layer)  # ordered by sentence, neuron
    assert zs.height == values.size
    close(zs["z"].to_numpy().reshape(values.shape), z)

    P = syn.profiles(z, lang, lab)
    prof = wh.label_profiles(run, layer)
    assert prof.height == len(P) * values.shape[1]
    for (L, l), g in prof.group_by("language", "label"):
        close(g.sort("neuron")["mean_z"], P[(L, l)][0])
        assert set(g["n_sentences"]) == {P[(L, l)][1]}

    blv = wh.between_label_variance(run, layer)
    ref = syn.between_label_variance(z, lab)
    close(blv.sort("neuron")["variance"], ref)
    assert blv.sort("rank")["neuron"].to_list() == sorted(range(len(ref)), key=lambda n: (-ref[n], n))

    lv = wh.label_variance(run, layer)
    for l, v in syn.label_variance(z, lab).items():
        close(lv.filter(pl.col("label") == l).sort("neuron")["variance"], v)

    cc = wh.crosslingual_correlation(run, layer)
    ref_cc = syn.crosslingual(P)
    assert cc.height == len(ref_cc) == 6 * 6
    for row in cc.iter_rows(named=True):
        rho, cos = ref_cc[(row["label"], row["language_a"], row["language_b"])]
        close(row["spearman"], rho)
        close(row["cosine"], cos)
    summary = wh.language_pair_summary(run, layer)
    for row in summary.iter_rows(named=True):
        vals = [v for (l, a, b), v in ref_cc.items() if (a, b) == (row["language_a"], row["language_b"])]
        close(row["mean_spearman"], np.mean([v[0] for v in vals]))
        close(row["mean_cosine"], np.mean([v[1] for v in vals]))
        assert row["n_labels"] == 6

    top = wh.top_neurons(run, layer)
    for (L, l), g in top.group_by("language", "label"):
        p = P[(L, l)][0]
        assert g.sort("rank")["neuron"].to_list() == sorted(range(len(p)), key=lambda n: (-abs(p[n]), n))


@pytest.mark.parametrize("threshold, absolute", [(0.5, False), (0.2, False), (0.3, True)])
def test_classes_and_counts_match_reference(planted_db, threshold, absolute):
    wh, data = planted_db
    values, lang, lab = data["a11"]
    P = syn.profiles(syn.zscore(values, lang), lang, lab)
    ref = syn.classes(P, threshold, absolute)
    got = wh.neuron_classes("a", 11, threshold, absolute)
    assert {(r["label"], r["neuron"]): (r["neuron_class"], r["language"]) for r in got.iter_rows(named=True)} == ref
    counts = wh.class_counts("a", 11, threshold, absolute)
    assert counts.height == 6 * 4
    for r in counts.iter_rows(named=True):
        n = sum(1 for (l, _), (c, _) in ref.items() if l == r["label"] and c == r["neuron_class"])
        assert r["n_neurons"] == n and abs(r["share"] - n / 48) < 1e-12
    mono = wh.monolingual_counts("a", 11, threshold, absolute)
    for r in mono.iter_rows(named=True):
        assert r["n_neurons"] == len({n for (l, n), (c, L) in ref.items() if c == "monolingual" and r["language"] == L})
    if threshold == 0.5 and not absolute:  # the view is the macro at 0.5
        assert wh.view("neuron_classes", "a", 11).sort("label", "neuron").equals(got.sort("label", "neuron"))


def test_planted_neurons_are_recovered_exactly(planted_db):
    wh, _ = planted_db
    planted = syn.Planted()
    classes = wh.neuron_classes("a", 11)
    for label in syn.LABELS:
        poly = set(classes.filter((pl.col("label") == label) & (pl.col("neuron_class") == "polyglot"))["neuron"])
        assert poly == planted.polyglot.get(label, set())
        mono = classes.filter((pl.col("label") == label) & (pl.col("neuron_class") == "monolingual"))
        expected = {(L, n) for (l, L), ns in planted.monolingual.items() if l == label for n in ns}
        assert set(zip(mono["language"], mono["neuron"])) == expected
    assert set(classes.filter(pl.col("neuron_class") == "shared")["neuron"]) == set()
    mono_counts = dict(wh.monolingual_counts("a", 11).select("language", "n_neurons").iter_rows())
    assert mono_counts == {"ar": 1, "ja": 1, "nl": 1, "sl": 1}
    top_variance = set(wh.between_label_variance("a", 11).filter(pl.col("rank") <= 5)["neuron"])
    assert top_variance == {3, 7, 11, 20, 21}  # the polyglot neurons carry the most label variance


def test_without_per_language_zscores_the_planted_sets_are_lost(planted_db):
    """The premise of definition 1: z-scoring over all languages at once recovers something else."""
    _, data = planted_db
    values, lang, lab = data["a11"]
    pooled_z = syn.zscore(values, np.zeros(len(lang), dtype=int))  # one "language": no per-language scaling
    naive = syn.classes(syn.profiles(pooled_z, lang, lab))
    planted = syn.Planted()
    naive_poly = {(l, n) for (l, n), (c, _) in naive.items() if c == "polyglot"}
    naive_mono = {(l, L, n) for (l, n), (c, L) in naive.items() if c == "monolingual"}
    assert naive_poly != {(l, n) for l, ns in planted.polyglot.items() for n in ns}
    assert naive_mono != {(l, L, n) for (l, L), ns in planted.monolingual.items() for n in ns}


def test_runs_and_layers_do_not_bleed(planted_db):
    wh, _ = planted_db
    for name in (
        "label_profiles",
        "between_label_variance",
        "crosslingual_correlation",
        "neuron_classes",
        "top_neurons",
    ):
        a11, b11 = wh.view(name, "a", 11), wh.view(name, "b", 11)
        assert a11.height == b11.height > 0
        assert set(wh.view(name, "a")["layer"]) == {5, 11}
    poly_b = set(wh.neuron_classes("b", 11).filter(pl.col("neuron_class") == "polyglot")["neuron"])
    assert poly_b == {2}


def test_edge_cases(tmp_path):
    """A language lacking a label, a neuron constant in one language, a one-sentence label, pt-BR, non-ASCII."""
    rng = np.random.default_rng(5)
    langs = np.array(["pt-BR"] * 7 + ["ja"] * 9 + ["de"] * 8)
    labels = np.array(
        [
            "joy",
            "joy",
            "joy",
            "sad",
            "sad",
            "sad",
            "sad",  # pt-BR lacks 'fear'
            "joy",
            "joy",
            "joy",
            "sad",
            "sad",
            "sad",
            "fear",
            "fear",
            "fear",
            "joy",
            "joy",
            "sad",
            "sad",
            "sad",
            "fear",
            "fear",
            "odd",
        ]
    )  # 'odd': one sentence
    values = rng.normal(size=(len(langs), 6)).astype(np.float32).astype(np.float64)
    values[langs == "ja", 2] = 4.25  # constant within ja
    texts = [f"ação {i} — 日本語 🙂" for i in range(len(langs))]
    frame = syn.long_frame(values, langs, labels, 3, texts=texts)
    db = tmp_path / "e.duckdb"
    load_long(db, syn.write_long(tmp_path / "e.parquet", [frame]), "edge")
    one = syn.long_frame(values[langs == "ja"], langs[langs == "ja"], labels[langs == "ja"], 3)
    load_long(db, syn.write_long(tmp_path / "one.parquet", [one]), "single")
    with Warehouse(db, read_only=True) as wh:
        z = syn.zscore(values, langs)
        zs = wh.zscores("edge", 3)
        assert zs["z"].is_nan().sum() == 0 and zs["z"].is_null().sum() == 0
        close(zs["z"].to_numpy().reshape(values.shape), z)
        assert (zs.filter((pl.col("language") == "ja") & (pl.col("neuron") == 2))["z"] == 0).all()
        P = syn.profiles(z, langs, labels)
        prof = wh.label_profiles("edge", 3)
        odd = prof.filter(pl.col("label") == "odd").sort("neuron")
        assert odd["n_sentences"].to_list() == [1] * 6
        close(odd["mean_z"], z[labels == "odd"][0])
        cc = wh.crosslingual_correlation("edge", 3)
        fear = cc.filter(pl.col("label") == "fear")
        assert set(zip(fear["language_a"], fear["language_b"])) == {("de", "ja")}  # pt-BR lacks fear
        assert cc.filter(pl.col("label") == "odd").height == 0
        ref_cc = syn.crosslingual(P)
        for row in cc.iter_rows(named=True):
            rho, cos = ref_cc[(row["label"], row["language_a"], row["language_b"])]
            close(row["spearman"], rho)
            close(row["cosine"], cos)
        got = wh.neuron_classes("edge", 3)
        assert {
            (r["label"], r["neuron"]): (r["neuron_class"], r["language"]) for r in got.iter_rows(named=True)
        } == syn.classes(P)
        assert set(got.filter(pl.col("label") == "fear")["n_languages"]) == {2}
        assert set(got.filter(pl.col("label") == "odd")["neuron_class"]) <= {"monolingual", "inactive"}
        assert wh.sql("select text from sentences where sentence_id = 0 and run_id = 1")["text"][0] == texts[0]
        # a single language: no pairs, nothing polyglot
        assert wh.crosslingual_correlation("single", 3).height == 0
        assert set(wh.neuron_classes("single", 3)["neuron_class"]) <= {"monolingual", "inactive"}


def test_ties_use_average_ranks(tmp_path):
    """Spearman with tied profiles (neurons constant in every language) equals scipy's average-rank rho."""
    rng = np.random.default_rng(9)
    langs = np.repeat(["en", "nl"], 40)
    labels = np.tile(np.repeat(["a", "b"], 20), 2)
    values = rng.normal(size=(80, 12)).astype(np.float32).astype(np.float64)
    values[:, [0, 4, 7, 9]] = 1.5  # four neurons with P = 0 everywhere: a four-way tie
    db = tmp_path / "t.duckdb"
    load_long(db, syn.write_long(tmp_path / "t.parquet", [syn.long_frame(values, langs, labels, 0)]), "t")
    P = syn.profiles(syn.zscore(values, langs), langs, labels)
    with Warehouse(db, read_only=True) as wh:
        cc = wh.crosslingual_correlation("t", 0)
    for row in cc.iter_rows(named=True):
        close(row["spearman"], syn.crosslingual(P)[(row["label"], "en", "nl")][0])


def test_analyze_command(planted_db, neurons):
    wh, _ = planted_db
    r = neurons("--db", wh.path, "analyze", "--run", "a", "--layer", "11", "--json")
    assert r.exit_code == 0, r.stderr
    f = json.loads(r.stdout)
    assert {row["neuron"] for row in f["top_variance"][:5]} == {3, 7, 11, 20, 21}
    assert len(f["language_pairs"]) == 6
    joy = next(row for row in f["class_shares"] if row["label"] == "joy")
    assert joy["polyglot"] == pytest.approx(2 / 48) and joy["monolingual"] == pytest.approx(1 / 48)
    assert {row["language"]: row["n_neurons"] for row in f["monolingual"]} == {"ar": 1, "ja": 1, "nl": 1, "sl": 1}
    text = neurons("--db", wh.path, "analyze", "--run", "a").stdout  # default: penultimate stored layer
    assert "layer 11" in text and "Cross-lingual consistency" in text and "polyglot" in text
    assert neurons("--db", wh.path, "analyze", "--run", "a", "--layer", "7").exit_code != 0
    assert neurons("--db", wh.path, "analyze", "--run", "zzz").exit_code != 0


def test_language_stats_and_activation_means(planted_db):
    wh, data = planted_db
    values, lang, _ = data["a11"]
    stats_ = wh.sql("select * from language_stats where run = 'a' and layer = 11 order by language, neuron")
    means = wh.sql(
        "select * from activation_means where run = 'a' and layer = 11 order by language nulls first, neuron"
    )
    for L in syn.LANGS:
        part = stats_.filter(pl.col("language") == L)
        close(part["mean"], values[lang == L].mean(axis=0))
        close(part["std"], values[lang == L].std(axis=0))
        assert set(part["n_sentences"]) == {int((lang == L).sum())}
        close(means.filter(pl.col("language") == L)["mean"], values[lang == L].mean(axis=0))
    close(means.filter(pl.col("language").is_null())["mean"], values.mean(axis=0))
