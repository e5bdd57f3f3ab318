"""Numbers a reviewer accepts: intervals that cover the truth at their nominal rate in a simulation where the
truth is known, noise ceilings that separate disagreement from noise, effect sizes beside q-values, and a
warning where the model is at chance (docs/definitions.md, definitions 8-11 and 13)."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import polars as pl
import pytest
import synthetic as syn
from scipy import stats

from toolkit.capture.load import load_long
from toolkit.figures.charts import ChartOptions, build
from toolkit.stats.significance import (
    SignificanceOptions,
    correlation_intervals,
    make_layout,
    profiles,
    significance,
    store,
)
from toolkit.store.warehouse import Warehouse

LANGS, LABELS, NEURONS = ["ar", "ja", "nl", "sl"], ["anger", "fear", "joy", "sadness"], 96


def population(rng, tau: float = 0.5):
    """Population means mu[language, label, neuron] that share a label component (weight c, drawn per
    dataset) and the population z-profiles they imply (definition 1 in the population: per language and
    neuron, mean over the balanced labels and sd including the unit noise)."""
    c = rng.uniform(0.2, 0.9)
    shared = rng.normal(size=(len(LABELS), NEURONS))
    own = rng.normal(size=(len(LANGS), len(LABELS), NEURONS))
    mu = tau * (np.sqrt(c) * shared[None] + np.sqrt(1 - c) * own)
    centre = mu.mean(axis=1, keepdims=True)
    sd = np.sqrt(1 + ((mu - centre) ** 2).mean(axis=1, keepdims=True))
    return mu, (mu - centre) / sd


def sample(rng, mu, n: int):
    """n sentences per language x label cell: the cell's means plus unit normal noise, z-scored within language
    (population std) as the toolkit does."""
    values = mu[:, :, None, :] + rng.normal(size=(len(LANGS), len(LABELS), n, NEURONS))
    z = (values - values.mean(axis=(1, 2), keepdims=True)) / values.std(axis=(1, 2), keepdims=True)
    lang = np.repeat(LANGS, len(LABELS) * n)
    lab = np.tile(np.repeat(LABELS, n), len(LANGS))
    return z.reshape(-1, NEURONS), lang, lab


@pytest.mark.parametrize("n", [40, 150])
def test_correlation_intervals_cover_the_population_value(n):
    """Basic bootstrap 95 % intervals of per-label x pair Spearman cover the population Spearman between the
    two languages' population z-profiles (scipy, from the known means) in at least 90 % of cases."""
    rng = np.random.default_rng(2024 + n)
    hits, total, errors = 0, 0, []
    for _ in range(12):
        mu, P = population(rng)
        z, lang, lab = sample(rng, mu, n)
        layout = make_layout(z, lang, lab)
        got = correlation_intervals(layout, profiles(layout, np.arange(len(z))[None]), rng, 200)
        per_label = got.filter(pl.col("label").is_not_null())
        assert per_label.height == len(LABELS) * 6 and (per_label["min_cell"] == n).all()
        for label, a, b, rho, bias, low, high in per_label.select(
            "label", "language_a", "language_b", "spearman", "bias", "low", "high"
        ).iter_rows():
            li, ai, bi = LABELS.index(label), LANGS.index(a), LANGS.index(b)
            truth = stats.spearmanr(P[ai, li], P[bi, li]).statistic
            hits += low <= truth <= high
            total += 1
            errors.append((abs(rho - truth), abs(np.clip(rho - bias, -1, 1) - truth)))
    assert total == 12 * 24
    assert hits / total >= 0.90, f"coverage {hits / total:.3f} at {n} sentences per cell"
    raw, corrected = np.mean(errors, axis=0)  # view correlation_intervals' `corrected`: spearman - bias, cut
    assert corrected < raw, f"the bias-corrected estimate is no closer to the truth ({corrected:.3f} vs {raw:.3f})"


def test_interval_is_the_reflected_bootstrap_distribution():
    """low/high are 2 rho - q97.5 and 2 rho - q2.5 of the draws, cut to [-1, 1]; bias is mean(draws) - rho."""
    from toolkit.stats.significance import basic_interval

    draws = np.random.default_rng(0).normal(0.3, 0.1, 5000)
    low, high, bias = basic_interval(draws, 0.4)
    q_lo, q_hi = np.quantile(draws, [0.025, 0.975])
    assert low == pytest.approx(0.8 - q_hi) and high == pytest.approx(0.8 - q_lo)
    assert bias == pytest.approx(draws.mean() - 0.4)
    assert basic_interval(np.full(10, 0.2), 0.95)[1] == 1.0  # 2 * 0.95 - 0.2 = 1.7, cut to 1


def _long(z, lang, lab, layer=11) -> pl.DataFrame:
    return syn.long_frame(z.astype(np.float32).astype(np.float64), lang, lab, layer)


@pytest.fixture(scope="module")
def ceiling_db(tmp_path_factory):
    """Run 'same': ar and nl drawn from identical populations; run 'indep': independent populations. Small
    cells (8 sentences), so each profile is noisy and the raw rho is far below its population value."""
    tmp = tmp_path_factory.mktemp("ceiling")
    rng = np.random.default_rng(5)
    n, labels = 8, ["anger", "fear", "joy"]
    frames = {}
    for name in ("same", "indep"):
        mu_ar = rng.normal(scale=0.6, size=(len(labels), NEURONS))
        mu_nl = mu_ar if name == "same" else rng.normal(scale=0.6, size=(len(labels), NEURONS))
        rows, langs, labs = [], [], []
        for language, mu in (("ar", mu_ar), ("nl", mu_nl)):
            offset, scale = rng.uniform(-3, 3, NEURONS), rng.uniform(0.5, 2, NEURONS)
            for li, label in enumerate(labels):
                rows.append(offset + scale * (mu[li] + rng.normal(size=(n, NEURONS))))
                langs += [language] * n
                labs += [label] * n
        frames[name] = (np.concatenate(rows), np.array(langs), np.array(labs), (mu_ar, mu_nl))
    db = tmp / "w.duckdb"
    for name, (values, lang, lab, _) in frames.items():
        load_long(db, syn.write_long(tmp / f"{name}.parquet", [_long(values, lang, lab)]), name)
    return db, frames


def population_rho(mu_a, mu_b, label: int) -> float:
    """Spearman between two languages' population z-profiles of one label (unit noise, balanced labels)."""

    def z(mu):
        centre = mu.mean(axis=0)
        return (mu - centre) / np.sqrt(1 + ((mu - centre) ** 2).mean(axis=0))

    return stats.spearmanr(z(mu_a)[label], z(mu_b)[label]).statistic


def test_disattenuated_correlation_separates_noise_from_disagreement(ceiling_db):
    db, frames = ceiling_db
    with Warehouse(db, read_only=True) as wh:
        got = wh.sql(
            "select run, label, spearman, reliability_a, reliability_b, disattenuated, interpretable "
            "from crosslingual_ceiling where layer = 11 order by run, label"
        )
    for name in ("same", "indep"):
        rows = got.filter(pl.col("run") == name)
        assert rows.height == 3
        truth = np.array([population_rho(*frames[name][3], ["anger", "fear", "joy"].index(l)) for l in rows["label"]])
        assert abs((rows["disattenuated"].to_numpy() - truth).mean()) < 0.1, (name, rows, truth)
        if name == "same":  # far from 0, the raw rho is attenuated and the disattenuated one is not
            assert (
                abs(rows["spearman"].to_numpy() - truth).mean()
                > 2 * abs(rows["disattenuated"].to_numpy() - truth).mean()
            )
    same = got.filter(pl.col("run") == "same")
    assert same["spearman"].max() < 0.8 and same["interpretable"].all()  # attenuated by noise, not disagreement
    assert abs(same["disattenuated"].mean() - 1) < 0.1  # identical populations
    assert abs(got.filter(pl.col("run") == "indep")["disattenuated"].mean()) < 0.25  # independent ones


def test_reliability_matches_the_measurement_model(ceiling_db):
    """Split-half reliability of a cell's profile estimates the share of the profile's variance over neurons
    that is signal. numpy computes that share here from the data's own noise: the profile is the cell mean
    minus the language mean, which holds the cell with weight n_l/N, so its sampling variance per neuron is
    (1 - n_l/N)^2 s_l^2/n_l + sum over the other cells k of (n_k/N)^2 s_k^2/n_k (s^2: within-cell variance)."""
    db, frames = ceiling_db
    values, lang, lab, _ = frames["same"]
    z = syn.zscore(values, lang)
    with Warehouse(db, read_only=True) as wh:
        got = wh.sql(
            "select language, label, reliability, n_sentences, n_splits from profile_reliability "
            "where run = 'same' and layer = 11 order by language, label"
        )
    assert got.height == 6 and (got["n_splits"] == 10).all() and (got["n_sentences"] == 8).all()
    for language, label, reliability, _, _ in got.iter_rows():
        in_language = lang == language
        total = in_language.sum()
        noise = np.zeros(z.shape[1])
        for other in np.unique(lab[in_language]):
            cell = z[in_language & (lab == other)]
            weight = (1 - len(cell) / total) if other == label else len(cell) / total
            noise += weight**2 * cell.var(axis=0, ddof=1) / len(cell)
        observed = z[in_language & (lab == label)].mean(axis=0)
        expected = 1 - noise.mean() / observed.var()
        assert reliability == pytest.approx(expected, abs=0.12), (language, label)


def test_reliability_is_null_for_tiny_cells(tmp_path):
    rng = np.random.default_rng(1)
    lang = np.array(["ar"] * 9 + ["nl"] * 9)
    lab = np.array((["joy"] * 6 + ["fear"] * 3) * 2)
    db = tmp_path / "w.duckdb"
    load_long(db, syn.write_long(tmp_path / "t.parquet", [_long(rng.normal(size=(18, 12)), lang, lab)]), "tiny")
    with Warehouse(db, read_only=True) as wh:
        got = wh.sql("select label, reliability from profile_reliability where run = 'tiny' order by label, language")
    assert got.filter(pl.col("label") == "fear")["reliability"].null_count() == 2  # 3 sentences
    assert got.filter(pl.col("label") == "joy")["reliability"].null_count() == 0  # 6 sentences


def test_sensitive_neurons_need_an_effect_size(tmp_path):
    """With 2,000 sentences a tiny label effect is significant; it is label-sensitive only with omega squared at
    least --min-effect. eta and omega squared are checked against numpy."""
    rng = np.random.default_rng(3)
    n_per, labels = 250, ["anger", "fear", "joy", "sadness"]
    lab = np.tile(np.repeat(labels, n_per), 2)
    lang = np.repeat(["ar", "nl"], len(labels) * n_per)
    values = rng.normal(size=(lab.size, 6))
    values[:, 0] += 0.25 * (lab == "joy")  # eta^2 about 0.01: significant with this many sentences, tiny
    values[:, 1] += 0.08 * (lab == "joy")  # eta^2 about 0.001: significant at most, below a small effect
    values[:, 2] += 1.5 * (lab == "fear")  # a large effect
    db = tmp_path / "w.duckdb"
    load_long(db, syn.write_long(tmp_path / "e.parquet", [_long(values, lang, lab)]), "effects")
    with Warehouse(db) as wh:
        result = significance(
            wh, "effects", 11, SignificanceOptions(permutations=300, bootstraps=0, seed=0, min_effect=0.02)
        )
        store(wh, result)
        table = wh.sql(
            "select neuron, eta_squared, omega_squared, q_significant, sensitive from neuron_significance "
            "where run = 'effects' order by neuron"
        )
        sensitive = set(wh.sql("select neuron from sensitive_neurons where run = 'effects'")["neuron"])
        counts = wh.sensitive_counts("effects", 11)
    z = syn.zscore(values.astype(np.float32).astype(np.float64), lang)
    grand = z.mean(axis=0)
    ss_between = sum((lab == l).sum() * (z[lab == l].mean(axis=0) - grand) ** 2 for l in labels)
    ss_total = ((z - grand) ** 2).sum(axis=0)
    eta = ss_between / ss_total
    np.testing.assert_allclose(table["eta_squared"].to_numpy(), eta, rtol=1e-6)
    ms_within = (ss_total - ss_between) / (z.shape[0] - len(labels))
    omega = (ss_between - (len(labels) - 1) * ms_within) / (ss_total + ms_within)
    np.testing.assert_allclose(table["omega_squared"].to_numpy(), omega, rtol=1e-6, atol=1e-12)
    q_only = set(table.filter(pl.col("q_significant"))["neuron"])
    assert {0, 2} <= q_only
    assert sensitive == {2} and set(table.filter(pl.col("sensitive"))["neuron"]) == {2}
    assert counts == {"n_neurons": 6, "q_significant": len(q_only), "sensitive": 1, "effect": "omega_squared"}


def test_languages_at_chance_are_flagged(tmp_path, neurons, checkpoint, data_csv):
    """evaluation: accuracy against 1/k + 1.96 sqrt((1/k)(1 - 1/k)/n) (numpy here), macro-F1 against its
    permutation null; a language whose predictions ignore the input (one label for every sentence) is at chance,
    a perfect one is not; analyze and the report say so next to that language."""
    db = tmp_path / "w.duckdb"
    assert neurons("--db", db, "extract", checkpoint(), data_csv, "--run", "r", "--quiet").exit_code == 0
    with Warehouse(db) as wh:  # the model 'forgets' Japanese: every ja sentence predicted as one label
        wh.con.execute("update sentences set predicted_label = 'joy' where language = 'ja'")
        wh.con.execute("update sentences set predicted_label = label where language = 'nl'")
        got = wh.sql(
            "select language, n_sentences, accuracy, accuracy_chance_high, accuracy_at_chance, macro_f1_p, at_chance "
            "from evaluation order by language"
        )
        gold = wh.sql("select language, label, predicted_label from sentences order by language")
    for language, n, accuracy, high, accuracy_at_chance, p, at_chance in got.iter_rows():
        k = gold.filter(pl.col("language") == language)["label"].n_unique()
        assert high == pytest.approx(1 / k + 1.959964 * np.sqrt((1 / k) * (1 - 1 / k) / n))
        assert accuracy_at_chance == (accuracy <= high) and at_chance == (p > 0.05)
    flags = dict(got.select("language", "at_chance").iter_rows())
    p = dict(got.select("language", "macro_f1_p").iter_rows())
    assert flags["ja"] and p["ja"] == 1.0  # a constant prediction: every permutation scores the same
    assert not flags["nl"] and p["nl"] == pytest.approx(1 / 201)  # perfect: no permutation reaches it
    out = neurons("--db", db, "analyze", "--run", "r")
    assert out.exit_code == 0 and "at chance in ja" in out.stdout and "at chance in nl" not in out.stdout
    js = json.loads(neurons("--db", db, "analyze", "--run", "r", "--json").stdout)
    assert any("at chance in ja" in c for c in js["caveats"])


def test_cli_reports_both_sensitivity_counts(tmp_path, neurons):
    planted = syn.make(seed=0, per_cell=20)
    db = tmp_path / "w.duckdb"
    load_long(db, syn.write_long(tmp_path / "p.parquet", [syn.long_frame(*planted, 11)]), "p")
    out = neurons(
        "--db",
        db,
        "significance",
        "--run",
        "p",
        "--permutations",
        "100",
        "--bootstraps",
        "50",
        "--quiet",
        "--min-effect",
        "0.05",
    )
    assert out.exit_code == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if "Label-sensitive" in ln)
    assert "with BH q < 0.05" in line and "omega squared >= 0.05" in line
    stored = json.loads(
        neurons("--db", db, "query", "select interval_method, min_effect from significance", "--json").stdout
    )
    assert stored == [{"interval_method": "basic", "min_effect": 0.05}]


def test_pair_means_use_every_label(tmp_path):
    """The pair row (label NULL) is the mean over labels of rho, with its interval from the averaged draws."""
    rng = np.random.default_rng(9)
    mu, _ = population(rng)
    z, lang, lab = sample(rng, mu, 30)
    layout = make_layout(z, lang, lab)
    got = correlation_intervals(layout, profiles(layout, np.arange(len(z))[None]), rng, 50)
    for a, b in combinations(LANGS, 2):
        rows = got.filter((pl.col("language_a") == a) & (pl.col("language_b") == b))
        mean = rows.filter(pl.col("label").is_null())
        assert mean["spearman"][0] == pytest.approx(rows.filter(pl.col("label").is_not_null())["spearman"].mean())
        assert mean["low"][0] <= mean["high"][0] and mean["high"][0] >= mean["spearman"][0]  # reflected upwards


def test_constant_layers_and_agreement_by_construction_are_named(tmp_path, neurons):
    """A layer whose every neuron is constant (layer 0 here, as an embedding layer's [CLS]) has no ranking, no
    criteria agreement (not 1.000) and is named by analyze; one constant neuron of a live layer is not ranked.
    On balanced cells eta squared and between-label variance agree by construction, and are flagged; on
    unbalanced cells they are not."""
    values, lang, lab = syn.make(
        seed=2, per_cell=12, neurons=10, planted=syn.Planted(polyglot={"joy": {3}}, monolingual={})
    )
    values[:, 4] = 7.0  # one constant neuron in the live layer
    constant = np.full_like(values, 0.25)
    db = tmp_path / "w.duckdb"
    frames = [syn.long_frame(values, lang, lab, 3), syn.long_frame(constant, lang, lab, 0)]
    load_long(db, syn.write_long(tmp_path / "b.parquet", frames), "balanced")
    keep = np.ones(len(lang), bool)
    keep[:5] = False  # five sentences fewer in one cell
    load_long(
        db, syn.write_long(tmp_path / "u.parquet", [syn.long_frame(values[keep], lang[keep], lab[keep], 3)]), "uneven"
    )
    with Warehouse(db, read_only=True) as wh:
        ranks = wh.sql("select run, layer, neuron, constant, rank from between_label_variance")
        rankings = wh.sql("select run, layer, count(*) as n from criterion_rankings group by all")
        agreement = wh.sql(
            "select run, layer, criterion_a, criterion_b, by_construction, spearman from criteria_agreement "
            "where k is null"
        )
    layer0 = ranks.filter((pl.col("run") == "balanced") & (pl.col("layer") == 0))
    assert layer0["constant"].all() and layer0["rank"].null_count() == 10
    live = ranks.filter((pl.col("run") == "balanced") & (pl.col("layer") == 3)).sort("neuron")
    assert live["constant"].to_list() == [n == 4 for n in range(10)] and live["rank"].null_count() == 1
    assert sorted(live["rank"].drop_nulls().to_list()) == list(range(1, 10))
    assert rankings.filter(pl.col("layer") == 0).height == 0
    assert agreement.filter(pl.col("layer") == 0).height == 0  # nothing to agree about, not 1.000
    pair = agreement.filter((pl.col("criterion_a") == "eta_squared") & (pl.col("criterion_b") == "variance"))
    flags = dict(pair.select("run", "by_construction").iter_rows())
    assert flags == {"balanced": True, "uneven": False}
    assert pair.filter(pl.col("run") == "balanced")["spearman"][0] == pytest.approx(1.0)
    out = neurons("--db", db, "analyze", "--run", "balanced", "--layer", "0")
    assert out.exit_code == 0, out.output
    assert "Layer 0 is constant" in out.stdout
    out = neurons("--db", db, "analyze", "--run", "balanced", "--layer", "3")
    assert "1 of the 10 neurons are constant" in out.stdout and "by construction" in out.stdout


def test_normal_tail_matches_scipy(tmp_path):
    """normal_sf, the SQL's normal tail (DuckDB has none), against scipy over both tails."""
    x = np.linspace(-8, 8, 641)
    with Warehouse(tmp_path / "w.duckdb") as wh:
        got = wh.sql("select normal_sf(x) as p from unnest(?) as t(x)", [x.tolist()])["p"].to_numpy()
    np.testing.assert_allclose(got, stats.norm.sf(x), rtol=0, atol=1e-7)


def test_class_chance_level_is_what_noise_gives(tmp_path):
    """Definition 24 on pure noise (no label effect; cells of 10 of a language's 30 sentences; one neuron constant
    in ar): n_past equals numpy's count of profiles past the threshold, n_chance the formula computed with scipy, and
    the profiles that pass are as many as n_chance expects, plain and with absolute (within 15 %, the count's
    sampling error being about 4 %). Leaving out the finite-population factor (N - n) / (N - 1) would expect about
    twice as many."""
    labels = ["anger", "fear", "joy"]
    values, lang, lab = syn.make(
        seed=7, per_cell=10, neurons=2000, labels=labels, planted=syn.Planted(polyglot={}, monolingual={})
    )
    values[lang == "ar", 0] = 3.0
    db = tmp_path / "w.duckdb"
    load_long(db, syn.write_long(tmp_path / "n.parquet", [_long(values, lang, lab)]), "noise")
    z = syn.zscore(values, lang)
    with Warehouse(db, read_only=True) as wh:
        for absolute in (False, True):
            got = wh.sql(
                "select * from profile_chance(0.5, absolute := ?) where run = 'noise' order by language", [absolute]
            )
            assert got["language"].to_list() == syn.LANGS and got["mostly_chance"].all()
            for row in got.iter_rows(named=True):
                m = lang == row["language"]
                means = np.stack([z[m & (lab == label)].mean(axis=0) for label in labels])
                assert row["n_past"] == int(((np.abs(means) if absolute else means) > 0.5).sum())
                n, big_n = 10, int(m.sum())
                sd = np.sqrt((big_n - n) / (n * (big_n - 1)))
                live = int((values[m].std(axis=0) > 0).sum())
                expected = live * len(labels) * (2 if absolute else 1) * stats.norm.sf(0.5 / sd)
                tail_error = row["n_profiles"] * (2 if absolute else 1) * 1e-7
                assert row["n_chance"] == pytest.approx(expected, abs=tail_error)
                assert (row["min_cell"], row["max_cell"], row["n_profiles"]) == (n, n, 2000 * len(labels))
            assert got["n_past"].sum() == pytest.approx(got["n_chance"].sum(), rel=0.15)


def test_languages_whose_classes_are_chance_are_named(tmp_path, neurons):
    """ar and nl hold 60 sentences per cell and planted neurons; ja 3 per cell of pure noise. analyze names ja alone
    as mostly chance and asks for the permutation test; once `significance` has run, the note gives its verdict on
    ja's monolingual count."""
    big, big_lang, big_lab = syn.make(seed=8, per_cell=60, neurons=40, langs=["ar", "nl"])
    small, small_lang, small_lab = syn.make(
        seed=9, per_cell=3, neurons=40, langs=["ja"], planted=syn.Planted(polyglot={}, monolingual={})
    )
    values, lang, lab = (
        np.vstack([big, small]),
        np.concatenate([big_lang, small_lang]),
        np.concatenate([big_lab, small_lab]),
    )
    db = tmp_path / "w.duckdb"
    load_long(db, syn.write_long(tmp_path / "m.parquet", [_long(values, lang, lab)]), "mixed")

    def chance_notes() -> list[str]:
        out = neurons("--db", db, "analyze", "--run", "mixed", "--json")
        assert out.exit_code == 0, out.output
        return [c for c in json.loads(out.stdout)["caveats"] if "may be chance" in c]

    notes = chance_notes()
    assert len(notes) == 1 and notes[0].startswith("Neuron classes in ja may be chance")
    assert "`neurons significance`" in notes[0]
    with Warehouse(db) as wh:
        store(wh, significance(wh, "mixed", 11, SignificanceOptions(permutations=200, bootstraps=0, seed=0)))
        observed = wh.monolingual_counts("mixed", 11).filter(pl.col("language") == "ja")["n_neurons"].item()
    notes = chance_notes()
    assert len(notes) == 1 and f"The permutation test of the monolingual counts: ja {observed} against" in notes[0]


LENGTH_LANGS = ["ar", "nl", "sl"]
LENGTH_TYPICAL = {"anger": 8, "fear": 12, "joy": 30, "sadness": 16}
"""Languages, and each label's typical sentence length in tokens, alike in every language."""


def _lengths(rng, per: int, spread: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PER sentences per language x label: their languages, labels and token counts (the label's typical length
    times a log-normal factor of SPREAD)."""
    lang = np.repeat(LENGTH_LANGS, len(LENGTH_TYPICAL) * per)
    lab = np.tile(np.repeat(list(LENGTH_TYPICAL), per), len(LENGTH_LANGS))
    tokens = np.maximum(1, np.round([LENGTH_TYPICAL[l] * rng.lognormal(0, spread) for l in lab])).astype(int)
    return lang, lab, tokens


def test_length_adjusted_variance_is_the_ancova_of_z_on_length(tmp_path, neurons, monkeypatch):
    """Definition 25 against numpy on data where labels differ in length: neuron 0 follows length alone, neuron 1
    the label alone (its label happens to hold the longest sentences), neuron 2 both, neuron 3 is constant in ar.
    Each cell's mean z is moved to its language's mean length along the pooled within-label slope; the
    between-label variance of those means, length_share and length_r equal numpy's. Length explains nearly all of
    neuron 0's label differences and almost none of neuron 1's: a slope taken across labels would have taken
    neuron 1's effect for length. analyze names neuron 0, and neither 1 nor 2."""
    rng = np.random.default_rng(11)
    langs, labels = LENGTH_LANGS, list(LENGTH_TYPICAL)
    lang, lab, tokens = _lengths(rng, 40, 0.35)
    x = np.log(tokens)
    values = rng.normal(size=(lab.size, 8))
    values[:, 0] += 2.0 * x
    values[:, 1] += 1.5 * (lab == "joy")
    values[:, 2] += 1.0 * x + 1.0 * (lab == "fear")
    values[lang == "ar", 3] = 5.0
    frame = _long(values, lang, lab).with_columns(n_tokens=pl.Series(np.repeat(tokens, 8)).cast(pl.Int64))
    db = tmp_path / "w.duckdb"
    load_long(db, syn.write_long(tmp_path / "l.parquet", [frame]), "lengths")
    with Warehouse(db, read_only=True) as wh:
        got = wh.sql("select * from length_confound where run = 'lengths' order by neuron")
        eta = dict(wh.sql("select language, any_value(eta_squared) from label_lengths group by language").iter_rows())

    z = syn.zscore(values.astype(np.float32).astype(np.float64), lang)
    xc = x - np.array([x[lang == L].mean() for L in lang])  # centred within language
    cells = [(L, l, (lang == L) & (lab == l)) for L in langs for l in labels]
    adjusted = np.zeros((len(labels), z.shape[1]))
    raw = np.zeros_like(adjusted)
    cell = {}  # (language, label): the profile at the language's mean length
    for L in langs:
        in_l = [(l, m) for L2, l, m in cells if L2 == L]
        szx = sum(((z[m] - z[m].mean(axis=0)) * (xc[m] - xc[m].mean())[:, None]).sum(axis=0) for _, m in in_l)
        sxx = sum(((xc[m] - xc[m].mean()) ** 2).sum() for _, m in in_l)
        slope = szx / sxx  # pooled within-label slope (ANCOVA)
        for l, m in in_l:
            i = labels.index(l)
            cell[L, l] = z[m].mean(axis=0) - slope * xc[m].mean()
            adjusted[i] += m.sum() * cell[L, l]
            raw[i] += m.sum() * z[m].mean(axis=0)
        ss = sum(m.sum() * xc[m].mean() ** 2 for _, m in in_l)
        assert eta[L] == pytest.approx(ss / (xc[lang == L] ** 2).sum(), rel=1e-9)
    counts = np.array([(lab == l).sum() for l in labels])[:, None]
    variance, adjusted_variance = (raw / counts).var(axis=0), (adjusted / counts).var(axis=0)
    length_r = (z * xc[:, None]).sum(axis=0) / np.sqrt((z**2).sum(axis=0) * (xc**2).sum())
    np.testing.assert_allclose(got["variance"], variance, rtol=1e-6)
    np.testing.assert_allclose(got["adjusted_variance"], adjusted_variance, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(got["length_share"], 1 - adjusted_variance / variance, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(got["length_r"], length_r, rtol=1e-6, atol=1e-9)
    with Warehouse(db, read_only=True) as wh:  # definition 5 on those profiles, and its pair means
        rho = wh.sql("select * from profile_correlation(at_equal_length := true) where run = 'lengths'")
        pairs = wh.sql("select * from length_pair_summary where run = 'lengths'")
    assert rho.height == len(labels) * 3
    for r in rho.iter_rows(named=True):
        a, b = cell[r["language_a"], r["label"]], cell[r["language_b"], r["label"]]
        assert r["spearman"] == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-9)
        assert r["cosine"] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-9)
    for p in pairs.iter_rows(named=True):
        mean = np.mean([stats.spearmanr(cell[p["language_a"], l], cell[p["language_b"], l])[0] for l in labels])
        assert p["mean_spearman_at_equal_length"] == pytest.approx(mean, abs=1e-9)
    with Warehouse(db, read_only=True) as wh:  # Figure 2 at equal length draws those rhos
        heat = build(wh, "correlation", ChartOptions(run="lengths", at_equal_length=True)).to_dict()
    cells = max(heat["datasets"].values(), key=len)
    for c in cells:
        a, b = c["pair"].split("–")
        assert c["value"] == pytest.approx(stats.spearmanr(cell[a, c["label"]], cell[b, c["label"]])[0], abs=1e-9)
    assert len(cells) == rho.height and "at equal sentence length" in heat["title"]["text"]
    share = got["length_share"].to_list()
    assert share[0] > 0.8 and abs(share[1]) < 0.2 and 0.2 < share[2] < 0.8
    assert got["length_driven"].to_list()[:3] == [True, False, False]  # noise neurons (3-7) may be either

    with Warehouse(db, read_only=True) as wh:  # the figure draws every neuron and counts the length-driven ones
        spec = build(wh, "length", ChartOptions(run="lengths", top=3)).to_dict()
    drawn = max((d for d in spec["datasets"].values()), key=len)
    assert sorted(r["neuron"] for r in drawn) == list(range(8))
    assert [r["neuron"] for r in drawn if r["is_top"]] == got.filter(pl.col("rank") <= 3)["neuron"].sort().to_list()
    assert f"({got['length_driven'].sum()} of 8 neurons)" in " ".join(spec["title"]["subtitle"])

    out = neurons("--db", db, "analyze", "--run", "lengths", "--json")
    assert out.exit_code == 0, out.output
    notes = [c for c in json.loads(out.stdout)["caveats"] if "top-variance neurons may track sentence length" in c]
    assert len(notes) == 1 and ": 0 (" in notes[0] and " 1 (" not in notes[0] and " 2 (" not in notes[0]

    from toolkit.stats.analysis import caveats, language_pairs, top_variance_neurons
    from toolkit.stats.explorer import neuron_cards

    with Warehouse(db, read_only=True) as wh:  # a report's readers of the length views: each view computed once
        queried, sql = [], wh.sql
        monkeypatch.setattr(wh, "sql", lambda q, p=None: queried.append(q) or sql(q, p))
        caveats(wh, "lengths", 11)
        top = top_variance_neurons(wh, "lengths", 11, 5)
        pairs = language_pairs(wh, "lengths", 11)
        cards = neuron_cards(wh, "lengths", 11)
        build(wh, "length", ChartOptions(run="lengths"))
    assert sum("length_confound" in q for q in queried) == 1 and sum("length_pair_summary" in q for q in queried) == 1
    np.testing.assert_allclose(top["length_share"], got.sort("rank")["length_share"].head(5), rtol=1e-9)
    assert pairs["mean_spearman_at_equal_length"].null_count() == 0
    np.testing.assert_allclose(cards.variance.sort("neuron")["length_r"], got["length_r"], rtol=1e-9)


def test_agreement_that_is_only_length_is_named(tmp_path, neurons):
    """Forty neurons follow sentence length alone, each with the same coefficient in every language, and labels
    differ in length alike across languages: the profiles agree across languages (high Spearman), and at equal
    length the agreement is gone. length_pair_summary flags every pair, and analyze names them."""
    rng = np.random.default_rng(12)
    lang, lab, tokens = _lengths(rng, 30, 0.3)
    values = np.log(tokens)[:, None] * rng.normal(size=40)[None, :] + 0.5 * rng.normal(size=(lab.size, 40))
    frame = _long(values, lang, lab).with_columns(n_tokens=pl.Series(np.repeat(tokens, 40)).cast(pl.Int64))
    db = tmp_path / "w.duckdb"
    load_long(db, syn.write_long(tmp_path / "p.parquet", [frame]), "echo")
    with Warehouse(db, read_only=True) as wh:
        pairs = wh.sql("select * from length_pair_summary where run = 'echo' order by language_a, language_b")
    assert pairs.height == 3 and pairs["length_carried"].all()
    assert (pairs["mean_spearman"] > 0.5).all() and (pairs["mean_spearman_at_equal_length"].abs() < 0.2).all()
    out = neurons("--db", db, "analyze", "--run", "echo", "--json")
    assert out.exit_code == 0, out.output
    notes = [c for c in json.loads(out.stdout)["caveats"] if c.startswith("Part of the cross-lingual agreement")]
    assert len(notes) == 1 and all(f"{a}–{b}" in notes[0] for a, b in (("ar", "nl"), ("ar", "sl"), ("nl", "sl")))


def test_sentences_of_one_length_confound_nothing(tmp_path, neurons):
    """Every sentence has the same token count (texts cut at one max length): length explains nothing (share 0,
    never length-driven), its correlation is undefined (null, "--" on the card), and analyze and the card run."""
    values, lang, lab = syn.make(seed=13, per_cell=10, neurons=12, langs=["ar", "nl"], labels=["joy", "fear"],
                                 planted=syn.Planted(polyglot={"joy": {3}}, monolingual={}))  # fmt: skip
    frame = _long(values, lang, lab).with_columns(n_tokens=pl.lit(64, pl.Int64))
    db = tmp_path / "w.duckdb"
    load_long(db, syn.write_long(tmp_path / "o.parquet", [frame]), "flat")
    with Warehouse(db, read_only=True) as wh:
        got = wh.sql("select * from length_confound where run = 'flat'")
    assert got.height == 12 and got["length_r"].null_count() == 12 and not got["length_driven"].any()
    np.testing.assert_allclose(got["length_share"].to_numpy(), 0.0, atol=1e-12)
    card = neurons("--db", db, "neuron", 3, "--run", "flat")
    assert card.exit_code == 0, card.output
    assert "length (definition 25): r -- with log tokens" in card.stdout
    assert neurons("--db", db, "analyze", "--run", "flat").exit_code == 0
