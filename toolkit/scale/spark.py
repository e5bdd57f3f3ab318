"""The statistics on Spark (`neurons spark moments`, `neurons spark sql`): the same SQL, generated from `sql/`.

Every view and table macro of `sql/views/010_statistics.sql` is transpiled from DuckDB's dialect to Spark SQL
with sqlglot, so each statistic keeps its one definition. Views become temporary views; table macros become
Spark SQL table functions (`CREATE TEMPORARY FUNCTION ... RETURNS TABLE ... RETURN query`), their parameters
typed from their defaults (true/false: BOOLEAN, an integer: INT, otherwise DOUBLE) and their columns typed by
Spark itself. Decimal literals become DOUBLE (Spark would compute shares and average ranks in DECIMAL).

The sources are the lake's: `labelled_activations` reads the Parquet files of each run's Delta snapshot (one
branch per run, so a run filter prunes the others), `lake_moment_parts` the shards' partial moments, `runs` the
lake's run records, and tables the lake does not hold (significance) are empty.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

from toolkit.errors import UserError, first_line
from toolkit.store import catalog
from toolkit.store.connection import interruptible

SPARK_VIEWS_FILE = "views/010_statistics.sql"


@dataclass
class Definition:
    """One statistic of `sql/` in Spark SQL: a view, or a table function with its typed parameters."""

    kind: str  # 'view' or 'function'
    name: str
    query: str  # Spark SQL
    parameters: list[tuple[str, str, str | None]]  # (name, Spark type, default as Spark SQL)

    def probe(self) -> str:
        """The function's query with every parameter replaced by a typed value, to learn its columns' types."""
        tree = sqlglot.parse_one(self.query, read="spark")
        values = {n: f"CAST({d if d is not None else '0'} AS {t})" for n, t, d in self.parameters}
        tree = tree.transform(
            lambda node: (
                sqlglot.parse_one(values[node.name], read="spark")
                if isinstance(node, exp.Column) and not node.table and node.name in values
                else node
            )
        )
        return tree.sql(dialect="spark")


def _spark_forms(node: exp.Expression) -> exp.Expression:
    """Decimal literals as DOUBLE (Spark would type 1.0 as DECIMAL), and named arguments `a := b` as `a => b`."""
    if isinstance(node, exp.Literal) and node.is_number and "." in node.this:
        return exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE"))
    if isinstance(node, exp.PropertyEQ):
        return exp.Kwarg(this=node.this.copy(), expression=node.expression.copy())
    return node


def to_spark(query: str) -> str:
    """One DuckDB query as Spark SQL."""
    try:
        tree = sqlglot.parse_one(query, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise UserError(f"cannot read the SQL as DuckDB's dialect: {first_line(exc)}") from None
    return tree.transform(_spark_forms).sql(dialect="spark", pretty=True)


def _parameter(text: str) -> tuple[str, str, str | None]:
    name, _, default = (x.strip() for x in text.partition(":="))
    if not default:
        return name, "DOUBLE", None
    if default.lower() in ("true", "false"):
        return name, "BOOLEAN", default.lower()
    return name, ("INT" if re.fullmatch(r"-?\d+", default) else "DOUBLE"), default


@functools.cache
def definitions() -> tuple[Definition, ...]:
    """The statistics of `sql/views/010_statistics.sql` in file order (later ones use earlier ones)."""
    out = []
    for s in catalog.statements(SPARK_VIEWS_FILE):
        if s.kind == "macro":
            params = [_parameter(p) for p in s.parameters.split(",") if p.strip()]
            out.append(Definition("function", s.name, to_spark(s.body), params))
        elif s.kind == "view":
            out.append(Definition("view", s.name, to_spark(s.body), []))
        else:
            raise ValueError(f"not a view or table macro: {s.text[:80]}")
    return tuple(out)


def create(spark, definition: Definition) -> None:
    """Define DEFINITION in the Spark session as a temporary view (made from a DataFrame, so it keeps its analyzed
    plan: a query over it never resolves the chain of views beneath it again) or SQL table function."""
    if definition.kind == "view":
        spark.sql(definition.query).createOrReplaceTempView(definition.name)
        return
    schema = spark.sql(definition.probe()).schema
    columns = ", ".join(f"{f.name} {f.dataType.simpleString().upper()}" for f in schema.fields)
    params = ", ".join(f"{n} {t}" + (f" DEFAULT {d}" if d is not None else "") for n, t, d in definition.parameters)
    spark.sql(
        f"CREATE OR REPLACE TEMPORARY FUNCTION {definition.name}({params}) RETURNS TABLE ({columns}) RETURN\n"
        f"{definition.query}"
    )


# -- the Spark session and the lake's tables as its sources -------------------------------------------------

DUCKDB_TO_SPARK = {
    "VARCHAR": "STRING",
    "BOOLEAN": "BOOLEAN",
    "TINYINT": "TINYINT",
    "UTINYINT": "SMALLINT",
    "SMALLINT": "SMALLINT",
    "USMALLINT": "INT",
    "INTEGER": "INT",
    "UINTEGER": "BIGINT",
    "BIGINT": "BIGINT",
    "UBIGINT": "DECIMAL(20,0)",
    "HUGEINT": "DECIMAL(38,0)",
    "FLOAT": "FLOAT",
    "DOUBLE": "DOUBLE",
    "TIMESTAMP": "TIMESTAMP",
    "DATE": "DATE",
}


LOG_CONFIG = Path(__file__).parent.parent / "data" / "spark-log4j2.properties"
"""Spark's own log, errors only, so the command's output stays readable."""


@contextmanager
def _quiet_jvm() -> Iterator[None]:
    """Start the JVM with its stderr on /dev/null (its start-up notices would bury the command's output; Spark's
    errors still reach Python as exceptions)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _scratch() -> str:
    """A folder for Spark's own warehouse directory, removed when this process ends."""
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="neurons-spark-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def session(master: str | None = None):
    """A Spark session (local[*] unless MASTER, e.g. spark://host:7077 or local[2]); one clear line when pyspark
    or Java is missing."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UserError(
            "Spark is an optional extra: pip install 'neurons[spark]' (it needs Java 17 or later)"
        ) from None
    builder = (
        SparkSession.builder.master(master or "local[*]")
        .appName("neurons")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG_CONFIG}")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.ansi.enabled", "false")  # division by zero gives NULL, as the SQL expects
        .config("spark.sql.runSQLOnFiles", "false")  # no `parquet.`/any/path`` in SQL: the lake's tables only
        .config("spark.sql.warehouse.dir", _scratch())  # no ./spark-warehouse left behind
    )
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers, if any, run this interpreter
    local = re.fullmatch(r"local(\[(\d+|\*)\])?", master or "local[*]")
    if local:  # one shuffle partition per local core, not Spark's 200
        cores = local.group(2) if local.group(2) and local.group(2) != "*" else str(os.cpu_count() or 1)
        builder = builder.config("spark.sql.shuffle.partitions", cores)
    try:
        with _quiet_jvm():
            spark = builder.getOrCreate()
    except Exception as exc:
        raise UserError(f"cannot start Spark ({first_line(exc)}); is Java 17 or later installed (JAVA_HOME)?") from None
    spark.sparkContext.setLogLevel("ERROR")
    for name in ("SQLQueryContextLogger", "pyspark", "py4j"):  # refusals come back as one line, not a log record
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return spark


def empty_view(spark, name: str, ddl: str) -> None:
    """A temporary view NAME with the columns of DDL ('a INT, b STRING') and no rows, made in SQL (no data goes
    through Python workers)."""
    columns = ", ".join(
        f"CAST(NULL AS {t.strip()}) AS {n}" for n, t in (c.strip().split(" ", 1) for c in ddl.split(", "))
    )
    spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {name} AS SELECT {columns} WHERE false")


def _empty_tables(spark, names: list[str]) -> None:
    """Tables of the warehouse schema that a lake does not hold, as empty temporary views of the same columns."""
    import duckdb

    con = duckdb.connect()
    for _, text in catalog.migrations():
        con.execute(text)
    for name in names:
        cols = con.execute(f"describe {name}").fetchall()
        ddl = ", ".join(f"{c[0]} {DUCKDB_TO_SPARK.get(c[1], 'STRING')}" for c in cols)
        empty_view(spark, name, ddl)
    con.close()


def _string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def register_lake(spark, lake, runs: list[str] | None = None, parts: bool = True) -> dict[str, int]:
    """The lake's runs (all, or RUNS) as Spark's `runs`, `labelled_activations` and `lake_moment_parts` (the
    shards' partial moments; none with PARTS false, so the moments come from the activations). Returns the
    run ids given to the runs (in name order)."""
    from functools import reduce

    from pyspark.sql import functions as F

    from toolkit.scale.integrity import verify

    names = runs or lake.runs()
    ids = {name: i + 1 for i, name in enumerate(sorted(names))}
    rows = ", ".join(f"({i}, {_string(name)}, 'complete')" for name, i in ids.items())
    spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW runs AS SELECT * FROM VALUES {rows} AS runs(run_id, name, status)")
    activations, moments = [], []
    for name, run_id in ids.items():
        record = lake.run_records(name)[0]
        if json.loads(record["settings"]).get("aggregate"):  # corpus counts: no activations to register
            continue
        verify(lake, name, list(record["layers"]), int(record["hidden_size"]), content=False, moments=parts)
        files = lake.files("activations", name)["path"].to_pylist()
        if files:
            df = spark.read.option("basePath", str(lake.path("activations"))).parquet(*files)
            activations.append(
                df.select(
                    F.lit(run_id).alias("run_id"),
                    "sentence_id",
                    F.col("layer").cast("int").alias("layer"),
                    "language",
                    "label",
                    "n_tokens",
                    "neuron",
                    "value",
                )
            )
        files = lake.files("moments", name)["path"].to_pylist() if parts else []
        if files:
            df = spark.read.parquet(*files)
            cols = ["layer", "language", "label", "neuron", "n_sentences", "mean", "variance"]
            extremes = [F.col(c).cast("double").alias(c) for c in ("minimum", "maximum")]
            moments.append(df.select(F.lit(run_id).alias("run_id"), *cols, *extremes))
    empty = {
        "labelled_activations": "run_id INT, sentence_id BIGINT, layer INT, language STRING, label STRING, "
        "n_tokens INT, neuron INT, value FLOAT",
        "lake_moment_parts": "run_id INT, layer SMALLINT, language STRING, label STRING, neuron INT, "
        "n_sentences BIGINT, mean DOUBLE, variance DOUBLE, minimum DOUBLE, maximum DOUBLE",
    }
    for view, frames in (("labelled_activations", activations), ("lake_moment_parts", moments)):
        if frames:
            reduce(lambda a, b: a.unionByName(b), frames).createOrReplaceTempView(view)
        else:
            empty_view(spark, view, empty[view])
    _empty_tables(spark, ["significance", "significance_neurons"])
    return ids


def tables_read(query: str) -> set[str]:
    """The names QUERY (Spark SQL) reads from: tables, views and table functions, lower case."""
    tree = sqlglot.parse_one(query, read="spark")
    return {t.name.lower() for t in tree.find_all(exp.Table)} | {f.name.lower() for f in tree.find_all(exp.Anonymous)}


def needed(names: set[str]) -> set[str]:
    """NAMES with every statistic they read, directly or through others (`moments` is `moments_source`'s cache)."""
    wanted = {n.lower() for n in names}
    for d in reversed(definitions()):  # a definition reads only the ones before it: one pass from the last
        if d.name in wanted or (d.name == "moments_source" and "moments" in wanted):
            wanted |= tables_read(d.query) | {d.name}
    return wanted


def define_statistics(spark, names: set[str] | None = None) -> None:
    """The views and table macros of the statistics file, in order: all of them, or those NAMES read (see
    `needed`); `moments` is the merged moments (computed once, when first used). The views keep the analyzed plans
    of the sources they were made over (a third less work for Spark than views kept as SQL text, resolved again at
    each use), so they are made again after every `register_lake`, and those not made are dropped: a session that
    attaches another lake (a library user's) never reads the one before."""
    spark.catalog.clearCache()  # the cached moments of sources that are being replaced
    wanted = needed(names) if names is not None else None
    for d in definitions():
        if wanted is not None and d.name not in wanted:  # gone, rather than left reading the sources before
            spark.sql(f"DROP {'VIEW' if d.kind == 'view' else 'TEMPORARY FUNCTION'} IF EXISTS {d.name}")
            continue
        create(spark, d)
        if d.name == "moments_source":
            spark.table("moments_source").createOrReplaceTempView("moments")
            spark.sql("CACHE LAZY TABLE moments")


JAVA_CALLS = {"reflect", "java_method", "try_reflect"}
"""Spark SQL functions that call any Java method."""


def check_read_only(text: str) -> None:
    """Refuse, before Spark starts, anything but one query over the lake's views: no write, DDL, cache or setting
    (the parsed statement must be a query), no Java call, and no table named with a database or a file path (with
    `spark.sql.runSQLOnFiles` off in every session, Spark itself refuses `parquet.`/path``)."""
    try:
        trees = [t for t in sqlglot.parse(text, read="spark") if t is not None]
    except sqlglot.errors.ParseError as exc:
        raise UserError(f"cannot read the SQL: {first_line(exc)}") from None
    if len(trees) != 1 or not isinstance(trees[0], exp.Query):
        raise UserError(
            "spark sql runs one read-only query (SELECT, WITH, UNION, ...) over the lake: writes, DDL, caching and "
            "settings are refused"
        )
    for f in trees[0].find_all(exp.Anonymous):
        if f.name.lower() in JAVA_CALLS:
            raise UserError(f"spark sql does not call Java ({f.name}); query the lake's views and tables")
    for table in trees[0].find_all(exp.Table):
        if table.db or table.catalog or "/" in table.name:
            raise UserError(
                f"spark sql reads the lake's views and tables by name, not {table.sql(dialect='spark')}: no file "
                "paths or databases"
            )


def run_query(lake_dir: str | Path, query: str, master: str | None = None, dialect: str = "duckdb"):
    """QUERY (DuckDB's dialect, transpiled, or Spark's) over the lake's runs and every statistic, on Spark; a
    Polars DataFrame."""
    import polars as pl
    import pyarrow as pa

    from toolkit.scale.lake import Lake

    lake = Lake(lake_dir)
    text = to_spark(query) if dialect == "duckdb" else query  # a query that does not parse fails before Spark starts
    check_read_only(text)

    def job() -> pa.Table:
        spark = session(master)
        register_lake(spark, lake)
        define_statistics(spark, tables_read(text))  # only what the query reads: a query of `runs` starts at once
        try:
            return spark.sql(text).toArrow()
        except Exception as exc:
            if type(exc).__name__ in ("AnalysisException", "ParseException", "SparkRuntimeException"):
                raise UserError(f"Spark refused the query: {first_line(exc)}") from None
            raise

    return pl.from_arrow(interruptible(job, cancel_jobs))


def cancel_jobs() -> None:
    """Cancel every running Spark job of this process (what Ctrl-C does)."""
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is not None:
        context.cancelAllJobs()


def spark_moments(lake_dir: str | Path, run: str, master: str | None = None, store: bool = False):
    """The moments of RUN (count, mean, population variance per layer x language x label x neuron, and per
    language) computed on Spark from the lake's activations by `moments_source`, as a Polars DataFrame. With
    STORE their parts are added to the lake as the run's partial moments (for runs that have none, e.g. imported
    activations), exactly once."""
    import polars as pl
    import pyarrow as pa

    from toolkit.scale.lake import Lake, constant
    from toolkit.scale.shards import seal, with_key

    lake = Lake(lake_dir)
    if run not in lake.runs():
        raise UserError(f"no run named '{run}' in lake {lake.root} (runs: {', '.join(lake.runs()) or 'none'})")
    if json.loads(lake.run_records(run)[0]["settings"]).get("aggregate"):
        raise UserError(
            f"run '{run}' holds corpus counts (extract --aggregate), not per-sentence activations; moments need a run "
            "extracted without --aggregate (attach this one: `neurons lake attach`, then LAPE reads it)"
        )
    if store and lake.files("moments", run).num_rows:
        raise UserError(f"run '{run}' has partial moments from its shards already; drop --store (or use --out)")
    spark = session(master)
    run_id = register_lake(spark, lake, [run], parts=False)[run]
    define_statistics(spark, {"moment_parts", "moments_source"})
    if store:
        parts = spark.sql(f"SELECT * FROM moment_parts WHERE run_id = {run_id} AND label IS NOT NULL")
        parts = parts.toArrow().drop_columns(["run_id"])  # the cell parts, as a shard stores them
        for c in ("minimum", "maximum"):  # stored as float32, like a shard's (the activations are float32: exact)
            parts = parts.set_column(parts.schema.get_field_index(c), c, parts[c].cast(pa.float32()))
        writer = f"spark-{uuid.uuid4().hex}"
        parts = with_key(parts.append_column("run", constant(run, parts.num_rows)), -1, 0, writer)
        if lake.append("moments", parts, f"neurons:{run}:spark", 1):
            seal(lake, run, -1, 0, writer, ("moments",))
    merged = spark.sql(
        f"SELECT layer, language, label, neuron, n_sentences, mean, variance FROM moments_source WHERE run_id = {run_id}"
    )
    return pl.from_arrow(merged.toArrow()).sort("layer", "language", "label", "neuron", nulls_last=False)
