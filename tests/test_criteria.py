"""The field's other neuron criteria: FFN activations, LAPE, probing rankings, and where they agree."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import synthetic as syn
import torch
from conftest import assert_one_line_error
from scipy import stats
from sklearn.linear_model import LogisticRegression
from transformers import AutoModel, AutoTokenizer

from toolkit.capture.load import load_long
from toolkit.store.warehouse import Warehouse


@pytest.mark.parametrize("architecture", ["xlm-roberta", "bert", "distilbert"])
def test_ffn_extraction_equals_a_forward_hook(tmp_path, neurons, checkpoint, sample, architecture):
    """--site ffn stores the feed-forward activations after the nonlinearity, pooled (mean, cls, active) over each
    sentence's own tokens: equal, within 1e-5, to a hook on each sentence run alone (no padding at all)."""
    ckpt = checkpoint(architecture, False)
    data = tmp_path / "d.csv"
    sample.head(24).write_csv(data)
    db = tmp_path / "w.duckdb"
    for pooling in ("mean", "cls", "active"):
        r = neurons(
            "--db",
            db,
            "extract",
            ckpt,
            data,
            "--run",
            pooling,
            "--site",
            "ffn",
            "--pooling",
            pooling,
            "--layers",
            "1,3",
            "--batch-size",
            "8",
            "--quiet",
        )
        assert r.exit_code == 0, r.stderr
    model = AutoModel.from_pretrained(ckpt).eval()
    tok = AutoTokenizer.from_pretrained(ckpt)
    blocks = model.encoder.layer if hasattr(model, "encoder") else model.transformer.layer
    seen = {}
    hooks = [
        (b.intermediate if hasattr(b, "intermediate") else b.ffn.activation).register_forward_hook(
            lambda _m, _i, out, k=k: seen.__setitem__(k, out[0])
        )
        for k, b in enumerate(blocks, start=1)
    ]
    expected = {"mean": [], "cls": [], "active": []}
    with torch.no_grad():
        for text in sample.head(24)["text"].to_list():
            model(**tok(text, return_tensors="pt"))
            for k in (1, 3):
                a = seen[k].numpy()
                expected["mean"].append(a.mean(axis=0))
                expected["cls"].append(a[0])
                expected["active"].append((a > 0).mean(axis=0))
    for h in hooks:
        h.remove()
    with Warehouse(db, read_only=True) as wh:
        for pooling, rows in expected.items():
            got = wh.sql(
                "select sentence_id, layer, list(value order by neuron) as v from activations_long where run = ? "
                "group by all order by sentence_id, layer",
                [pooling],
            )["v"].to_list()
            np.testing.assert_allclose(np.array(got), np.array(rows), atol=1e-5, err_msg=pooling)
        site = wh.sql("select site, pooling, hidden_size from runs where name = 'active'").row(0)
    width = model.config.intermediate_size if hasattr(model.config, "intermediate_size") else model.config.hidden_dim
    assert site == ("ffn", "active", width)


def test_ffn_bad_input(tmp_path, neurons, checkpoint, data_csv):
    db = tmp_path / "w.duckdb"
    base = ("--db", db, "extract", checkpoint(), data_csv, "--run", "x", "--quiet")
    assert_one_line_error(neurons(*base, "--site", "ffn", "--layers", "0"), "out of range", "feed-forward")
    assert_one_line_error(neurons(*base, "--pooling", "active"), "--site ffn")
    assert not db.exists()


LANGS = ["ar", "en", "ja", "nl"]


@pytest.fixture(scope="module")
def lape_db(tmp_path_factory):
    """Token shares of 40 FFN neurons: neuron 5 fires only in Japanese, neuron 9 only in Arabic and Dutch,
    the rest in every language alike; each sentence has its own token count."""
    rng = np.random.default_rng(0)
    n_per, neurons = 30, 40
    lang = np.repeat(LANGS, n_per)
    lab = np.tile(np.repeat(["joy", "fear", "anger"], 10), len(LANGS))
    share = rng.uniform(0.2, 0.6, size=(lang.size, neurons))
    share[:, 5] = np.where(lang == "ja", rng.uniform(0.7, 0.9, lang.size), 0.0)
    share[:, 9] = np.where(np.isin(lang, ["ar", "nl"]), rng.uniform(0.6, 0.9, lang.size), 0.0)
    tokens = rng.integers(5, 40, size=lang.size)
    frame = syn.long_frame(share, lang, lab, 3).with_columns(n_tokens=pl.Series(np.repeat(tokens, neurons)))
    tmp = tmp_path_factory.mktemp("lape")
    path = tmp / "lape.parquet"
    frame.write_parquet(path)
    db = tmp / "w.duckdb"
    load_long(db, path, "lape", site="ffn", pooling="active")
    return db, share.astype(np.float32).astype(np.float64), lang, tokens


def test_lape_equals_the_papers_equations(lape_db):
    db, share, lang, tokens = lape_db
    p = np.stack([(share[lang == L] * tokens[lang == L, None]).sum(0) / tokens[lang == L].sum() for L in LANGS])
    q = p / p.sum(axis=0)
    entropy = -(np.where(q > 0, q * np.log(np.where(q > 0, q, 1)), 0)).sum(axis=0)
    with Warehouse(db, read_only=True) as wh:
        got = wh.sql(
            "select language, neuron, probability, normalized, entropy from language_entropy() "
            "where run = 'lape' order by neuron, language"
        )
        chosen = wh.sql(
            "select neuron, language from language_specific_neurons(top_rate := 0.05) where run = 'lape' "
            "order by neuron, language"
        )
    np.testing.assert_allclose(got["probability"].to_numpy(), p.T.reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(got["normalized"].to_numpy(), q.T.reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(got["entropy"].to_numpy(), np.repeat(entropy, len(LANGS)), rtol=1e-6, atol=1e-12)
    assert {(n, lang) for n, lang in chosen.iter_rows()} == {(5, "ja"), (9, "ar"), (9, "nl")}  # planted, only


def identify(activation_probs: torch.Tensor, top_rate=0.01, filter_rate=0.95, activation_bar_ratio=0.95) -> set:
    """`identify.py` of Tang et al. (RUCAIBox/Language-Specific-Neurons), ported line by line (printing and saving
    left out): ACTIVATION_PROBS is their `over_zero / n`, layer x neuron x language. Returns {(layer index,
    neuron, language index)}."""
    normed_activation_probs = activation_probs / activation_probs.sum(dim=-1, keepdim=True)
    normed_activation_probs[torch.isnan(normed_activation_probs)] = 0
    log_probs = torch.where(normed_activation_probs > 0, normed_activation_probs.log(), 0)
    entropy = -torch.sum(normed_activation_probs * log_probs, dim=-1)
    flattened_probs = activation_probs.flatten()
    top_prob_value = flattened_probs.kthvalue(round(len(flattened_probs) * filter_rate)).values.item()
    top_position = (activation_probs > top_prob_value).sum(dim=-1)
    entropy[top_position == 0] = torch.inf
    flattened_entropy = entropy.flatten()
    top_entropy_value = round(len(flattened_entropy) * top_rate)
    _, index = flattened_entropy.topk(top_entropy_value, largest=False)
    row_index = index // entropy.size(1)
    col_index = index % entropy.size(1)
    selected_probs = activation_probs[row_index, col_index].transpose(0, 1)
    activation_bar = flattened_probs.kthvalue(round(len(flattened_probs) * activation_bar_ratio)).values.item()
    lang, indice = torch.where(selected_probs > activation_bar)
    return {(int(row_index[i]), int(col_index[i]), int(g)) for g, i in zip(lang, indice)}


def test_lape_selection_is_identify_py_model_wide(tmp_path):
    """At its defaults `language_specific_neurons()` returns exactly the set the reference code selects, on three
    FFN layers where a per-layer reading differs: layer 3 holds every strongly language-specific neuron, layer 1
    none, so model-wide cuts select 1 % of the model's neurons all in layer 3 (and some above no bar), while
    per-layer cuts force neurons into layer 1."""
    rng = np.random.default_rng(11)
    layers, width, per_language = [1, 2, 3], 200, 12
    lang = np.repeat(LANGS, per_language)
    tokens = rng.integers(5, 40, size=lang.size)
    frames, shares = [], []
    for layer in layers:
        share = rng.uniform(0.1, 0.5, size=(lang.size, width))
        if layer == 3:  # 10 neurons fire mostly in one language, each a little elsewhere (distinct entropies)
            for j in range(10):
                own = LANGS[j % len(LANGS)]
                share[:, j] = np.where(lang == own, rng.uniform(0.8, 0.95, lang.size), rng.uniform(0, 0.05, lang.size))
        if layer == 2:  # 3 neurons fire in two languages
            for j in range(3):
                share[:, j] = np.where(np.isin(lang, LANGS[:2]), rng.uniform(0.7, 0.9, lang.size), 0.02)
        share[:, width - 1] = 0.0  # a neuron that never fires (entropy undefined)
        shares.append(share.astype(np.float32).astype(np.float64))
        frames.append(
            syn.long_frame(share, lang, lang, layer).with_columns(n_tokens=pl.Series(np.repeat(tokens, width)))
        )
    db = tmp_path / "w.duckdb"
    load_long(db, syn.write_long(tmp_path / "lape.parquet", frames), "lape", site="ffn", pooling="active")
    p = np.stack(  # layer x neuron x language, as identify.py's over_zero / n
        [
            np.stack([(x[lang == L] * tokens[lang == L, None]).sum(0) / tokens[lang == L].sum() for L in LANGS], -1)
            for x in shares
        ]
    )
    reference = {(layers[li], n, LANGS[g]) for li, n, g in identify(torch.from_numpy(p))}
    with Warehouse(db, read_only=True) as wh:
        ours = wh.sql("select layer, neuron, language from language_specific_neurons() where run = 'lape'")
        per_layer = wh.sql(
            "select layer, neuron, language from language_specific_neurons(per_layer := true) where run = 'lape'"
        )
        selected = wh.scalar(  # with the bar at the smallest probability, every selected neuron shows
            "select count(distinct (layer, neuron)) from language_specific_neurons(activation_bar_ratio := 0.0) "
            "where run = 'lape'"
        )
    assert {tuple(r) for r in ours.iter_rows()} == reference
    assert reference and {layer for layer, _, _ in reference} == {3}
    assert selected == round(len(layers) * width * 0.01)  # exactly round(neurons x top_rate) neurons
    assert 1 in set(per_layer["layer"])  # the per-layer reading puts neurons where there are none


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    values, lang, lab = syn.make(seed=0, per_cell=25, neurons=48)
    tmp = tmp_path_factory.mktemp("probe")
    db = tmp / "w.duckdb"
    load_long(db, syn.write_long(tmp / "p.parquet", [syn.long_frame(values, lang, lab, 11)]), "p")
    return db, values, lang, lab


def test_probe_accuracy_equals_a_scikit_learn_fit(planted, neurons):
    db, values, lang, lab = planted
    r = neurons(
        "--db",
        db,
        "probe",
        "--run",
        "p",
        "--train-languages",
        "ja",
        "--top",
        "5",
        "--controls",
        "2",
        "--seed",
        "4",
        "--quiet",
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    got = json.loads(r.stdout)
    z = syn.zscore(values.astype(np.float32).astype(np.float64), lang)
    from toolkit.stats.probe import held_out_split

    sentences = pl.DataFrame({"sentence_id": np.arange(len(lang)), "language": lang, "label": lab})
    held = held_out_split(sentences, 4)  # the split is an input; the probe and its scores are recomputed here
    train = (lang == "ja") & ~held
    n = int(train.sum())
    c, ratio = 1 / (n * (1e-3 + 2 * 1e-3)), 1e-3 / (1e-3 + 2 * 1e-3)  # NeuroX's l1 |w| + l2 |w|^2, mean loss
    model = LogisticRegression(C=c, l1_ratio=ratio, solver="saga", max_iter=300, tol=1e-3, random_state=4)
    model.fit(z[train], lab[train])
    for row in got["scores"]:
        test = (lang == row["test_language"]) & (held | (row["test_language"] != "ja"))
        assert row["n_sentences"] == int(test.sum())
        assert row["accuracy"] == pytest.approx(float(np.mean(model.predict(z[test]) == lab[test])), abs=1e-9)


def test_planted_neurons_top_every_criterion(planted, neurons):
    db, *_ = planted
    assert neurons("--db", db, "probe", "--run", "p", "--controls", "2", "--top", "8", "--quiet").exit_code == 0
    polyglot = set().union(*syn.Planted().polyglot.values())  # label-coding in every language
    with Warehouse(db, read_only=True) as wh:
        ranks = wh.sql("select criterion, neuron, rank from criterion_rankings where run = 'p' and layer = 11")
        agreement = wh.sql("select * from criteria_agreement where run = 'p' and layer = 11 and k = 10")
        topk = wh.sql("select * from probe_topk where run = 'p'")
        scores = wh.sql("select * from probe_scores where run = 'p' and train_language = 'all'")
    for criterion in ("variance", "eta_squared", "probe"):
        top = set(ranks.filter((pl.col("criterion") == criterion) & (pl.col("rank") <= 8))["neuron"])
        assert polyglot <= top, (criterion, sorted(top))
    assert agreement.height == 3 and agreement["jaccard"].min() >= 0.5
    assert topk["accuracy"][0] > topk["control_max"][0]  # the top-8 neurons beat random 8-sets
    assert topk["p_value"][0] == pytest.approx(1 / 3)  # none of the 2 random sets scores as well
    assert topk["informative"][0]  # and the probe on every neuron beats the majority label by more than chance
    assert (scores["selectivity"] > 0.2).all()
    with Warehouse(db, read_only=True) as wh:
        a = wh.sql(
            "select neuron, rank from criterion_rankings where run = 'p' and criterion = 'variance' order by neuron"
        )
        b = wh.sql(
            "select neuron, rank from criterion_rankings where run = 'p' and criterion = 'probe' order by neuron"
        )
        wh_rho = wh.sql(
            "select spearman from criteria_agreement where run = 'p' and k is null and "
            "criterion_a = 'probe' and criterion_b = 'variance'"
        ).item()
    rho = stats.spearmanr(a["rank"], b["rank"]).statistic
    assert wh_rho == pytest.approx(rho)


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    """A run with no label signal at all and more neurons than training sentences per label: the regime where a
    probe's weights fit noise."""
    values, lang, lab = syn.make(seed=5, per_cell=8, neurons=96, planted=syn.Planted(polyglot={}, monolingual={}))
    tmp = tmp_path_factory.mktemp("noise")
    db = tmp / "w.duckdb"
    load_long(db, syn.write_long(tmp / "n.parquet", [syn.long_frame(values, lang, lab, 11)]), "n")
    return db, lang, lab


def test_a_probe_that_learnt_nothing_says_its_ranking_is_noise(noise, neurons):
    db, lang, lab = noise
    r = neurons("--db", db, "probe", "--run", "n", "--top", "10", "--controls", "4", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert "Note: the probe on all 96 neurons" in r.stdout and "ranking may be noise" in r.stdout
    with Warehouse(db, read_only=True) as wh:
        topk = wh.sql("select * from probe_topk where run = 'n'").row(0, named=True)
        scores = wh.sql("select * from probe_scores where run = 'n'")
    from toolkit.stats.probe import held_out_split

    held = held_out_split(pl.DataFrame({"language": lang, "label": lab}), 0)
    names, counts = np.unique(lab[~held], return_counts=True)
    majority = names[np.argmax(counts)]
    assert topk["majority_accuracy"] == pytest.approx(np.mean(lab[held] == majority))
    assert topk["n_test"] == held.sum() and not topk["informative"]
    r = neurons("--db", db, "analyze", "--run", "n")
    assert r.exit_code == 0 and "The stored probe does not beat always answering the most frequent label" in r.stdout
    for row in scores.filter(pl.col("train_language") == "all").iter_rows(named=True):
        test = (lang == row["test_language"]) & held
        assert row["majority_accuracy"] == pytest.approx(np.mean(lab[test] == majority))


def test_informative_is_wrong_at_most_five_percent_of_null_probes(tmp_path):
    """200 probes on data with no signal (the toolkit's own fit on random z, 4 labels): the view calls at most
    5 % of them informative (within sampling error); a probe on a planted signal is called informative."""
    from toolkit.stats.probe import ProbeOptions, fit, majority_accuracy
    from toolkit.store.runs import run_record

    rng = np.random.default_rng(11)
    rows = []
    for i in range(201):
        n, p = 200, 12
        z = rng.standard_normal((n, p))
        y = rng.choice(np.array(list("abcd")), n, p=[0.4, 0.3, 0.2, 0.1])
        if i == 200:  # the one planted probe
            z[:, 0] += 2.0 * (y == "a")
        train = np.arange(n) < 150
        full = np.mean(fit(z[train], y[train], ProbeOptions()).predict(z[~train]) == y[~train])
        rows.append((i, 1, 0.0, 0, full, majority_accuracy(y[train], y[~train]), int((~train).sum())))
    with Warehouse(tmp_path / "w.duckdb") as wh, wh.transaction() as con:
        record = run_record(
            "sim",
            "load",
            data_file="-",
            data_sha256="-",
            layers=[0],
            hidden_size=12,
            counts=(200, 1, 4),
            settings={},
            complete=True,
        )
        wh.insert_run({"run_id": 0, **record})
        for i, *_ in rows:  # one probe per layer: the views show the latest probe of each run and layer
            con.execute("insert into probes values (?, 0, ?, '{}', 0, now(), 'test')", [i, i])
        con.executemany(
            "insert into probe_topk_results (probe_id, k, accuracy, n_controls, full_accuracy, majority_accuracy, "
            "n_test) values (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        flags = wh.sql("select probe_id, informative from probe_topk order by probe_id")["informative"].to_numpy()
    null_rate = flags[:200].mean()
    assert null_rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 200), null_rate
    assert flags[200]
