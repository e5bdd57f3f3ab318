"""`extract --aggregate [--window N]`: LAPE's corpus counts (fired tokens per language, layer and neuron; tokens per
language) equal counts made here by hand from unpadded forwards of the saved checkpoint, as the authors'
`activation.py` makes them; an interrupted run resumes to the same counts; LAPE reads either form alike."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import polars as pl
import pytest
import torch
from conftest import assert_one_line_error
from transformers import AutoModelForCausalLM, AutoTokenizer

import toolkit.capture.aggregate as aggregate
from toolkit.capture.datasets import read_dataset
from toolkit.capture.extract import ExtractOptions, extract

NEAR_ZERO = 1e-4  # a value this close to 0 may fall on either side between a padded batch and a lone forward


def ffn_values(model) -> list:
    """Each block's FFN value as LAPE counts it, written out here: act_fn(gate_proj(x)) in Llama, the activation
    after fc1 in OPT."""
    if model.config.model_type == "opt":
        return [layer.activation_fn for layer in model.model.decoder.layers]
    return [layer.mlp.act_fn for layer in model.model.layers]


def hand_counts(model, ids_list, start: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Over every sequence of IDS_LIST run alone, from position START: per FFN layer and neuron, the tokens on which
    the FFN value > 0, those within NEAR_ZERO of 0, and the tokens counted."""
    captured = {}
    mlps = ffn_values(model)
    hooks = [m.register_forward_hook(lambda _m, _i, out, k=k: captured.__setitem__(k, out)) for k, m in enumerate(mlps)]
    width = getattr(model.config, "intermediate_size", None) or model.config.ffn_dim
    fired = np.zeros((len(mlps), width), np.int64)
    near = np.zeros_like(fired)
    tokens = 0
    with torch.no_grad():
        for ids in ids_list:
            model(torch.tensor([ids]))
            for k in range(len(mlps)):
                a = captured[k].reshape(len(ids), -1)[start:].double().numpy()  # OPT flattens the tokens
                fired[k] += (a > 0).sum(0)
                near[k] += (np.abs(a) < NEAR_ZERO).sum(0)
            tokens += len(ids) - start
    for h in hooks:
        h.remove()
    return fired, near, tokens


def stored_counts(db, run: str) -> tuple[dict, dict]:
    con = duckdb.connect(str(db), read_only=True)
    fired = con.sql(
        "select f.language, f.layer, f.neuron, f.fired from fired_tokens f join runs r using (run_id) where r.name = ?",
        params=[run],
    ).pl()
    tokens = con.sql(
        "select t.* exclude (run_id) from language_tokens t join runs r using (run_id) where r.name = ?", params=[run]
    ).pl()
    con.close()
    out = {}
    for (language,), part in fired.group_by("language"):
        grid = np.zeros((part["layer"].max(), part["neuron"].max() + 1), np.int64)
        grid[part["layer"].to_numpy() - 1, part["neuron"].to_numpy()] = part["fired"].to_numpy()
        out[language] = grid
    return out, {r["language"]: r for r in tokens.iter_rows(named=True)}


def assert_counts_match(got: np.ndarray, want: np.ndarray, near: np.ndarray) -> None:
    diff = np.abs(got - want)
    assert (diff <= near).all(), f"{int((diff > near).sum())} counts differ beyond the near-zero values"
    assert diff.sum() <= max(2, want.sum() // 10_000)  # and hardly any differ at all


@pytest.fixture
def llama(checkpoint):
    return checkpoint("llama", False)


@pytest.mark.parametrize("architecture", ["llama", "opt"])
def test_sentence_counts_equal_hand_counts(tmp_path, neurons, checkpoint, sample, architecture):
    ckpt = checkpoint(architecture, False)
    data = tmp_path / "d.csv"
    picked = sample.sample(60, seed=5)
    picked.write_csv(data)
    db = tmp_path / "w.duckdb"
    r = neurons(
        "--db", db, "extract", ckpt, data, "--run", "agg", "--site", "ffn", "--aggregate", "--layers", "all",
        "--batch-size", "7", "--commit-every", "10", "--quiet",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "fired-token counts" in r.stdout
    model = AutoModelForCausalLM.from_pretrained(ckpt).eval()
    tok = AutoTokenizer.from_pretrained(ckpt)
    got, tokens = stored_counts(db, "agg")
    assert sorted(got) == sorted(set(picked["language"]))
    for (language,), part in picked.group_by("language"):
        ids = [tok(t)["input_ids"] for t in part["text"]]
        assert all(i[0] == tok.bos_token_id for i in ids)
        want, near, n = hand_counts(model, ids, start=1)  # the BOS is not counted
        assert tokens[language]["n_tokens"] == n and tokens[language]["n_sentences"] == part.height
        assert tokens[language]["n_windows"] == 0
        assert_counts_match(got[language], want, near)

    # nothing is stored per sentence, and the per-sentence commands say so in one line
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("select count(*) from sentences").fetchone()[0] == 0
    assert con.execute("select count(*) from aggregate_chunks").fetchone()[0] > 3
    con.close()
    assert_one_line_error(neurons("--db", db, "significance", "--run", "agg"), "corpus counts", "significance")
    assert_one_line_error(neurons("--db", db, "report", "--run", "agg", "--out", tmp_path / "r"), "corpus counts")


def test_window_counts_equal_hand_counts(tmp_path, neurons, llama, sample):
    """--window N as LAPE's activation.py: each language's tokens (no special tokens, an EOS after each text)
    in data order, cut into N-token windows, the remainder dropped; every position counts."""
    data = tmp_path / "d.csv"
    picked = sample.sample(80, seed=6)
    picked.write_csv(data)
    db = tmp_path / "w.duckdb"
    r = neurons(
        "--db", db, "extract", llama, data, "--run", "win", "--site", "ffn", "--aggregate", "--window", "24",
        "--layers", "all", "--batch-size", "4", "--commit-every", "5", "--quiet",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    model = AutoModelForCausalLM.from_pretrained(llama).eval()
    tok = AutoTokenizer.from_pretrained(llama)
    got, tokens = stored_counts(db, "win")
    for (language,), part in picked.group_by("language", maintain_order=True):
        text = []
        for t in part["text"]:
            text += tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        n = len(text) // 24
        windows = [text[i * 24 : (i + 1) * 24] for i in range(n)]
        want, near, n_tokens = hand_counts(model, windows, start=0)
        assert tokens[language]["n_windows"] == n and tokens[language]["n_tokens"] == n_tokens == n * 24
        assert tokens[language]["n_sentences"] == part.height
        assert_counts_match(got[language], want, near)


def test_interrupted_aggregate_resumes_to_the_same_counts(tmp_path, monkeypatch, llama, sample, neurons):
    data = tmp_path / "d.csv"
    sample.write_csv(data)
    dataset = read_dataset(data)
    opts = dict(site="ffn", aggregate=True, layers="all", batch_size=8, commit_every=16)
    whole = tmp_path / "whole.duckdb"
    extract(whole, str(llama), dataset, "agg", ExtractOptions(**opts), progress=False)

    counting = aggregate.count_chunks

    def interrupted(*args, **kwargs):  # Ctrl-C after three committed chunks
        for i, counts in enumerate(counting(*args, **kwargs)):
            if i == 3:
                raise KeyboardInterrupt
            yield counts

    db = tmp_path / "w.duckdb"
    monkeypatch.setattr(aggregate, "count_chunks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract(db, str(llama), dataset, "agg", ExtractOptions(**opts), progress=False)
    monkeypatch.setattr(aggregate, "count_chunks", counting)
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("select status from runs").fetchone()[0] == "incomplete"
    assert con.execute("select count(*) from aggregate_chunks").fetchone()[0] == 3
    con.close()
    assert "incomplete (" in neurons("--db", db, "runs").stdout
    summary = extract(db, str(llama), dataset, "agg", ExtractOptions(**opts), resume=True, progress=False)
    assert summary.n_chunks_before == 3
    (a, ta), (b, tb) = stored_counts(db, "agg"), stored_counts(whole, "agg")
    assert ta == tb and sorted(a) == sorted(b)
    for language in a:
        assert np.array_equal(a[language], b[language])  # identical, not merely close
    assert_one_line_error(
        neurons("--db", db, "extract", llama, data, "--run", "agg", "--site", "ffn", "--aggregate", "--layers", "all",
                "--batch-size", "8", "--commit-every", "16", "--resume", "--quiet"),
        "already complete",
    )  # fmt: skip


def test_lape_reads_counts_as_it_reads_token_shares(tmp_path, neurons, llama, sample):
    """activation_probability of a counts run equals the per-sentence token shares' (the same tokens), and so
    does the LAPE selection."""
    data = tmp_path / "d.csv"
    sample.write_csv(data)
    db = tmp_path / "w.duckdb"
    for run, extra in (("counts", ("--aggregate",)), ("shares", ("--pooling", "active"))):
        r = neurons(
            "--db", db, "extract", llama, data, "--run", run, "--site", "ffn", "--layers", "all", *extra, "--quiet",
        )  # fmt: skip
        assert r.exit_code == 0, r.output
    con = duckdb.connect(str(db), read_only=True)
    p = con.sql("select run, layer, language, neuron, probability from activation_probability order by all").pl()
    counts, shares = (p.filter(pl.col("run") == r).drop("run") for r in ("counts", "shares"))
    assert counts.height == shares.height == 5 * 3 * 64
    assert np.abs(counts["probability"].to_numpy() - shares["probability"].to_numpy()).max() < 2e-3
    selection = {
        run: set(
            con.execute(
                "select layer, neuron, language from language_specific_neurons(top_rate := 0.1) where run = ?", [run]
            ).fetchall()
        )
        for run in ("counts", "shares")
    }
    con.close()
    assert selection["counts"] and selection["counts"] == selection["shares"]


def test_aggregate_refusals(tmp_path, neurons, llama, checkpoint, sample):
    data = tmp_path / "d.csv"
    pl.concat([sample.head(20), sample.filter(pl.col("language") == "nl").head(1)]).write_csv(data)
    db = tmp_path / "w.duckdb"
    base = ("--db", db, "extract", llama, data, "--run", "x", "--quiet")
    assert_one_line_error(neurons(*base, "--aggregate"), "--site ffn")
    assert_one_line_error(neurons(*base, "--site", "ffn", "--aggregate", "--pooling", "mean"), "--pooling mean")
    assert_one_line_error(neurons(*base, "--site", "ffn", "--window", "8"), "only --aggregate")
    assert_one_line_error(neurons(*base, "--site", "ffn", "--aggregate", "--window", "1"), "at least 2")
    assert_one_line_error(neurons(*base, "--site", "ffn", "--aggregate", "--window", "4096"), "input limit")
    assert_one_line_error(
        neurons(*base, "--site", "ffn", "--aggregate", "--window", "60"), "'nl' has", "less than one --window"
    )
    encoder = ("--db", db, "extract", checkpoint(), data, "--run", "x", "--site", "ffn", "--aggregate", "--quiet")
    assert_one_line_error(neurons(*encoder), "encoder", "--pooling active")
    assert not db.exists()


@pytest.mark.parametrize("window", [None, 16])
def test_sharded_counts_attach_to_the_one_process_counts(tmp_path, neurons, llama, sample, window):
    """Shards of an aggregate run (rows shared out; with --window, windows cut from every text then shared out)
    summed by attach equal one process's counts; a lost fired commit and flipped bytes are refused in one line."""
    from toolkit.scale.shards import extract_shard

    data = tmp_path / "d.csv"
    sample.write_csv(data)
    dataset = read_dataset(data)
    opts = ExtractOptions(site="ffn", aggregate=True, window=window, layers="all", batch_size=8, commit_every=24)
    one = tmp_path / "one.duckdb"
    extract(one, str(llama), dataset, "agg", opts, progress=False)
    lake = tmp_path / "lake"
    for k in (2, 0, 1):
        extract_shard(lake, str(llama), dataset, "agg", (k, 3), opts, progress=False)
    rerun = extract_shard(lake, str(llama), dataset, "agg", (1, 3), opts, progress=False)
    assert rerun.n_committed_before == rerun.n_chunks  # a committed shard is a no-op
    db = tmp_path / "w.duckdb"
    r = neurons("--db", db, "lake", "attach", lake, "--run", "agg")
    assert r.exit_code == 0, r.output
    (a, ta), (b, tb) = stored_counts(db, "agg"), stored_counts(one, "agg")
    assert ta == tb
    assert sum(int(np.abs(a[x] - b[x]).sum()) for x in b) <= 2  # other batches: a value at 0 may fall either side

    lost = tmp_path / "lost"
    shutil.copytree(lake, lost)
    max(lost.glob("fired/_delta_log/*.json")).unlink()  # the newest fired commit is gone
    failed = tmp_path / "no.duckdb"
    assert_one_line_error(neurons("--db", failed, "lake", "attach", lost, "--run", "agg"), "is incomplete")
    damaged = tmp_path / "damaged"
    shutil.copytree(lake, damaged)
    part = sorted(damaged.glob("fired/*/*.parquet"))[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = bytes(64)
    part.write_bytes(bytes(data))
    assert_one_line_error(neurons("--db", failed, "lake", "attach", damaged, "--run", "agg"), "does not match")
    assert not failed.exists()
