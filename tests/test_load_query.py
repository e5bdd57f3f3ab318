"""Importing long tables, listing runs, and read-only ad-hoc SQL."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import numpy as np
import polars as pl
import pytest
from conftest import assert_one_line_error, digest


def long_table(rng, ids) -> pl.DataFrame:
    n_layers, hidden = 2, 5
    n = len(ids)
    values = rng.normal(size=(n, n_layers, hidden))
    return pl.DataFrame(
        {
            "sentence_id": np.repeat(ids, n_layers * hidden),
            "language": np.repeat(np.where(np.arange(n) % 2 == 0, "pt-BR", "ja"), n_layers * hidden),
            "label": np.repeat(np.array(["joy", "fear", "love"])[np.arange(n) % 3], n_layers * hidden),
            "text": np.repeat([f"frase número {i} — 文" for i in range(n)], n_layers * hidden),
            "layer": np.tile(np.repeat([6, 11], hidden), n),
            "neuron": np.tile(np.arange(hidden), n * n_layers),
            "value": values.reshape(-1),
        }
    )


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("string_ids", [False, True])
def test_load_round_trip(tmp_path, neurons, fmt, string_ids):
    rng = np.random.default_rng(3)
    ids = [f"s{i}" for i in range(8)] if string_ids else [10 + 3 * i for i in range(8)]
    df = long_table(rng, ids).sample(fraction=1.0, shuffle=True, seed=1)  # any row order
    path = tmp_path / f"long.{fmt}"
    df.write_parquet(path) if fmt == "parquet" else df.write_csv(path)
    db = tmp_path / "w.duckdb"
    r = neurons("--db", db, "load", path, "--run", "imported")
    assert r.exit_code == 0, r.stderr
    assert "8 sentences, layers [6, 11], 5 neurons, 80 values" in r.stdout
    sql = (
        "select s.source_id, l.* from activations_long l join sentences s using (sentence_id) "
        "order by s.source_id, layer, neuron"
    )
    got = pl.DataFrame(json.loads(neurons("--db", db, "query", sql, "--json").stdout))
    assert got.height == 80
    expect = df.with_columns(source_id=pl.col("sentence_id").cast(pl.String)).sort("source_id", "layer", "neuron")
    np.testing.assert_allclose(got["value"].to_numpy(), expect["value"].to_numpy(), rtol=1e-6)  # stored as FLOAT
    assert got["language"].to_list() == expect["language"].to_list()
    assert got["label"].to_list() == expect["label"].to_list()
    assert got["text"].to_list() == expect["text"].to_list()
    if not string_ids:  # integer ids are kept as they are
        assert (got["sentence_id"].cast(pl.String) == got["source_id"]).all()
    runs = json.loads(neurons("--db", db, "runs", "--json").stdout)
    assert runs[0]["run"] == "imported" and runs[0]["status"] == "complete" and runs[0]["languages"] == 2


def test_runs_lists_settings(tmp_path, neurons, checkpoint, data_csv):
    db = tmp_path / "w.duckdb"
    neurons(
        "--db", db, "extract", checkpoint(), data_csv, "--run", "a", "--layers", "1,2", "--pooling", "mean", "--quiet"
    )
    neurons("--db", db, "extract", checkpoint("bert", False), data_csv, "--run", "b", "--quiet", "--limit", "10")
    runs = json.loads(neurons("--db", db, "runs", "--json").stdout)
    assert [r["run"] for r in runs] == ["a", "b"]
    assert runs[0]["layers"] == "1,2" and runs[0]["pooling"] == "mean" and runs[0]["sentences"] == 210
    assert runs[0]["languages"] == 5 and runs[0]["labels"] == 6 and runs[0]["neurons"] == 32
    assert runs[1]["layers"] == "2" and runs[1]["sentences"] == 10  # default: penultimate of 3 blocks
    assert runs[0]["model"].endswith(checkpoint().name) and runs[0]["data_file"] == str(data_csv)
    assert runs[0]["version"] and runs[0]["created"]
    table = neurons("--db", db, "runs", "--wide").stdout
    assert "complete" in table.splitlines()[2] and "model" in table.splitlines()[0]


@pytest.fixture
def demo_db(tmp_path, neurons, checkpoint, data_csv):
    db = tmp_path / "w.duckdb"
    assert neurons("--db", db, "extract", checkpoint(), data_csv, "--run", "r", "--quiet").exit_code == 0
    return db


@pytest.mark.parametrize(
    "sql",
    [
        "drop table activations",
        "delete from runs",
        "insert into runs select * from runs",
        "update sentences set label = 'x'",
        "select 1; drop view activations_long",
        "create table t (a int)",
        "copy runs to 'x.csv'",
        "attach 'other.duckdb'",
    ],
)
def test_query_refuses_writes(neurons, demo_db, sql):
    before = digest(demo_db)
    assert_one_line_error(neurons("--db", demo_db, "query", sql), "refused")
    assert digest(demo_db) == before


def test_query_formats_and_stdin(neurons, demo_db):
    sql = "select language, count(*) as n from sentences group by language order by language"
    table = neurons("--db", demo_db, "query", sql).stdout.splitlines()
    assert table[0].split() == ["language", "n"] and table[2].split() == ["ar", "42"] and len(table) == 7
    assert neurons("--db", demo_db, "query", sql, "--csv").stdout.splitlines()[:2] == ["language,n", "ar,42"]
    assert json.loads(neurons("--db", demo_db, "query", sql, "--json").stdout)[4] == {"language": "sl", "n": 42}
    md = neurons("--db", demo_db, "query", sql, "--markdown").stdout.splitlines()
    assert md[0].replace(" ", "") == "|language|n|" and md[1].startswith("|--")
    assert neurons("--db", demo_db, "query", "-", "--csv", input=sql).stdout.splitlines()[1] == "ar,42"
    nested = neurons("--db", demo_db, "query", "select probabilities from sentences limit 1", "--csv").stdout
    assert len(json.loads(nested.splitlines()[1].strip('"'))) == 6


def test_query_errors_are_one_line(neurons, demo_db, tmp_path):
    assert_one_line_error(neurons("--db", demo_db, "query", "select * from nowhere"), "query failed", "nowhere")
    assert_one_line_error(neurons("--db", demo_db, "query", "selec 1"), "query failed")
    assert_one_line_error(neurons("--db", tmp_path / "none.duckdb", "query", "select 1"), "does not exist")
    assert not (tmp_path / "none.duckdb").exists()


def test_env_var_and_module_entry_point(tmp_path, demo_db):
    env = {"NEURONS_DB": str(demo_db), "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-m", "toolkit", "query", "select count(*) as n from runs", "--csv"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["n", "1"]


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["extract"],
        ["load"],
        ["runs"],
        ["query"],
        ["demo"],
        ["delete"],
        ["analyze"],
        ["chart"],
        ["report"],
        ["export"],
        ["significance"],
        ["finetune"],
        ["ablate"],
    ],
)
def test_help_everywhere(neurons, command):
    r = neurons(*command, "--help")
    assert r.exit_code == 0 and "Usage:" in r.stdout and len(r.stdout.splitlines()) > 4


def test_warehouse_is_self_describing(demo_db):
    """Any DuckDB client sees the tables and the view without this package."""
    import duckdb

    con = duckdb.connect(str(demo_db), read_only=True)
    views = {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()}
    assert "activations_long" in views
    assert con.execute("select count(*) from activations_long").fetchall()[0][0] == 210 * 32
    con.close()


def test_delete_a_run(tmp_path, neurons, checkpoint, data_csv):
    db = tmp_path / "w.duckdb"
    for name in ("keep", "drop"):
        assert (
            neurons("--db", db, "extract", checkpoint(), data_csv, "--run", name, "--quiet", "--limit", "30").exit_code
            == 0
        )
    assert (
        neurons(
            "--db", db, "significance", "--run", "drop", "--permutations", "5", "--bootstraps", "0", "--quiet"
        ).exit_code
        == 0
    )
    probed = neurons("--db", db, "probe", "--run", "drop", "--top", "3", "--controls", "1", "--quiet")
    assert probed.exit_code == 0, probed.stderr
    assert neurons("--db", db, "tokens", "--run", "drop", "--sentences", "1").exit_code == 0
    assert neurons("--db", db, "delete", "--run", "drop", input="n\n").exit_code != 0  # asked, declined
    assert neurons("--db", db, "delete", "--run", "drop", "--yes").exit_code == 0
    counts = json.loads(
        neurons(
            "--db",
            db,
            "query",
            "select (select count(*) from runs) as runs, "
            "(select count(distinct run_id) from activations) as a, (select count(*) from significance) as s, "
            "(select count(distinct run_id) from moments) as m, "
            "(select count(*) from probes) + (select count(*) from probe_weights) as p",
            "--json",
        ).stdout
    )[0]
    assert counts == {"runs": 1, "a": 1, "s": 0, "m": 1, "p": 0}
    with duckdb.connect(str(db), read_only=True) as con:  # no table keeps a row of the deleted run
        tables = [
            t
            for (t,) in con.execute(
                "select table_name from duckdb_columns() join duckdb_tables() using (table_name) "
                "where column_name = 'run_id'"
            ).fetchall()
        ]
        orphan = "select count(*) from {} where run_id not in (select run_id from runs)"
        kept = {t: con.execute(orphan.format(t)).fetchone()[0] for t in tables}
    assert {"tokenization", "token_values", "sentence_tokens"} <= set(tables) and not any(kept.values()), kept
    assert_one_line_error(neurons("--db", db, "delete", "--run", "drop", "--yes"), "no run named 'drop'")


def test_schema_upgrade_recomputes_the_cache(tmp_path, neurons, checkpoint, data_csv):
    """A warehouse whose statistics cache is missing or stale is rebuilt from the SQL by `neurons upgrade`; readers
    refuse it until then rather than change the file."""
    import duckdb

    db = tmp_path / "w.duckdb"
    assert (
        neurons("--db", db, "extract", checkpoint(), data_csv, "--run", "r", "--quiet", "--limit", "40").exit_code == 0
    )
    before = json.loads(neurons("--db", db, "query", "select * from label_profiles order by all", "--json").stdout)
    con = duckdb.connect(str(db))
    con.execute("delete from moments")
    con.execute("drop view moments_source")  # as if written by a toolkit with another definition
    con.execute("update warehouse_meta set value = 'old' where key = 'views_sha256'")
    con.close()
    assert_one_line_error(neurons("--db", db, "query", "select 1"), "older version", "upgrade")
    assert "upgraded" in neurons("--db", db, "upgrade").stdout
    after = json.loads(neurons("--db", db, "query", "select * from label_profiles order by all", "--json").stdout)
    assert len(before) == 6 * 32 == len(after)  # 40 Arabic sentences, 6 labels, 32 neurons: refilled
    for b, a in zip(
        before, after
    ):  # the merge sums parts in whatever order the threads meet them: last bits may differ
        assert {k: v for k, v in a.items() if k != "mean_z"} == {k: v for k, v in b.items() if k != "mean_z"}
        assert a["mean_z"] == pytest.approx(b["mean_z"], rel=1e-12, abs=1e-12)


def test_runs_fit_the_terminal_and_show_split_and_max_length(tmp_path, neurons, checkpoint, data_csv):
    db = tmp_path / "w.duckdb"
    args = (
        "--db",
        db,
        "extract",
        checkpoint(),
        data_csv,
        "--run",
        "r",
        "--quiet",
        "--split",
        "test",
        "--max-length",
        "40",
    )
    assert neurons(*args).exit_code == 0
    narrow = neurons("--db", db, "runs", env={"COLUMNS": "90"}).stdout.splitlines()
    assert max(len(line) for line in narrow[:-1]) <= 90 and narrow[-1].endswith("more columns: --wide)")
    assert narrow[0].split()[:4] == ["run", "status", "layers", "split"] and narrow[2].split()[3] == "test"
    wide = neurons("--db", db, "runs", "--wide", env={"COLUMNS": "90"}).stdout
    assert "max_length" in wide and "data_file" in wide and "more columns" not in wide
    row = json.loads(neurons("--db", db, "runs", "--json").stdout)[0]
    assert row["split"] == "test" and row["max_length"] == 40


def test_export_of_a_view_keeps_the_runs_default_layer(tmp_path, neurons, checkpoint, data_csv):
    db = tmp_path / "w.duckdb"
    assert (
        neurons("--db", db, "extract", checkpoint(), data_csv, "--run", "r", "--layers", "all", "--quiet").exit_code
        == 0
    )
    out = tmp_path / "p.csv"
    assert neurons("--db", db, "export", "label_profiles", "--run", "r", "--out", out).exit_code == 0
    assert set(pl.read_csv(out)["layer"].to_list()) == {2}  # 3 blocks: the penultimate, as analyze uses
    assert neurons("--db", db, "export", "label_profiles", "--run", "r", "--layer", "1", "--out", out).exit_code == 0
    assert set(pl.read_csv(out)["layer"].to_list()) == {1}
    assert_one_line_error(neurons("--db", db, "export", "nosuchview", "--run", "r", "--out", out), "nosuchview")
