"""Explaining one neuron: token values (definition 21), examples across its range, density and histogram
(definition 22) and nearest neurons (definition 23), each against an independent computation here: a hooked
forward of one sentence at a time, numpy over the stored values."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch
from conftest import assert_one_line_error
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from toolkit.store.warehouse import Warehouse


def _extract(neurons, db, ckpt, data, run, *args):
    r = neurons("--db", db, "extract", ckpt, data, "--run", run, "--quiet", *args)
    assert r.exit_code == 0, r.stderr


def _values(db, run, layer) -> pl.DataFrame:
    """Every stored pooled value of RUN's LAYER with the sentence's language and text (read with plain SQL)."""
    with Warehouse(db, read_only=True) as wh:
        return wh.sql(
            "select a.sentence_id, s.language, s.label, s.text, a.neuron, a.value from activations_long a "
            "join sentences s on s.sentence_id = a.sentence_id and s.run_id = (select run_id from runs where name = ?) "
            "where a.run = ? and a.layer = ?",
            [run, run, layer],
        )


def _hooked(model, tok, text: str, layer: int, site: str, ffn_module) -> np.ndarray:
    """[tokens, neurons] of one sentence run alone: hidden_states[layer], or the output of FFN_MODULE(layer)."""
    enc = tok(text, return_tensors="pt")
    kept = {}
    handle = (
        ffn_module(model, layer).register_forward_hook(lambda m, i, o: kept.setdefault("v", o))
        if site == "ffn"
        else None
    )
    try:
        with torch.no_grad():
            out = model(**enc, output_hidden_states=True)
    finally:
        if handle is not None:
            handle.remove()
    values = kept["v"] if site == "ffn" else out.hidden_states[layer]
    return values[0].numpy()


ENCODER_FFN = lambda m, layer: m.encoder.layer[layer - 1].intermediate  # noqa: E731


@pytest.mark.parametrize(
    ("architecture", "site", "pooling", "layer"),
    [("xlm-roberta", "residual", "cls", 2), ("xlm-roberta", "ffn", "mean", 3), ("llama", "residual", "mean", 2)],
)
def test_token_values_equal_a_hooked_forward_of_each_sentence(
    tmp_path, neurons, checkpoint, data_csv, architecture, site, pooling, layer
):
    """`neuron N --tokens --json`: every token's value equals a one-sentence forward hooked here (1e-5), the
    values pooled again from them equal the stored value (a decoder's BOS left out of the mean), the largest word
    piece is marked, and the sentences are the top ones per language plus the middle of each equal-count bin."""
    decoder = architecture == "llama"
    ckpt = checkpoint(architecture, not decoder)
    db = tmp_path / "w.duckdb"
    _extract(neurons, db, ckpt, data_csv, "r", "--layers", str(layer), "--site", site, "--pooling", pooling)
    neuron = 7
    r = neurons("--db", db, "neuron", neuron, "--run", "r", "--tokens", "--sentences", 2, "--bins", 3, "--json")
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)["tokens"]
    tok = AutoTokenizer.from_pretrained(ckpt)
    model = (AutoModelForCausalLM if decoder else AutoModel).from_pretrained(ckpt).eval()
    for row in rows:
        expected = _hooked(model, tok, row["text"], layer, site, ENCODER_FFN)[:, neuron]
        got = np.array([t["value"] for t in row["tokens"]])
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
        ids = tok(row["text"])["input_ids"]
        assert [t["token"] for t in row["tokens"]] == tok.convert_ids_to_tokens(ids)
        special = np.isin(ids, [i for i in tok.all_special_ids if i != tok.unk_token_id])
        assert [t["special"] for t in row["tokens"]] == special.tolist()
        word = np.where(special, -np.inf, expected)
        assert row["max_position"] == int(np.argmax(word))
        bos = decoder and ids[0] == tok.bos_token_id  # a decoder's BOS is not pooled
        pooled = expected[0] if pooling == "cls" else expected[int(bos) :].mean()
        assert row["pooled_again"] == pytest.approx(pooled, abs=1e-5)
        assert row["stored"] == pytest.approx(pooled, abs=1e-4)
    # which sentences: the two most activating per language, and the middle one of each of 3 equal-count bins
    stored = _values(db, "r", layer).filter(pl.col("neuron") == neuron)
    for (language,), g in stored.group_by("language"):
        ordered = g.sort(["value", "sentence_id"])
        got_top = [x["sentence_id"] for x in rows if x["language"] == language and x["kind"] == "top"]
        assert got_top == g.sort(["value", "sentence_id"], descending=[True, False])["sentence_id"].to_list()[:2]
        n, size = ordered.height, []
        for b in range(3):  # ntile: the first n mod 3 bins hold one more
            size.append(n // 3 + (1 if b < n % 3 else 0))
        edges = np.concatenate([[0], np.cumsum(size)])
        middles = [ordered["sentence_id"][int(edges[b] + (size[b] + 1) // 2 - 1)] for b in range(3)]
        got_bins = [x["sentence_id"] for x in rows if x["language"] == language and x["kind"] == "bin"]
        assert got_bins == middles


def test_neighbours_of_nothing_are_none_and_quiet():
    """No complete row to correlate (an empty run, or a missing value in every row): no neighbours, and no numpy
    warning about the mean of an empty slice."""
    import warnings

    from toolkit.stats.neighbours import _top

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for rows in (np.zeros((0, 3)), np.array([[1.0, np.nan, 2.0]])):
            assert _top(np.arange(3), rows, [0, 1], "sentences", 10).height == 0


def test_density_histogram_and_neighbours_equal_numpy(tmp_path, neurons, checkpoint, data_csv):
    """The card's density (share above 0), its 20-bin histogram per language, and its ten nearest neurons by |r|
    of z across sentences and of label profiles, each computed here from the stored values."""
    db = tmp_path / "w.duckdb"
    _extract(neurons, db, checkpoint(), data_csv, "r", "--layers", "2", "--pooling", "mean")
    neuron = 11
    r = neurons("--db", db, "neuron", neuron, "--run", "r", "--json")
    assert r.exit_code == 0, r.stderr
    card = json.loads(r.stdout)["neurons"][str(neuron)]
    values = _values(db, "r", 2)
    mine = values.filter(pl.col("neuron") == neuron)
    lo, hi = mine["value"].min(), mine["value"].max()
    for language, density in card["density"]:
        v = mine.filter(pl.col("language") == language)["value"].to_numpy()
        assert density == pytest.approx((v > 0).mean(), abs=1e-12)
        counts, _ = np.histogram(v, bins=20, range=(lo, hi))
        got = np.zeros(20, dtype=int)
        for lang, b, n in card["histogram"]:
            if lang == language:
                got[b] = n
        np.testing.assert_array_equal(got, counts)
    assert card["range"] == pytest.approx([lo, hi], rel=1e-6)

    # z within language (ddof 0), then Pearson r of every neuron with this one across all sentences
    wide = values.pivot(on="neuron", index=["sentence_id", "language", "label"], values="value").sort("sentence_id")
    cols = [str(n) for n in sorted(int(c) for c in wide.columns[3:])]
    x = wide.select(cols).to_numpy().astype(np.float64)
    lang = wide["language"].to_numpy()
    z = np.zeros_like(x)
    for g in np.unique(lang):
        part = x[lang == g]
        sd = part.std(axis=0)
        z[lang == g] = np.where(sd > 0, (part - part.mean(axis=0)) / np.where(sd > 0, sd, 1), 0.0)
    r_all = np.array([np.corrcoef(z[:, neuron], z[:, j])[0, 1] if j != neuron else np.nan for j in range(x.shape[1])])
    order = [j for j in np.argsort(-np.where(np.isnan(r_all), -1.0, np.abs(r_all)), kind="stable")][:10]
    got = [(o, rv) for by, o, rv in card["neighbours"] if by == "sentences"]
    assert [o for o, _ in got] == order
    np.testing.assert_allclose([rv for _, rv in got], r_all[order], atol=1e-9)

    # label profiles: the mean z per language x label, then Pearson r across those cells
    label = wide["label"].to_numpy()
    keys = wide.select("language", "label").unique().rows()
    prof = np.array([z[(lang == a) & (label == b)].mean(axis=0) for a, b in keys])
    p_all = np.array(
        [np.corrcoef(prof[:, neuron], prof[:, j])[0, 1] if j != neuron else np.nan for j in range(x.shape[1])]
    )
    p_order = [j for j in np.argsort(-np.where(np.isnan(p_all), -1.0, np.abs(p_all)), kind="stable")][:10]
    got_p = [(o, rv) for by, o, rv in card["neighbours"] if by == "profiles"]
    np.testing.assert_allclose([rv for _, rv in got_p], p_all[p_order], atol=1e-9)
    text = neurons("--db", db, "neuron", neuron, "--run", "r")
    assert "density" in text.stdout and "nearest neurons" in text.stdout


def test_stored_tokens_reach_the_report_and_a_moved_model_is_one_line(tmp_path, neurons, checkpoint, data_csv):
    """`neurons tokens` stores every neuron's token values on its top sentences; the view `token_evidence`
    holds the same values as a live `--tokens`; the report's explorer carries them. A run whose model moved
    still prints its card, then says so in one line; a checkpoint with other weights is refused."""
    import shutil

    ckpt = checkpoint()
    moved = tmp_path / "model"
    shutil.copytree(ckpt, moved)
    db = tmp_path / "w.duckdb"
    _extract(neurons, db, moved, data_csv, "r", "--layers", "2", "--pooling", "mean")
    r = neurons("--db", db, "tokens", "--run", "r", "--sentences", "2")
    assert r.exit_code == 0, r.stderr
    assert "stored" in r.stdout
    live = json.loads(neurons("--db", db, "neuron", 3, "--run", "r", "--tokens", "--sentences", 2, "--json").stdout)
    with Warehouse(db, read_only=True) as wh:
        stored = wh.sql("select * from token_evidence where run = 'r' and neuron = 3 order by sentence_id, position")
        n_neurons = wh.scalar("select count(distinct neuron) from token_values")
    assert n_neurons == 32
    for row in (x for x in live["tokens"] if x["kind"] == "top"):
        s = stored.filter(pl.col("sentence_id") == row["sentence_id"])
        np.testing.assert_allclose(s["value"].to_numpy(), [t["value"] for t in row["tokens"]], atol=1e-6)
        assert s.filter(pl.col("is_max"))["position"].to_list() == [row["max_position"]]
    out = tmp_path / "report"
    assert neurons("--db", db, "report", "--run", "r", "--out", out).exit_code == 0
    html = (out / "index.html").read_text()
    data = json.loads(html.split("id='explorer-data'>", 1)[1].split("</script>", 1)[0])
    card = data["neurons"]["3"]
    assert card["token_values"] and all(k in data["tokens"] for k in card["token_values"])
    for row in (x for x in live["tokens"] if x["kind"] == "top" and str(x["sentence_id"]) in card["token_best"]):
        assert card["token_best"][str(row["sentence_id"])] == row["max_position"]  # the box the explorer draws

    shutil.rmtree(moved)
    gone = neurons("--db", db, "neuron", 3, "--run", "r", "--tokens")
    assert "mean z per label" in gone.stdout  # the rest of the card is there
    assert_one_line_error(gone, "was extracted from", "--model")
    other = tmp_path / "other"
    shutil.copytree(checkpoint("xlm-roberta", True), other)
    model = AutoModel.from_pretrained(other)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)
    model.save_pretrained(other)
    assert_one_line_error(
        neurons("--db", db, "tokens", "--run", "r", "--model", other, "--quiet"),
        "does not reproduce run 'r'",
        "--model",
    )
    with Warehouse(db, read_only=True) as wh:  # the refused store left what was there
        assert wh.scalar("select count(distinct neuron) from token_values") == 32
