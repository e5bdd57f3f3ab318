"""Hardening: read-only paths cannot write, other applications' files are never changed, numbers that cannot
be stored are refused, incomplete checkpoints are caught, no accidental warehouses, readers are not locked
out of long jobs, and undefined values are null in every output. Each test asserts the exit code, one line
on stderr, no traceback, and that the warehouse and every other file are unchanged (content fingerprints)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from conftest import assert_one_line_error, digest, neurons_command


def fingerprint(folder: Path) -> dict[str, str | None]:
    """sha256 of every file below FOLDER, by relative path: any new, changed or removed file shows."""
    return {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def base_db(tmp_path_factory, checkpoint, sample) -> Path:
    """A warehouse with one complete run 'base' (layers 0 and 1; layer 0's [CLS] vector is constant)."""
    from click.testing import CliRunner

    from toolkit.cli import cli

    folder = tmp_path_factory.mktemp("hardening")
    data = folder / "data.csv"
    sample.write_csv(data)
    db = folder / "w.duckdb"
    r = CliRunner().invoke(
        cli,
        ["--db", str(db), "extract", str(checkpoint()), str(data), "--run", "base", "--layers", "0,1", "--quiet"],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    return db


@pytest.fixture
def db(tmp_path, base_db) -> Path:
    """A private copy of the warehouse, in a folder of its own."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(base_db, work / "w.duckdb")
    return work / "w.duckdb"


# -- 1. read-only means read-only --------------------------------------------------------------------------

WRITES = [
    "explain analyze copy (select * from runs) to '{d}/x.csv'",
    "copy (pivot runs on name using count(*)) to '{d}/x.csv'",
    "copy (select 1) to '{d}/x.parquet' (format parquet)",
    "explain analyze copy (select * from runs) to '{d}/other.duckdb'",
    "explain analyze delete from activation_vectors where layer = 1",
    "delete from activation_vectors",
    "with x as (select 1) delete from runs",
    "create table t as select 1",
    "insert into runs select * from runs",
    "update runs set name = 'x'",
    "drop view zscores",
    "alter table runs rename to r",
    "attach '{d}/new.duckdb' as n",
    "export database '{d}/dump'",
    "set enable_external_access = true",
    "install httpfs",
    "load httpfs",
    "select * from read_csv('{d}/data.csv')",
    "pragma enable_profiling = 'json'; pragma profiling_output = '{d}/p.json'; select 1",
    "checkpoint; create schema s",
]


@pytest.mark.parametrize("sql", WRITES)
def test_query_cannot_write_anything(db, neurons, sql):
    folder = db.parent
    (folder / "data.csv").write_text("a\n1\n")
    (folder / "other.duckdb").write_bytes(b"someone else's bytes")
    before = fingerprint(folder)
    r = neurons("--db", db, "query", sql.format(d=folder))
    assert_one_line_error(r, "refused")
    assert fingerprint(folder) == before


@pytest.mark.parametrize("sql", WRITES[:6])
def test_export_cannot_write_through_sql(db, neurons, sql):
    folder = db.parent
    before = fingerprint(folder)
    r = neurons("--db", db, "export", sql.format(d=folder), "--out", folder / "out.csv")
    assert_one_line_error(r, "refused")
    assert fingerprint(folder) == before


def test_ablate_query_runs_read_only(db, neurons, checkpoint, tmp_path, sample):
    data = tmp_path / "d.csv"
    sample.write_csv(data)
    before = fingerprint(db.parent)
    r = neurons(
        "--db",
        db,
        "ablate",
        checkpoint(),
        data,
        "--run",
        "base",
        "--layer",
        "1",
        "--quiet",
        "--query",
        "explain analyze delete from activation_vectors where layer = 1",
    )
    assert_one_line_error(r, "refused")
    assert fingerprint(db.parent) == before


def test_reading_queries_still_work(db, neurons):
    r = neurons(
        "--db",
        db,
        "query",
        "select count(*) as n from activations_long where run = 'base'; "
        "select n_neurons from crosslingual_correlation limit 1",
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == [{"n_neurons": 32}]
    r = neurons("--db", db, "query", "create temp table t as select 41 as x; select x + 1 as y from t", "--csv")
    assert r.exit_code == 0 and r.stdout.split() == ["y", "42"]


# -- 2. other applications' files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("runs",),
        ("query", "select * from customers"),
        ("analyze", "--run", "x"),
        ("delete", "--run", "x", "--yes"),
        ("significance", "--run", "x"),
        ("export", "customers", "--out", "c.csv"),
        ("upgrade",),
    ],
)
def test_foreign_duckdb_file_is_never_changed(tmp_path, neurons, command):
    foreign = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("create table customers as select 1 as id, 'Ada' as name")
    con.close()
    before = fingerprint(tmp_path)
    r = neurons("--db", foreign, *command)
    assert_one_line_error(r, "not a neurons warehouse")
    assert fingerprint(tmp_path) == before


def test_older_warehouse_is_refused_by_readers_and_upgraded_on_request(db, neurons):
    con = duckdb.connect(str(db))
    con.execute("update warehouse_meta set value = 'older' where key = 'views_sha256'")
    con.close()
    before = digest(db)
    for command in (("runs",), ("query", "select 1"), ("analyze", "--run", "base")):
        assert_one_line_error(neurons("--db", db, *command), "older version", "neurons --db")
        assert digest(db) == before
    r = neurons("--db", db, "upgrade")
    assert r.exit_code == 0 and "upgraded" in r.stdout, r.output
    assert neurons("--db", db, "runs").exit_code == 0
    assert "already up to date" in neurons("--db", db, "upgrade").stdout


# -- 3. numbers that cannot be stored faithfully -------------------------------------------------------------


@pytest.mark.parametrize("bad", [1e39, -3.5e38, float("inf"), float("nan")])
def test_values_outside_float32_are_refused(db, neurons, tmp_path, bad):
    rows = [
        (s, "en" if s % 2 else "nl", "joy" if s % 3 else "fear", 6, n, float(s + n)) for s in range(6) for n in range(3)
    ]
    rows[7] = (*rows[7][:5], bad)
    table = pl.DataFrame(rows, schema=["sentence_id", "language", "label", "layer", "neuron", "value"], orient="row")
    path = tmp_path / "long.parquet"
    table.write_parquet(path)
    before = digest(db)
    r = neurons("--db", db, "load", path, "--run", "big")
    assert_one_line_error(r, "row 8")
    assert digest(db) == before


def test_largest_float32_is_kept_exactly(db, neurons, tmp_path):
    top = float(np.finfo(np.float32).max)
    rows = [(s, "en", "joy" if s % 2 else "fear", 6, 0, top if s == 0 else float(s)) for s in range(4)]
    path = tmp_path / "long.csv"
    pl.DataFrame(rows, schema=["sentence_id", "language", "label", "layer", "neuron", "value"], orient="row").write_csv(
        path
    )
    assert neurons("--db", db, "load", path, "--run", "edge").exit_code == 0
    got = json.loads(
        neurons("--db", db, "query", "select max(value) as m from activations_long where run = 'edge'", "--json").stdout
    )
    assert got[0]["m"] == top


# -- 4. incomplete checkpoints ---------------------------------------------------------------------------------


def test_checkpoint_without_tokenizer_is_refused(db, neurons, checkpoint, tmp_path, sample):
    broken = tmp_path / "model"
    shutil.copytree(checkpoint(), broken)
    for f in broken.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            f.unlink()
    data = tmp_path / "d.csv"
    sample.write_csv(data)
    before = digest(db)
    r = neurons("--db", db, "extract", broken, data, "--run", "x", "--quiet")
    assert_one_line_error(r, "has no tokenizer")
    assert digest(db) == before


def test_truncated_weights_are_refused(db, neurons, checkpoint, tmp_path, sample):
    broken = tmp_path / "model"
    shutil.copytree(checkpoint(), broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    data = tmp_path / "d.csv"
    sample.write_csv(data)
    before = digest(db)
    assert_one_line_error(neurons("--db", db, "extract", broken, data, "--run", "x", "--quiet"), "cannot load model")
    assert digest(db) == before


def test_unknown_tokens_are_reported_and_refused(db, neurons, checkpoint, tmp_path):
    # Hangul and Devanagari never occur in the tiny tokenizer's training text: every word is unknown
    rows = [
        {"text": "한국어 문장 입니다", "language": "ko", "label": "joy"},
        {"text": "यह एक वाक्य है", "language": "hi", "label": "fear"},
        {"text": "Dit is een zin.", "language": "nl", "label": "joy"},
    ]
    data = tmp_path / "odd.csv"
    pl.DataFrame(rows).write_csv(data)
    before = digest(db)
    r = neurons("--db", db, "extract", checkpoint(), data, "--run", "x", "--quiet")
    assert_one_line_error(r, "unknown token", "--allow-unk", "ko")
    assert digest(db) == before
    r = neurons("--db", db, "extract", checkpoint(), data, "--run", "x", "--quiet", "--allow-unk")
    assert r.exit_code == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if "unknown tok" in ln)
    assert "nl 0.0%" in line and "ko " in line and "ko 0.0%" not in line
    r = neurons("--db", db, "analyze", "--run", "x")  # what the run cannot claim says so after --allow-unk too
    assert r.exit_code == 0, r.stderr
    note = next(ln for ln in r.stdout.splitlines() if "cannot spell" in ln)
    assert note.startswith("note: The tokenizer cannot spell ") and "ko" in note and "hi" in note
    assert "nl" not in note.split(":")[1]


def test_unknown_share_matches_a_direct_count(checkpoint, sample):
    from transformers import AutoTokenizer

    from toolkit.capture.tokens import tokenization, unknown_shares

    tok = AutoTokenizer.from_pretrained(checkpoint())
    texts = sample["text"].to_list()[:20] + ["ΩΩΩ ЖЖЖ"] * 3
    langs = sample["language"].to_list()[:20] + ["xx"] * 3
    ids = tok(texts)["input_ids"]
    got = unknown_shares(tokenization(tok, texts, ids, np.zeros(len(ids), bool), langs))
    special = set(tok.all_special_ids) - {tok.unk_token_id}
    for lang in set(langs):
        seqs = [s for s, l in zip(ids, langs) if l == lang]
        tokens = [t for s in seqs for t in s if t not in special]
        assert got[lang] == pytest.approx(sum(t == tok.unk_token_id for t in tokens) / len(tokens))
    assert got["xx"] > 0.5


# -- 5. no accidental warehouses, no wasted hours, no internal errors -------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("delete", "--run", "x", "--yes"),
        ("significance", "--run", "x"),
        ("analyze", "--run", "x"),
        ("query", "select 1"),
        ("runs",),
        ("report", "--run", "x", "--out", "rep"),
        ("upgrade",),
        ("export", "runs", "--out", "r.csv"),
        ("chart", "classes", "--run", "x", "--out", "c.png"),
    ],
)
def test_missing_warehouse_is_never_created(tmp_path, neurons, command):
    os.chdir(tmp_path)
    r = neurons("--db", tmp_path / "nope" / "x.duckdb", *command)
    assert_one_line_error(r, "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_db_folder_is_one_line(tmp_path, neurons):
    assert_one_line_error(neurons("--db", tmp_path, "runs"), "is a folder")


def test_usage_errors_are_one_line(neurons, db):
    assert_one_line_error(neurons("--db", db, "analyze"), "--run")
    assert_one_line_error(neurons("--db", db, "nosuchcommand"), "nosuchcommand")
    assert_one_line_error(neurons("--db", db, "analyze", "--run", "base", "--top", "abc"), "--top")
    # values a user can mistype are refused as they are read, not deep inside as an internal error
    assert_one_line_error(neurons("--db", db, "significance", "--run", "base", "--seed", "-1"), "--seed")
    assert_one_line_error(neurons("--db", db, "export", "runs", "--out", "x.csv", "--precision", "-3"), "--precision")
    for wait in ("abc", "nan", "-5"):
        r = neurons("--db", db, "runs", env={"NEURONS_LOCK_WAIT": wait})
        assert_one_line_error(r, "NEURONS_LOCK_WAIT")


def test_finetune_checks_its_output_before_training(tmp_path, neurons, checkpoint, sample):
    data = tmp_path / "d.csv"
    sample.write_csv(data)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    start = time.perf_counter()
    r = neurons("finetune", checkpoint(), data, "--out", blocker / "ckpt", "--epochs", "50", "--quiet")
    assert_one_line_error(r, "is a file")
    r = neurons("finetune", checkpoint(), data, "--out", blocker, "--epochs", "50", "--quiet")
    assert_one_line_error(r, "is a file")
    assert time.perf_counter() - start < 10  # refused before 50 epochs of training
    assert blocker.read_text() == "x"


DENIED = """
import errno, sys, tempfile
from toolkit.cli import main
def denied(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied", kwargs.get("dir"))
tempfile.mkstemp = tempfile.mkdtemp = denied
sys.argv = ["neurons", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(
    "command",
    [
        ("export", "runs", "--out", "{d}/r.csv"),
        ("chart", "classes", "--run", "base", "--out", "{d}/c.svg"),
        ("report", "--run", "base", "--out", "{d}/rep"),
    ],
)
def test_unwritable_outputs_are_one_line(db, tmp_path, command):
    """A folder the user may not write (simulated: the tests run as root, who may write anywhere)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    before = fingerprint(tmp_path)
    args = [a.format(d=tmp_path) for a in command]
    r = subprocess.run([sys.executable, "-c", DENIED, "--db", str(db), *args], capture_output=True, text=True, env=env)
    assert r.returncode == 1, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "permission denied" in r.stderr, r.stderr
    assert fingerprint(tmp_path) == before


FULL_DISK = """
import errno, pathlib, sys
from toolkit.cli import main
real = pathlib.Path.write_text
def full(self, data, *args, **kwargs):
    real(self, data[: len(data) // 2], *args, **kwargs)
    raise OSError(errno.ENOSPC, "No space left on device", str(self))
pathlib.Path.write_text = full
sys.argv = ["neurons", *sys.argv[1:]]
main()
"""


def test_full_disk_leaves_no_truncated_file(db, tmp_path):
    """Disk full while writing: one line naming the cause, and the old file intact (written aside, renamed)."""
    out = tmp_path / "r.tex"
    out.write_text("old table")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    r = subprocess.run(
        [sys.executable, "-c", FULL_DISK, "--db", str(db), "export", "runs", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 1, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "no space left" in r.stderr, r.stderr
    assert out.read_text() == "old table"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.tex", "work"]


def test_unknown_run_is_refused_everywhere(db, neurons, tmp_path):
    before = digest(db)
    for command in (
        ("export", "label_profiles", "--run", "nope", "--out", tmp_path / "x.csv"),
        ("analyze", "--run", "nope"),
        ("significance", "--run", "nope"),
        ("delete", "--run", "nope", "--yes"),
        ("report", "--run", "nope", "--out", tmp_path / "rep"),
    ):
        assert_one_line_error(neurons("--db", db, *command), "no run named 'nope'")
    assert digest(db) == before
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "rep").exists()


def test_delete_without_terminal_needs_yes(db, neurons):
    before = digest(db)
    assert_one_line_error(neurons("--db", db, "delete", "--run", "base"), "--yes")
    assert digest(db) == before


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("analyze", "--run", "base", "--threshold", "nan"), "finite"),
        (("analyze", "--run", "base", "--top", "0"), "at least 1"),
        (("chart", "classes", "--run", "base", "--top", "-1", "--out", "x.png"), "at least 1"),
        (("significance", "--run", "base", "--alpha", "1.5"), "between 0 and 1"),
        (("significance", "--run", "base", "--alpha", "0"), "between 0 and 1"),
        (("significance", "--run", "base", "--threshold", "inf"), "finite"),
    ],
)
def test_bad_option_values(db, neurons, args, fragment):
    before = digest(db)
    assert_one_line_error(neurons("--db", db, *args), fragment)
    assert digest(db) == before


@pytest.mark.parametrize("run", ["", "   ", "a\u200bb", " lead"])
def test_bad_run_names(db, neurons, checkpoint, tmp_path, sample, run):
    data = tmp_path / "d.csv"
    sample.write_csv(data)
    before = digest(db)
    assert_one_line_error(neurons("--db", db, "extract", checkpoint(), data, "--run", run, "--quiet"), "--run")
    assert digest(db) == before


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("zw.csv", "text,language,label\nhello,en,joy\nhi,en,joy\u200b\n", "U+200B"),
        ("bom.csv", "text,language,label\nhello,\ufeffen,joy\n", "U+FEFF"),
        ("dup.csv", "text,language,label,label\nhello,en,joy,fear\n", "duplicate column"),
        ("nested.jsonl", '{"text": "a", "language": "en", "label": ["joy", "fear"]}\n', "one plain label"),
        ("struct.jsonl", '{"text": "a", "language": {"code": "en"}, "label": "joy"}\n', "one plain language"),
    ],
)
def test_odd_values_are_refused(db, neurons, checkpoint, tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    before = digest(db)
    assert_one_line_error(neurons("--db", db, "extract", checkpoint(), path, "--run", "x", "--quiet"), fragment)
    assert digest(db) == before


# -- 6. readers are not locked out of a long job ----------------------------------------------------------------


def test_readers_succeed_while_an_extraction_runs(tmp_path, checkpoint, sample, neurons):
    """`runs` and `query` (here in this process, as another user's shell would) succeed while an extraction of a
    few thousand sentences runs in another process, and `runs` shows its committed sentences growing."""
    big = pl.concat([sample] * 20)  # 4,200 sentences: the job must outlast the readers' first checks
    data = tmp_path / "big.csv"
    big.write_csv(data)
    db = tmp_path / "w.duckdb"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), "NEURONS_LOCK_WAIT": "20"}
    extract = neurons_command(
        db,
        "extract",
        checkpoint(),
        data,
        "--run",
        "long",
        "--layers",
        "all",
        "--batch-size",
        "16",
        "--commit-every",
        "64",
        "--quiet",
    )
    job = subprocess.Popen(extract, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    reader_env = {"NEURONS_LOCK_WAIT": "20"}
    try:
        progress = []
        deadline = time.monotonic() + 240
        # read until the committed count has been seen to grow twice (then let the job finish uncontended)
        while job.poll() is None and time.monotonic() < deadline and len(set(progress)) < 3:
            runs = neurons("--db", db, "runs", "--json", env=reader_env)
            if runs.exit_code and "does not exist" in runs.stderr:  # the job has not created the warehouse yet
                time.sleep(0.05)
                continue
            assert runs.exit_code == 0, runs.stderr
            rows = json.loads(runs.stdout)
            q = neurons("--db", db, "query", "select count(*) as n from sentences", "--csv", env=reader_env)
            assert q.exit_code == 0, q.stderr
            if rows and rows[0]["status"].startswith("incomplete"):
                progress.append(int(rows[0]["status"].split("(")[1].split("/")[0]))
                if len(progress) == 1:  # one writer per run: a second writer is refused while the job runs
                    again = ["--db", db, "extract", checkpoint(), data, "--run", "long", "--layers", "all", "--quiet"]
                    for attempt in (
                        [*again, "--resume"],
                        [*again, "--replace"],
                        ["--db", db, "delete", "--run", "long", "--yes"],
                    ):
                        refused = neurons(*attempt, env=reader_env)
                        assert_one_line_error(refused, "run 'long' is being written by process")
            time.sleep(0.05)
        out, err = job.communicate(timeout=240)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, err
    assert len(progress) >= 2, "no reader got in while the extraction ran"
    assert progress == sorted(progress) and progress[-1] > progress[0] and progress[-1] <= 4200
    counts = neurons(
        "--db", db, "query", "select count(*) as n, count(distinct sentence_id) as d from sentences", "--csv"
    )
    assert counts.stdout.splitlines()[1] == "4200,4200"  # every sentence once: no second writer got in
    # the claim ends with the job (kill -9 included: the kernel releases it): the run can be deleted now
    assert neurons("--db", db, "delete", "--run", "long", "--yes").exit_code == 0


# -- 7. NaN is null in every output ---------------------------------------------------------------------------


def test_undefined_values_are_null_everywhere(db, neurons, tmp_path):
    sql = (
        "select label, language_a, language_b, spearman from crosslingual_correlation "
        "where run = 'base' and layer = 0 order by all limit 3"
    )  # layer 0's [CLS] vector is constant
    js = neurons("--db", db, "query", sql, "--json")
    assert js.exit_code == 0 and "NaN" not in js.stdout
    rows = json.loads(js.stdout)
    assert rows and all(r["spearman"] is None for r in rows)
    table = neurons("--db", db, "query", sql).stdout
    assert "NaN" not in table and "nan" not in table and table.splitlines()[2].rstrip().endswith("--")
    csv = neurons("--db", db, "query", sql, "--csv").stdout
    assert csv.splitlines()[1].endswith(",")
    md = neurons("--db", db, "query", sql, "--markdown").stdout
    assert "NaN" not in md and all(ln.endswith("-- |") for ln in md.splitlines()[2:])
    for ext in ("json", "csv", "md", "tex", "parquet"):
        out = tmp_path / f"x.{ext}"
        assert neurons("--db", db, "export", sql, "--out", out).exit_code == 0
        if ext == "parquet":
            assert pl.read_parquet(out)["spearman"].null_count() == len(rows)
        else:
            text = out.read_text()
            assert "NaN" not in text and "nan" not in text.lower().replace("language", "")
    analysis = neurons("--db", db, "analyze", "--run", "base", "--layer", "0", "--json")
    assert analysis.exit_code == 0 and "NaN" not in analysis.stdout
    json.loads(analysis.stdout)


# -- outputs never replace what they did not make ----------------------------------------------------------


def test_outputs_never_replace_what_they_did_not_make(db, neurons, checkpoint, sample, tmp_path):
    """An output folder is written only where it is new, empty or an earlier output of its kind holding nothing
    else; an output file never replaces a database. Every refusal is one line, with every file unchanged."""
    work = db.parent
    before = fingerprint(work)
    # the warehouse's own folder, a folder of the user's files, and the warehouse file under another name
    r = neurons("--db", db, "report", "--run", "base", "--out", work)
    assert_one_line_error(r, "other files in it")
    mine = work / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    before = fingerprint(work)
    assert_one_line_error(neurons("--db", db, "report", "--run", "base", "--out", mine), "other files in it")
    shutil.copy(db, work / "looks-like.json")
    shutil.copy(db, work / "looks-like.png")
    before = fingerprint(work)
    r = neurons("--db", db, "export", "runs", "--out", work / "looks-like.json")
    assert_one_line_error(r, "is a DuckDB database")
    r = neurons("--db", db, "chart", "correlation", "--run", "base", "--out", work / "looks-like.png")
    assert_one_line_error(r, "is a DuckDB database")
    data = tmp_path / "d.csv"
    sample.write_csv(data)
    r = neurons("finetune", checkpoint(), data, "--out", mine, "--epochs", "50", "--quiet")
    assert_one_line_error(r, "other files in it")
    assert fingerprint(work) == before

    # an empty folder is fine; an earlier report is replaced; once the user puts a file (or a warehouse) into it,
    # it is not
    report = tmp_path / "report"
    report.mkdir()
    assert neurons("--db", db, "report", "--run", "base", "--out", report).exit_code == 0
    assert (report / ".neurons-output").read_text().strip() == "report"
    assert neurons("--db", db, "report", "--run", "base", "--out", report).exit_code == 0
    shutil.copy(db, report / "w.duckdb")
    kept = fingerprint(report)
    assert_one_line_error(neurons("--db", db, "report", "--run", "base", "--out", report), "other files in it")
    assert fingerprint(report) == kept


def test_finetune_that_diverges_saves_nothing(tmp_path, neurons, checkpoint, sample):
    data = tmp_path / "d.csv"
    sample.head(60).write_csv(data)
    r = neurons("finetune", checkpoint(), data, "--out", tmp_path / "ckpt", "--lr", "1e10", "--epochs", "2", "--quiet")
    assert_one_line_error(r, "diverged", "--lr")
    assert not (tmp_path / "ckpt").exists()


def test_export_of_a_layer_the_run_lacks_is_refused(db, neurons, tmp_path):
    out = tmp_path / "e.csv"
    r = neurons("--db", db, "export", "label_profiles", "--run", "base", "--layer", "99", "--out", out)
    assert_one_line_error(r, "has no layer 99", "stored: 0, 1")
    assert not out.exists()


# -- 8. what a user can fix is never an internal error ------------------------------------------------------


def test_ctrl_c_during_a_query_stops_it_in_one_line(db):
    """DuckDB runs a query inside C++, where Python's Ctrl-C handler cannot run: the query is interrupted
    within moments, the exit is 130 with one line, and the warehouse is as it was."""
    import signal

    before = digest(db)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    job = subprocess.Popen(
        neurons_command(db, "query", "select sum(hash(range)) from range(100000000000)"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's foreground job
    )
    time.sleep(3)  # started and inside the query
    job.send_signal(signal.SIGINT)
    out, err = job.communicate(timeout=60)  # uninterrupted, the query would run for hours
    assert job.returncode == 130, err
    assert err.strip().startswith("neurons: interrupted") and len(err.strip().splitlines()) == 1, err
    assert not out  # no partial result, no progress bar
    assert digest(db) == before


@pytest.mark.parametrize(
    "failure",
    [
        duckdb.TransactionException(
            'TransactionContext Error: Failed to commit: Could not write file "w.duckdb.wal": No space left on device'
        ),
        duckdb.IOException("IO Error: Detached database 'warehouse', but CHECKPOINT during DETACH failed."),
        OSError(28, "No space left on device"),
    ],
    ids=["duckdb-commit", "duckdb-checkpoint", "os"],
)
def test_a_storage_failure_is_one_line_not_an_internal_error(db, neurons, tmp_path, monkeypatch, failure):
    """What DuckDB (or the OS) raises when the disk is full at a commit: one line that names the cause."""
    from toolkit.store.warehouse import Warehouse

    def full(self, *args, **kwargs):
        raise failure

    monkeypatch.setattr(Warehouse, "materialize", full)
    long = tmp_path / "long.csv"
    pl.DataFrame(
        {"sentence_id": [0, 0, 1, 1], "language": ["en"] * 4, "label": ["a", "a", "b", "b"], "layer": [1] * 4}
    ).with_columns(neuron=pl.Series([0, 1, 0, 1]), value=pl.Series([0.1, 0.2, 0.3, 0.4])).write_csv(long)
    result = neurons("--db", db, "load", long, "--run", "x")
    assert result.exit_code == 1, result.output
    assert_one_line_error(result, "cannot write")
    assert "internal error" not in result.stderr


def test_a_real_full_disk_is_one_line_and_keeps_the_warehouse(tmp_path, checkpoint, sample, neurons):
    """On a 4 MB file system (tmpfs; skipped where this process may not mount one): an extraction, a load and a
    delete that run out of space end in one line each, and the warehouse still opens with what it had."""
    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)]).returncode:
        pytest.skip("cannot mount a small file system here")
    try:
        db = small / "w.duckdb"
        data = tmp_path / "data.csv"
        sample.write_csv(data)
        ok = neurons("--db", db, "extract", checkpoint(), data, "--run", "a", "--layers", "1", "--quiet")
        assert ok.exit_code == 0, ok.output
        big = neurons("--db", db, "extract", checkpoint(), data, "--run", "b", "--layers", "all", "--quiet")
        with contextlib.suppress(OSError), open(small / "fill", "wb") as f:  # take whatever space is left
            f.write(b"\0" * (8 << 20))
        delete = neurons("--db", db, "delete", "--run", "a", "--yes")
        for result in (big, delete):
            if result.exit_code:
                assert_one_line_error(result, "")
                assert "internal error" not in result.stderr and ("space" in result.stderr), result.stderr
        assert big.exit_code or delete.exit_code  # at least one ran out of space
        (small / "fill").unlink()
        runs = neurons("--db", db, "runs", "--json")
        assert runs.exit_code == 0 and '"run": "a"' in runs.stdout
    finally:
        subprocess.run(["umount", "-l", str(small)])


def test_the_engine_refuses_a_sentence_or_run_written_twice(db):
    """Beyond the claims: keys DuckDB itself enforces. A second copy of a sentence of a run (what a second writer
    of a chunk would insert) and a second run of the same name fail inside the engine."""
    con = duckdb.connect(str(db))
    try:
        for sql in (
            "insert into sentences select * from sentences limit 1",
            "insert into runs select * replace (run_id + 100 as run_id) from runs limit 1",
        ):
            with pytest.raises(duckdb.ConstraintException):
                con.execute(sql)
    finally:
        con.close()
