"""A real extraction process killed part-way resumes to a run identical to an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import neurons_command

from toolkit.capture.datasets import read_dataset
from toolkit.capture.extract import ExtractOptions, extract

SETTINGS = ("--layers", "1,3", "--batch-size", "8", "--commit-every", "16")


def start(db: Path, ckpt: Path, data: Path, *extra: str) -> subprocess.Popen:
    cmd = neurons_command(
        db,
        "extract",
        ckpt,
        data,
        "--run",
        "big",
        *SETTINGS,
        *extra,
    )
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"}
    )


def wait_for_saved(proc: subprocess.Popen, at_least: int = 1, timeout: float = 120) -> None:
    """Read the progress bar until it reports committed sentences."""
    deadline = time.monotonic() + timeout
    buf = ""
    while time.monotonic() < deadline:
        ch = proc.stderr.read(1)
        if not ch:
            raise AssertionError(f"extraction ended before saving anything: {buf[-500:]}")
        buf += ch
        if ch in "\r\n" and "saved " in buf:
            done = int(buf.rsplit("saved ", 1)[1].split("/")[0])
            if done >= at_least:
                return
    raise AssertionError("no progress seen")


def rows(db: Path, run: str) -> pl.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    df = con.sql(
        "select a.sentence_id, a.layer, a.neuron, a.value, s.predicted_label, s.probabilities from activations a "
        "join sentences s using (run_id, sentence_id) join runs r using (run_id) where r.name = ? order by all",
        params=[run],
    ).pl()
    con.close()
    return df


@pytest.fixture
def big_csv(tmp_path, sample) -> Path:
    path = tmp_path / "big.csv"
    pl.concat([sample] * 5).write_csv(path)  # 1,050 sentences
    return path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, checkpoint, sample) -> pl.DataFrame:
    """The big run extracted in one go, in one commit: what every resumed run must equal."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    data, reference = folder / "big.csv", folder / "ref.duckdb"
    pl.concat([sample] * 5).write_csv(data)
    opts = ExtractOptions(layers="1,3", batch_size=8, commit_every=1050)
    extract(reference, str(checkpoint("xlm-roberta", True)), read_dataset(data), "big", opts, progress=False)
    return rows(reference, "big")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_resume_after_interruption_equals_uninterrupted(tmp_path, checkpoint, big_csv, neurons, sig, uninterrupted):
    ckpt = checkpoint("xlm-roberta", True)
    db = tmp_path / "w.duckdb"
    proc = start(db, ckpt, big_csv)
    wait_for_saved(proc, at_least=64)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    if sig == signal.SIGINT:
        assert "rerun with --resume" in err and "Traceback" not in err

    con = duckdb.connect(str(db), read_only=True)
    status, n_sent = con.execute("select status, n_sentences from runs where name = 'big'").fetchall()[0]
    saved = con.execute("select count(*) from sentences").fetchall()[0][0]
    per_sentence = con.execute(
        "select count(*) from (select sentence_id, count(*) n from activations group by 1 having n <> 2 * 32)"
    ).fetchall()[0][0]
    con.close()
    assert status == "incomplete" and 0 < saved < n_sent == 1050
    assert saved % 8 == 0  # whole batches of 8 only
    assert per_sentence == 0  # no sentence half-written

    assert f"incomplete ({saved}/1050 sentences)" in neurons("--db", db, "runs").stdout

    again = neurons("--db", db, "extract", ckpt, big_csv, "--run", "big", *SETTINGS, "--resume", "--quiet")
    assert again.exit_code == 0, again.stderr
    assert f"{saved} were already saved" in again.stdout

    resumed, whole = rows(db, "big"), uninterrupted
    assert resumed.height == whole.height == 1050 * 2 * 32
    assert resumed.equals(whole)  # identical, not merely close
