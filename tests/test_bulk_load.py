"""`neurons load` of a Parquet folder or a Delta table (bounded memory, one layer at a time) gives the run a
single-file load gives; bad tables are refused in one line with the warehouse left as it was."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest
from conftest import assert_one_line_error, digest
from deltalake import write_deltalake
from synthetic import long_frame, make


@pytest.fixture
def long_table() -> pl.DataFrame:
    values, lang, lab = make(seed=1, per_cell=20, neurons=36)
    return pl.concat([long_frame(values, lang, lab, 3), long_frame(values * 2 - 1, lang, lab, 5)])


def run_rows(db, run: str, sql: str) -> pl.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    df = con.sql(sql.format(run=f"(select run_id from runs where name = '{run}')")).pl()
    con.close()
    return df


def test_folder_and_delta_equal_single_file(tmp_path, long_table, neurons):
    long_table.write_parquet(tmp_path / "one.parquet")
    folder = tmp_path / "folder"
    long_table.sample(fraction=1.0, shuffle=True, seed=2).write_parquet(folder, partition_by=["layer"])  # any row order
    write_deltalake(str(tmp_path / "delta"), long_table.to_arrow(), partition_by=["layer"])
    db = tmp_path / "w.duckdb"
    assert neurons("--db", db, "load", tmp_path / "one.parquet", "--run", "file").exit_code == 0
    for name in ("folder", "delta"):
        result = neurons("--db", db, "load", tmp_path / name, "--run", name, "--memory", "64MB")
        assert result.exit_code == 0, result.output
        assert "480 sentences, layers [3, 5], 36 neurons, 34,560 values" in result.output
    vectors = "select sentence_id, layer, vector from activation_vectors where run_id = {run} order by 1, 2"
    moments = "select layer, language, label, neuron, n_sentences, mean, variance from moments where run_id = {run} order by all"
    ref_v, ref_m = run_rows(db, "file", vectors), run_rows(db, "file", moments)
    for name in ("folder", "delta"):
        assert run_rows(db, name, vectors).equals(ref_v)
        got = run_rows(db, name, moments)
        assert got.select("layer", "language", "label", "neuron", "n_sentences").equals(
            ref_m.select("layer", "language", "label", "neuron", "n_sentences")
        )
        for c in ("mean", "variance"):
            np.testing.assert_allclose(got[c].to_numpy(), ref_m[c].to_numpy(), rtol=1e-12, atol=1e-12)
    # against numpy: the layer-5 mean of each language
    sid = long_table.filter(pl.col("layer") == 5)
    means = run_rows(
        db,
        "delta",
        "select language, neuron, mean from moments where run_id = {run} and layer = 5 and label is null order by all",
    )
    ref = sid.group_by("language", "neuron").agg(pl.col("value").cast(pl.Float64).mean()).sort("language", "neuron")
    np.testing.assert_allclose(means["mean"].to_numpy(), ref["value"].to_numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    "damage, fragments",
    [
        (lambda t: t.drop("label"), ["missing column(s) label"]),
        (
            lambda t: t.with_columns(
                pl.when(pl.int_range(pl.len()) == 7).then(float("nan")).otherwise(pl.col("value")).alias("value")
            ),
            ["not finite"],
        ),
        (
            lambda t: t.with_columns(
                pl.when(pl.int_range(pl.len()) == 7).then(99).otherwise(pl.col("neuron")).alias("neuron")
            ),
            ["missing or repeated neurons"],
        ),
        (
            lambda t: t.with_columns(
                pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("xx")).otherwise(pl.col("language")).alias("language")
            ),
            ["more than one language"],
        ),
        (
            lambda t: t.filter(~((pl.col("layer") == 5) & (pl.col("sentence_id") == 3))),
            ["layer 5 lacks some sentences"],
        ),
        (lambda t: t.with_columns(pl.col("layer").cast(pl.String) + "x"), ["layer is VARCHAR", "integers"]),
        # what the file load refuses, the folder load refuses too: list-typed labels, an invisible mark in a language
        (lambda t: t.with_columns(pl.concat_list("label").alias("label")), ["column label holds", "one plain label"]),
        (
            lambda t: t.with_columns(
                pl.when(pl.col("language") == pl.col("language").first())
                .then(pl.col("language") + "\u200f")
                .otherwise(pl.col("language"))
                .alias("language")
            ),
            ["invisible character", "U+200F"],
        ),
    ],
)
def test_bad_folders_refused_and_warehouse_unchanged(tmp_path, long_table, neurons, damage, fragments):
    db = tmp_path / "w.duckdb"
    long_table.write_parquet(tmp_path / "one.parquet")
    assert neurons("--db", db, "load", tmp_path / "one.parquet", "--run", "ok").exit_code == 0
    before = digest(db)
    folder = tmp_path / "bad"
    folder.mkdir()
    damage(long_table).write_parquet(folder / "part-0.parquet")
    assert_one_line_error(neurons("--db", db, "load", folder, "--run", "bad"), *fragments)
    assert digest(db) == before


def _one(tmp_path, long_table):
    path = tmp_path / "one.parquet"
    long_table.write_parquet(path)
    return path


def test_a_key_in_both_a_folder_name_and_the_files_is_refused(tmp_path, long_table, neurons):
    """`layer=2/` holding files whose own layer column says 3 or 5: neither silently wins."""
    folder = tmp_path / "both" / "layer=2"
    folder.mkdir(parents=True)
    long_table.write_parquet(folder / "part-0.parquet")
    db = tmp_path / "w.duckdb"
    assert neurons("--db", db, "load", _one(tmp_path, long_table), "--run", "ok").exit_code == 0
    before = digest(db)
    r = neurons("--db", db, "load", tmp_path / "both", "--run", "r")
    assert_one_line_error(r, "inside a folder layer=2", "must agree")
    assert digest(db) == before


def test_empty_folder_refused(tmp_path, neurons):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        neurons("--db", tmp_path / "w.duckdb", "load", tmp_path / "empty", "--run", "r"), "no Parquet files"
    )


def test_a_folder_named_like_a_key_above_the_table(tmp_path, long_table, neurons):
    """Folder names are columns only below the table's root: above it they are ignored when the table has no
    partition folders, and refused when they share a partition's key (DuckDB would read the key from them)."""
    flat = tmp_path / "layer=9" / "flat"
    flat.mkdir(parents=True)
    long_table.write_parquet(flat / "part-0.parquet")
    r = neurons("--db", tmp_path / "w.duckdb", "load", flat, "--run", "flat")
    assert r.exit_code == 0, r.output
    assert "layers [3, 5]" in r.output
    nested = tmp_path / "layer=9" / "nested"
    for layer in (3, 5):
        (nested / f"layer={layer}").mkdir(parents=True)
        long_table.filter(pl.col("layer") == layer).write_parquet(nested / f"layer={layer}" / "part-0.parquet")
    r = neurons("--db", tmp_path / "w.duckdb", "load", nested, "--run", "nested")
    assert_one_line_error(r, "folder layer=9 named like its partitions")


def test_a_file_that_is_not_parquet_in_the_folder_is_one_line(tmp_path, long_table, neurons):
    folder = tmp_path / "mixed"
    folder.mkdir()
    long_table.write_parquet(folder / "part-0.parquet")
    (folder / "notes.parquet").write_text("not a Parquet file")
    db = tmp_path / "w.duckdb"
    assert_one_line_error(neurons("--db", db, "load", folder, "--run", "x"), "notes.parquet", "Parquet files only")


def test_readers_query_the_warehouse_during_a_folder_import(tmp_path, long_table, neurons, monkeypatch):
    """The checks and the grouping of a folder import run with the warehouse closed: a reader in another process,
    which waits for no lock, answers while the import stages its rows; the run appears only once complete."""
    import os
    import subprocess
    from pathlib import Path

    from conftest import neurons_command

    from toolkit.capture import bulk_load

    db = tmp_path / "w.duckdb"
    assert neurons("--db", db, "load", _one(tmp_path, long_table), "--run", "first").exit_code == 0
    folder = tmp_path / "folder"
    folder.mkdir()
    long_table.write_parquet(folder / "part-0.parquet")
    stage = bulk_load._stage
    seen = []

    def reading(con, layers, what):
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), "NEURONS_LOCK_WAIT": "0"}
        reader = subprocess.run(
            neurons_command(db, "query", "select string_agg(name, ',') as runs from runs", "--csv"),
            capture_output=True,
            text=True,
            env=env,
        )
        seen.append((reader.returncode, reader.stdout, reader.stderr))
        return stage(con, layers, what)

    monkeypatch.setattr(bulk_load, "_stage", reading)
    assert neurons("--db", db, "load", folder, "--run", "second").exit_code == 0
    assert seen and seen[0][0] == 0, seen
    assert seen[0][1].splitlines()[1] == "first"  # the run being imported is not visible before its commit
