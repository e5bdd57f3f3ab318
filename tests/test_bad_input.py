"""Every bad input: one line on stderr, a non-zero exit, no traceback, and the warehouse as it was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from conftest import assert_one_line_error, digest


@pytest.fixture
def db_with_run(tmp_path, neurons, checkpoint, data_csv) -> Path:
    db = tmp_path / "w.duckdb"
    r = neurons(
        "--db", db, "extract", checkpoint(), data_csv, "--run", "base", "--layers", "1", "--limit", "20", "--quiet"
    )
    assert r.exit_code == 0, r.output
    return db


def extract_args(db, ckpt, data, *extra):
    return ("--db", db, "extract", ckpt, data, "--run", "new", "--quiet", *extra)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return p


@pytest.mark.parametrize(
    "name, content, fragments",
    [
        (
            "cols.csv",
            "sentence,lang,label\nhello,en,joy\n",
            ["missing column(s) 'text', 'language'", "found: 'sentence', 'lang', 'label'", "--text-column"],
        ),
        ("empty.csv", "", ["empty"]),
        ("header.csv", "text,language,label\n", ["no rows"]),
        ("blank.csv", "text,language,label\nhello,en,joy\n   ,en,joy\n", ["text", "row 2"]),
        ("nolang.csv", "text,language,label\nhello,en,joy\nhi,,joy\n", ["language", "row 2"]),
        (
            "nolabel.jsonl",
            '{"text": "a", "language": "en", "label": "joy"}\n{"text": "b", "language": "en", "label": null}\n',
            ["label", "row 2"],
        ),
        (
            "latin1.csv",
            "text,language,label\ncaf\xe9,fr,joy\n".encode("latin-1"),
            ["not valid UTF-8", "re-save it as UTF-8"],
        ),
        ("bad.parquet", b"PAR1 this is not parquet", ["cannot read it as PARQUET"]),
        ("data.xlsx", b"x", ["unsupported format '.xlsx'"]),
    ],
)
def test_bad_data_files(tmp_path, neurons, checkpoint, db_with_run, name, content, fragments):
    before = digest(db_with_run)
    path = write(tmp_path, name, content)
    assert_one_line_error(neurons(*extract_args(db_with_run, checkpoint(), path)), *fragments)
    assert digest(db_with_run) == before


def test_bad_input_does_not_create_a_warehouse(tmp_path, neurons, checkpoint):
    db = tmp_path / "fresh.duckdb"
    path = write(tmp_path, "cols.csv", "sentence,language,label\nhi,en,joy\n")
    assert_one_line_error(neurons(*extract_args(db, checkpoint(), path)), "missing column")
    good = write(tmp_path, "good.csv", "text,language,label\nhi,en,joy\n")
    assert_one_line_error(neurons(*extract_args(db, tmp_path / "nomodel", good)), "does not exist")
    assert not db.exists()


def test_duplicate_ids(tmp_path, neurons, checkpoint, db_with_run):
    before = digest(db_with_run)
    path = write(tmp_path, "dup.csv", "id,text,language,label\n1,a,en,joy\n2,b,en,joy\n1,c,en,joy\n")
    r = neurons(*extract_args(db_with_run, checkpoint(), path, "--id-column", "id"))
    assert_one_line_error(r, "duplicate sentence id", "rows 1 and 3")
    assert digest(db_with_run) == before


def test_missing_split_values(tmp_path, neurons, checkpoint, data_csv, db_with_run):
    r = neurons(*extract_args(db_with_run, checkpoint(), data_csv, "--split", "dev"))
    assert_one_line_error(r, "no rows with split in dev", "found: test, train")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("--run", "base"), ["run 'base' exists already", "--replace"]),
        (("--run", "base", "--resume"), ["already complete"]),
        (("--run", "x", "--layers", "4"), ["layer 4 is out of range", "0..3"]),
        (("--run", "x", "--layers", "-5"), ["out of range"]),
        (("--run", "x", "--layers", "top"), ["not a layer number"]),
        (("--run", "x", "--batch-size", "0"), ["--batch-size must be at least 1"]),
        (("--run", "x", "--resume", "--replace"), ["exclude each other"]),
    ],
)
def test_bad_options(neurons, checkpoint, data_csv, db_with_run, args, fragments):
    before = digest(db_with_run)
    r = neurons("--db", db_with_run, "extract", checkpoint(), data_csv, "--quiet", "--limit", "20", *args)
    assert_one_line_error(r, *fragments)
    assert digest(db_with_run) == before


def test_bad_models(tmp_path, neurons, data_csv, db_with_run, checkpoint):
    before = digest(db_with_run)
    nothing = tmp_path / "no-such-model"
    assert_one_line_error(neurons(*extract_args(db_with_run, nothing, data_csv)), "does not exist")
    empty = tmp_path / "empty-model"
    empty.mkdir()
    (empty / "config.json").write_text((checkpoint() / "config.json").read_text())
    assert_one_line_error(neurons(*extract_args(db_with_run, empty, data_csv)), "has no weights")
    env = {"HF_HUB_OFFLINE": "1"}
    r = neurons(*extract_args(db_with_run, "someorg/some-model-that-is-not-cached", data_csv), env=env)
    assert_one_line_error(r, "could not be fetched from the Hugging Face hub", "pass its directory")
    assert digest(db_with_run) == before


def test_resume_with_other_settings(tmp_path, neurons, checkpoint, data_csv):
    import duckdb

    db = tmp_path / "w.duckdb"
    r = neurons("--db", db, "extract", checkpoint(), data_csv, "--run", "r", "--layers", "1", "--quiet")
    assert r.exit_code == 0
    con = duckdb.connect(str(db))  # make it look interrupted: status back to incomplete, half the sentences gone
    con.execute("update runs set status = 'incomplete'")
    con.execute("delete from sentences where sentence_id >= 100")
    con.close()
    before = digest(db)
    r = neurons("--db", db, "extract", checkpoint(), data_csv, "--run", "r", "--layers", "2", "--quiet", "--resume")
    assert_one_line_error(r, "--resume needs the settings", "layers")
    assert digest(db) == before
    r = neurons("--db", db, "extract", checkpoint(), data_csv, "--run", "r", "--layers", "1", "--quiet")
    assert_one_line_error(r, "incomplete", "--resume")


def test_locked_database(tmp_path, neurons, checkpoint, data_csv, db_with_run):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,time; c=duckdb.connect({str(db_with_run)!r}); print('ok', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        quick = {"NEURONS_LOCK_WAIT": "1"}
        assert_one_line_error(
            neurons(*extract_args(db_with_run, checkpoint(), data_csv), env=quick), "is locked by another process"
        )
        assert_one_line_error(neurons("--db", db_with_run, "query", "select 1", env=quick), "is locked")
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(
    "name, frame, fragments",
    [
        ("dup.csv", "dup", ["duplicate (sentence_id, layer, neuron) row", "rows 1 and 9"]),
        ("text.csv", "text", ["value (column 'value') is missing or not a number", "'abc'"]),
        ("inf.csv", "inf", ["not finite"]),
        ("nan.parquet", "nan", ["not finite"]),
        ("cols.csv", "cols", ["missing column(s) 'neuron'"]),
    ],
)
def test_bad_long_tables(tmp_path, neurons, db_with_run, name, frame, fragments):
    good = pl.DataFrame(
        {
            "sentence_id": [0, 0, 0, 0, 1, 1, 1, 1],
            "language": ["en"] * 4 + ["nl"] * 4,
            "label": ["joy"] * 8,
            "layer": [1, 1, 2, 2] * 2,
            "neuron": [0, 1] * 4,
            "value": [0.5, 1.5, -1.0, 2.0, 0.1, 0.2, 0.3, 0.4],
        }
    )
    if frame == "dup":
        df = pl.concat([good, good.head(1)])
    elif frame == "text":
        df = good.with_columns(pl.col("value").cast(pl.String)).with_columns(
            pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("abc")).otherwise(pl.col("value")).alias("value")
        )
    elif frame in ("inf", "nan"):
        df = good.with_columns(
            pl.when(pl.int_range(pl.len()) == 2).then(float(frame)).otherwise(pl.col("value")).alias("value")
        )
    else:
        df = good.drop("neuron")
    path = tmp_path / name
    df.write_parquet(path) if name.endswith(".parquet") else df.write_csv(path)
    before = digest(db_with_run)
    assert_one_line_error(neurons("--db", db_with_run, "load", path, "--run", "imported"), *fragments)
    assert digest(db_with_run) == before


def test_load_run_that_exists(tmp_path, neurons, db_with_run):
    path = tmp_path / "long.csv"
    pl.DataFrame(
        {"sentence_id": [0], "language": ["en"], "label": ["joy"], "layer": [0], "neuron": [0], "value": [1.0]}
    ).write_csv(path)
    before = digest(db_with_run)
    assert_one_line_error(neurons("--db", db_with_run, "load", path, "--run", "base"), "exists already")
    assert digest(db_with_run) == before
