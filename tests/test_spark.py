"""The statistics on Spark (pyspark, local[2]) equal DuckDB's: every view and table macro of
sql/views/010_statistics.sql, generated from that file, on the demo model's activations and on planted data
(numbers within 1e-9, classes identical, undefined values null in both); and Spark's moments equal DuckDB's."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from conftest import assert_one_line_error
from synthetic import make

from toolkit.capture.datasets import read_dataset
from toolkit.capture.extract import ExtractOptions
from toolkit.scale.attach import attach
from toolkit.scale.shards import extract_shard, write_arrays

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17 (.ci/run installs it)")

CALLS = {  # calls of each table macro besides the views that call it at the paper's threshold (neuron_classes, ...)
    "classify_neurons": ["classify_neurons(0.3, absolute := true)"],
    "count_classes": [],
    "count_monolingual": [],
    "summarize_layers": [],
    "profile_correlation": [],  # its default is crosslingual_correlation; at equal length it reads the view below
}

DUCKDB_ONLY = {"length_adjusted_profiles"}
"""Views of the file whose DuckDB definition a later file replaces (sql/views/013_length.sql), which Spark does not
read: on Spark they stay empty, so there is nothing to compare."""


JIT_LIGHT = "-XX:TieredStopAtLevel=1 -XX:CICompilerCount=1 -XX:+UseSerialGC"
"""The test JVM's settings: its queries are many and each runs for a second or two on tiny data, so the optimising
compiler (C2) and parallel garbage collection cost more CPU than they save; with these, a quarter less."""

INTERPRETED = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
"""The test session evaluates its queries without generating Java code for them: on tiny data, compiling each query's
code costs more than running it (the file takes 84 CPU-seconds instead of 112). The results are the same by Spark's
contract, and users' sessions keep code generation, which pays on real lakes."""


@pytest.fixture(scope="module")
def spark():
    from toolkit.scale.spark import session

    with pytest.MonkeyPatch.context() as env:
        env.setenv("JAVA_TOOL_OPTIONS", JIT_LIGHT)  # read by the JVM that the session starts
        s = session("local[2]")
    for key, value in INTERPRETED.items():
        s.conf.set(key, value)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def lake_and_db(tmp_path_factory, checkpoint, sample):
    """A lake with the demo model's activations ('demo', 2 shards) and planted data ('planted', with a language
    whose every neuron is constant, so its correlations are undefined), both attached to a warehouse."""
    root = tmp_path_factory.mktemp("spark")
    lake, db = root / "lake", root / "w.duckdb"
    data = root / "data.csv"
    sample.write_csv(data)
    opts = ExtractOptions(layers="1,3", batch_size=8, commit_every=40)
    for k in (0, 1):
        extract_shard(
            lake, str(checkpoint("xlm-roberta", True)), read_dataset(data), "demo", (k, 2), opts, progress=False
        )
    values, lang, lab = make(seed=4, per_cell=12, neurons=36)
    constant = np.full((6 * 4, values.shape[1]), 0.1)  # language 'xx': every neuron constant
    values = np.vstack([values, constant])
    lang = np.concatenate([lang, np.repeat("xx", 24)])
    lab = np.concatenate([lab, np.tile(np.repeat(np.unique(lab), 4), 1)[:24]])
    frame = pl.DataFrame(
        {
            "sentence_id": np.arange(len(lang)),
            "text": [f"s{i}" for i in range(len(lang))],
            "language": lang,
            "label": lab,
        }
    )
    write_arrays(lake, "planted", frame, [7], values[:, None, :].astype(np.float32), chunk_size=100)
    for run in ("demo", "planted"):
        attach(db, lake, run)
    return lake, db


def statements(d) -> list[str]:
    if d.name in DUCKDB_ONLY:
        return []
    return [f"select * from {c}" for c in CALLS[d.name]] if d.kind == "function" else [f"select * from {d.name}"]


def normalised(df: pl.DataFrame, run_ids: dict[int, str]) -> pl.DataFrame:
    """Rows keyed by run name, NaN as null, integers as Int64, sorted by every column."""
    if "run_id" in df.columns:
        df = df.with_columns(pl.col("run_id").replace_strict(run_ids, return_dtype=pl.String).alias("run")).drop(
            "run_id"
        )
    df = df.with_columns(
        *(pl.col(c).cast(pl.Float64).fill_nan(None) for c, t in df.schema.items() if t.is_float() or t.is_decimal()),
        *(pl.col(c).cast(pl.Int64) for c, t in df.schema.items() if t.is_integer()),
    )
    return df.select(sorted(df.columns)).sort(sorted(df.columns), nulls_last=True)


def assert_same(a: pl.DataFrame, b: pl.DataFrame, what: str) -> None:
    assert a.columns == b.columns, what
    assert a.height == b.height, f"{what}: {a.height} rows on Spark, {b.height} in DuckDB"
    for c in a.columns:
        x, y = a[c], b[c]
        assert x.is_null().to_list() == y.is_null().to_list(), f"{what}.{c}: undefined in one engine only"
        if x.dtype == pl.Float64:
            np.testing.assert_allclose(
                x.drop_nulls().to_numpy(), y.drop_nulls().to_numpy(), rtol=1e-9, atol=1e-9, err_msg=f"{what}.{c}"
            )
        else:
            assert x.to_list() == y.to_list(), f"{what}.{c}"


def test_every_statistic_on_spark_equals_duckdb(spark, lake_and_db):
    from toolkit.scale.lake import Lake
    from toolkit.scale.spark import define_statistics, definitions, register_lake, to_spark

    lake, db = lake_and_db
    spark_ids = register_lake(spark, Lake(lake))
    define_statistics(spark)
    con = duckdb.connect(str(db), read_only=True)
    duck_ids = dict(con.execute("select run_id, name from runs").fetchall())
    checked = []
    for d in definitions():
        for sql in statements(d):
            on_spark = normalised(
                pl.from_arrow(spark.sql(to_spark(sql)).toArrow()), {v: k for k, v in spark_ids.items()}
            )
            in_duckdb = normalised(con.sql(sql).pl(), duck_ids)
            assert_same(on_spark, in_duckdb, sql)
            checked.append((sql, on_spark.height))
    con.close()
    assert len(checked) >= 20 and all(n > 0 for sql, n in checked if "sensitive" not in sql), checked
    # the planted structure came through: polyglot neurons active in the four languages that vary ('xx' is
    # constant), monolingual ones in their language
    classes = pl.from_arrow(spark.sql("select * from neuron_classes where run = 'planted'").toArrow())
    joy = classes.filter((pl.col("label") == "joy") & pl.col("neuron").is_in([3, 7]))
    assert joy["n_active_languages"].to_list() == [4, 4] and joy["n_languages"].to_list() == [5, 5]
    mono = classes.filter(pl.col("neuron_class") == "monolingual")
    assert {(r["label"], r["neuron"], r["language"]) for r in mono.iter_rows(named=True)} >= {
        ("anger", 30, "ar"),
        ("love", 31, "ja"),
        ("sadness", 32, "sl"),
        ("joy", 33, "nl"),
    }
    rho = pl.from_arrow(spark.sql("select * from crosslingual_correlation where language_b = 'xx'").toArrow())
    assert rho.height > 0 and rho["spearman"].null_count() == rho.height and rho["cosine"].null_count() == rho.height


def test_spark_moments_equal_duckdb(spark, lake_and_db, tmp_path, neurons):
    """Moments computed on Spark from the activations equal DuckDB's (merged from the shards' partial moments)."""
    from toolkit.scale.spark import spark_moments

    lake, db = lake_and_db
    out = tmp_path / "m.parquet"
    result = neurons("spark", "moments", lake, "--run", "demo", "--out", out)
    assert result.exit_code == 0, result.output
    computed = {"demo": pl.read_parquet(out), "planted": spark_moments(lake, "planted", "local[2]")}
    con = duckdb.connect(str(db), read_only=True)
    for run, df in computed.items():
        in_duckdb = con.sql(
            "select m.layer, m.language, m.label, m.neuron, m.n_sentences, m.mean, m.variance from moments m "
            "join runs r using (run_id) where r.name = ?",
            params=[run],
        ).pl()
        assert_same(normalised(df, {}), normalised(in_duckdb, {}), f"moments of {run}")
    con.close()
    # the session's statistics are made again over each registration (the moments read the one run registered last),
    # and those the last command did not need are gone rather than reading the lake as it was registered before
    assert pl.from_arrow(spark.sql("select distinct run_id from moments_source").toArrow())["run_id"].to_list() == [1]
    assert not spark.catalog.tableExists("language_stats") and not spark.catalog.functionExists("classify_neurons")
    assert_one_line_error(neurons("spark", "moments", lake, "--run", "demo", "--store"), "partial moments")
    assert_one_line_error(neurons("spark", "moments", lake, "--run", "nope", "--out", out), "no run named 'nope'")


def test_spark_sql_command(spark, lake_and_db, neurons):
    lake, _ = lake_and_db
    query = "select run, label, neuron_class, n_neurons from class_counts where run = 'planted' and label = 'joy' order by all"
    result = neurons("spark", "sql", lake, query, "--json")
    assert result.exit_code == 0, result.output
    assert '"neuron_class": "polyglot"' in result.output
    assert_one_line_error(neurons("spark", "sql", lake, "select nope from runs"), "Spark refused the query", "nope")
    assert_one_line_error(neurons("spark", "sql", lake, "selec 1"), "cannot read the SQL")


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("INSERT OVERWRITE DIRECTORY '{lake}/activations' SELECT 1", "one read-only query"),
        ("CREATE TEMPORARY VIEW v AS SELECT 1", "one read-only query"),
        ("DROP VIEW moments", "one read-only query"),
        ("SET spark.sql.runSQLOnFiles=true", "one read-only query"),
        ("SELECT 1; SELECT 2", "one read-only query"),
        ("SELECT * FROM text.`/etc/passwd`", "no file paths"),
        ("SELECT * FROM parquet.`{lake}/activations`", "no file paths"),
        ("SELECT reflect('java.lang.System', 'exit', '0')", "does not call Java"),
        ("SELECT java_method('java.lang.Runtime', 'getRuntime')", "does not call Java"),
    ],
)
def test_spark_sql_is_read_only(lake_and_db, neurons, query, fragment):
    """`spark sql` runs one query over the lake: writes, DDL, settings, file reads and Java calls are refused in one
    line, the lake is left as it was, and no spark-warehouse folder appears."""
    lake, _ = lake_and_db
    before = sorted(str(p.relative_to(lake)) for p in lake.rglob("*"))
    litter = Path("spark-warehouse").exists()
    r = neurons("spark", "sql", lake, query.format(lake=lake), "--dialect", "spark")
    assert_one_line_error(r, fragment)
    assert sorted(str(p.relative_to(lake)) for p in lake.rglob("*")) == before
    assert Path("spark-warehouse").exists() == litter  # the session's own warehouse folder is a temporary one


def test_spark_refuses_sql_on_files_itself(spark, lake_and_db):
    """Beyond the parse check, the session itself refuses to read a path given in SQL."""
    lake, _ = lake_and_db
    with pytest.raises(Exception, match="(?i)runSQLOnFiles|not found|cannot be found|TABLE_OR_VIEW"):
        spark.sql(f"select * from parquet.`{lake}/activations`").collect()


def test_spark_moments_stored_as_partial_moments(spark, tmp_path, neurons):
    """A lake run without partial moments (activations imported from elsewhere) gets them from Spark with
    --store, once; attached, its cache equals numpy's moments of the values."""
    from deltalake import DeltaTable

    lake = tmp_path / "lake"
    rng = np.random.default_rng(5)
    values = rng.normal(size=(60, 1, 8)).astype(np.float32)
    values[:, 0, 7] = np.float32(0.3)  # a constant neuron: variance exactly 0
    lang, lab = np.repeat(["ar", "nl"], 30), np.tile(np.repeat(["joy", "fear", "love"], 10), 2)
    frame = pl.DataFrame({"sentence_id": np.arange(60), "text": ["t"] * 60, "language": lang, "label": lab})
    write_arrays(lake, "solo", frame, [2], values, chunk_size=25)
    DeltaTable(str(lake / "moments")).delete("run = 'solo'")  # as if the activations came from elsewhere
    result = neurons("spark", "moments", lake, "--run", "solo", "--store")
    assert result.exit_code == 0, result.output
    assert_one_line_error(neurons("spark", "moments", lake, "--run", "solo", "--store"), "partial moments")
    db = tmp_path / "w.duckdb"
    attach(db, lake, "solo")
    con = duckdb.connect(str(db), read_only=True)
    got = con.sql("select language, label, neuron, n_sentences, mean, variance from moments order by all").pl()
    con.close()
    for row in got.iter_rows(named=True):
        keep = (lang == row["language"]) & ((lab == row["label"]) if row["label"] is not None else True)
        x = values[keep, 0, row["neuron"]].astype(np.float64)
        assert row["n_sentences"] == x.size
        assert row["mean"] == pytest.approx(x.mean(), abs=1e-12) and row["variance"] == pytest.approx(
            x.var(), abs=1e-12
        )
        if row["neuron"] == 7:
            assert row["variance"] == 0.0
