"""Commands on the warehouse itself: runs, delete, query, upgrade."""

from __future__ import annotations

import sys

import click

from toolkit.cli.base import Context, format_options, json_option, pass_ctx, run_option
from toolkit.errors import UserError

RUNS_FIRST = ("run", "status", "layers", "split")  # always shown; then others in this order while they fit
RUNS_THEN = (
    "sentences",
    "neurons",
    "site",
    "max_length",
    "pooling",
    "languages",
    "labels",
    "tokenizer",
    "created",
    "truncated",
    "model",
    "statistics_cached",
    "data_file",
    "source",
    "version",
)


@click.command()
@json_option("JSON instead of a table (every column).")
@click.option("--wide", is_flag=True, help="Every column, whatever the terminal's width.")
@pass_ctx
def runs(ctx: Context, as_json: bool, wide: bool) -> None:
    """List every run with its model, data, layers, pooling, split, max length, counts and status (the columns
    that fit the terminal; --wide for all)."""
    import shutil

    from toolkit.store.query import render
    from toolkit.store.warehouse import Warehouse

    with Warehouse(ctx.db, read_only=True) as wh:
        df = wh.runs()
    if as_json or wide:
        click.echo(render(df, "json" if as_json else "table"), nl=False)
        return
    width = shutil.get_terminal_size((120, 24)).columns
    shown = list(RUNS_FIRST)
    for extra in RUNS_THEN:
        trial = render(df.select(*shown, extra), "table")
        if max(len(line) for line in trial.splitlines()) <= width:
            shown.append(extra)
    text = render(df.select(shown), "table")
    hidden = len(df.columns) - len(shown)
    click.echo(text + (f"({hidden} more columns: --wide)\n" if hidden else ""), nl=False)


@click.command()
@run_option("Run to delete, with everything computed from it.", required=False)
@click.option("--ablation", "ablation_id", type=int, default=None, help="One ablation to delete (see ablations).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def delete(ctx: Context, run: str | None, ablation_id: int | None, yes: bool) -> None:
    """Delete a run with its sentences, activations, statistics, significance results and ablations, or one
    ablation with its predictions."""
    from toolkit.store.warehouse import Warehouse

    if (run is None) == (ablation_id is None):
        raise UserError("name what to delete with exactly one of --run or --ablation")
    if run is not None:
        from toolkit.store.claims import check_unclaimed

        check_unclaimed(ctx.db, run)  # not while an extraction writes it
    with Warehouse(ctx.db, create=False) as wh:
        if run is not None:
            found = wh.run(run, complete=False)
            what = f"run '{run}' ({found.n_sentences} sentences)"
        else:
            what = f"ablation {ablation_id} of run '{wh.ablation_run(ablation_id)}'"
        if not yes:
            if not sys.stdin.isatty():
                raise UserError(f"not deleting {what} without confirmation and there is no terminal to ask; pass --yes")
            if not click.confirm(f"delete {what} from {wh.path}?"):
                raise UserError("nothing deleted")
        with wh.transaction():
            if run is not None:
                wh.delete_run(found.id)
            else:
                wh.delete_ablation(ablation_id)
        wh.con.execute("checkpoint")
    click.echo(f"deleted {what} from {ctx.db}")


@click.command()
@click.argument("sql")
@format_options
@pass_ctx
def query(ctx: Context, sql: str, fmt: str | None) -> None:
    """Run read-only SQL on the warehouse (SQL `-` reads it from stdin).

    Tables: runs, sentences, activations; view: activations_long. Writes are refused.
    """
    from toolkit.store.query import render, run_query

    if sql == "-":
        sql = sys.stdin.read()
    click.echo(render(run_query(ctx.db, sql), fmt or "table"), nl=False)


@click.command()
@pass_ctx
def upgrade(ctx: Context) -> None:
    """Migrate a warehouse made by an older version of neurons to this version's schema and views (read-only
    commands refuse an older warehouse rather than change it)."""
    from toolkit.store.warehouse import Warehouse

    with Warehouse(ctx.db, create=False) as wh:
        before, after = wh.upgrade()
    if not wh.migrated:
        changed = "already up to date"
    elif before == after:
        changed = f"upgraded (schema {after}, views refreshed)"
    else:
        changed = f"upgraded (schema {before} -> {after})"
    click.echo(f"{ctx.db}: {changed}")


COMMANDS = [runs, delete, query, upgrade]
