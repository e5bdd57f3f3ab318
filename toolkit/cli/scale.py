"""Commands beyond one machine: the `lake` group (status, attach) and the `spark` group (moments, sql)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from toolkit.cli.base import Context, OneLineGroup, format_options, json_option, out_option, pass_ctx, run_option
from toolkit.errors import UserError

lake_dir_argument = click.argument("lake_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))


@click.group(cls=OneLineGroup)
def lake() -> None:
    """Runs extracted in shards into a Delta Lake folder: their progress, and bringing them to the warehouse."""


@lake.command("status")
@lake_dir_argument
@run_option("The run to report on (default: one line per run of the lake).", required=False)
@json_option("Rows as JSON.")
def lake_status(lake_dir: Path, run: str | None, as_json: bool) -> None:
    """Each shard of RUN: committed, started (chunks committed so far) or missing; exit 3 while any is not
    committed, so scripts can wait on it. Without --run, the lake's runs and their shards committed."""
    from toolkit.scale.shards import lake_runs, not_committed, status
    from toolkit.store.query import render

    if run is None:
        click.echo(render(lake_runs(lake_dir), "json" if as_json else "table"), nl=False)
        return
    df = status(lake_dir, run)
    click.echo(render(df, "json" if as_json else "table"), nl=False)
    n_missing, n_shards, rows = not_committed(df)
    if n_missing:
        if not as_json:
            click.echo(f"{n_missing} of {n_shards} shards not committed: {', '.join(rows)}")
        sys.exit(3)
    if not as_json:
        click.echo(
            f"all {n_shards} shards committed; bring the run in with `neurons lake attach {shlex.quote(str(lake_dir))} --run {shlex.quote(run)}`"
        )


@lake.command("attach")
@lake_dir_argument
@run_option("The run in the lake.")
@click.option("--as", "name", default=None, help="Its name in the warehouse (default: the same).")
@click.option("--replace", is_flag=True, help="Replace a warehouse run of that name.")
@pass_ctx
def lake_attach(ctx: Context, lake_dir: Path, run: str, name: str | None, replace: bool) -> None:
    """Register a run whose shards are all committed in the warehouse: sentences copied, partial moments merged
    exactly into the statistics cache, activations read in place from the lake's Parquet files (no copy)."""
    from toolkit.scale.attach import attach

    click.echo(attach(ctx.db, lake_dir, run, name, replace).text())


@click.group(cls=OneLineGroup)
def spark() -> None:
    """The statistics on Spark, over a lake (needs the extra: pip install 'neurons[spark]', and Java 17)."""


master_option = click.option(
    "--master", default=None, help="Spark master URL (default local[*]; e.g. spark://host:7077, local[2])."
)


@spark.command("moments")
@lake_dir_argument
@run_option("The lake's run.")
@master_option
@out_option("Write the moments (.parquet, .csv, .json).", required=False, default=None)
@click.option("--store", is_flag=True, help="Add them to the lake as the run's partial moments (runs without any).")
def spark_moments_command(lake_dir: Path, run: str, master: str | None, out: Path | None, store: bool) -> None:
    """Compute a lake run's moments on Spark from its activations, with the warehouse's own SQL (`moments_source`)."""
    import time

    from toolkit.figures.export import write_table
    from toolkit.scale.spark import spark_moments

    if out is None and not store:
        raise UserError("say where the moments go: --out FILE, --store, or both")
    start = time.perf_counter()
    df = spark_moments(lake_dir, run, master, store)
    if out is not None:
        write_table(df, out)
    where = ", ".join([f"written to {out}"] * (out is not None) + [f"stored in {lake_dir}"] * store)
    click.echo(f"moments of run '{run}' on Spark: {df.height:,} rows in {time.perf_counter() - start:.1f} s; {where}")


@spark.command("sql")
@lake_dir_argument
@click.argument("query")
@master_option
@click.option(
    "--dialect",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="duckdb: the query is written as for `neurons query` and transpiled; spark: Spark SQL as is.",
)
@format_options
def spark_sql_command(lake_dir: Path, query: str, master: str | None, dialect: str, fmt: str | None) -> None:
    """Run QUERY on Spark over the lake's runs, with every view and macro of sql/views/010_statistics.sql
    (label_profiles, between_label_variance, crosslingual_correlation, classify_neurons(...), ...)."""
    from toolkit.scale.spark import run_query
    from toolkit.store.query import render

    click.echo(render(run_query(lake_dir, query, master, dialect), fmt or "table"), nl=False)


COMMANDS = [lake, spark]
