"""The `neurons` command: a thin click layer over the library calls in `toolkit.*`."""

from __future__ import annotations

import errno
import functools
import math
import os
import sys
from pathlib import Path

import click
import polars as pl

from toolkit import __version__
from toolkit.defaults import ALPHA, MIN_EFFECT, THRESHOLD
from toolkit.errors import UserError, first_line
from toolkit.store.warehouse import WRITER_LOCK_WAIT, default_db


def fail(message: str, code: int = 1) -> None:
    click.echo(f"neurons: {message}", err=True)
    sys.exit(code)


INTERRUPTED = (
    "interrupted; what was committed is kept (rerun with --resume to continue an extraction; a lake shard "
    "continues when its command is rerun)"
)


def handled(fn):
    """Turn UserError into one line on stderr; Ctrl-C into a note on what was kept; a bug into one line
    (with the traceback when NEURONS_DEBUG is set)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail(INTERRUPTED, 130)
        except BrokenPipeError:
            sys.exit(0)
        except click.exceptions.Abort:
            fail("aborted", 1)
        except OSError as exc:
            fail(_os_error_line(exc))
        except Exception as exc:
            if type(exc).__name__ == "InterruptException":  # DuckDB's form of Ctrl-C inside a query
                fail(INTERRUPTED, 130)
            if os.environ.get("NEURONS_DEBUG"):
                raise
            fail(
                f"internal error: {type(exc).__name__}: {first_line(exc)} (rerun with NEURONS_DEBUG=1 for the traceback "
                "and report it)",
                70,
            )

    return wrapper


def _os_error_line(exc: OSError) -> str:
    """A user-caused file system failure (disk full, no permission, a missing folder) in one line."""
    where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if getattr(exc, "errno", None) == errno.ENOSPC:
        reason = "no space left on the device"
    return f"cannot write or read{where}: {reason[:1].lower() + reason[1:]}"


class OneLineGroup(click.Group):
    """Usage errors (a bad option, a missing argument, a --db folder) as one line on stderr, like every other
    error, instead of click's usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            fail("aborted", 1)
        except click.ClickException as exc:
            fail(f"{exc.format_message()} (see `neurons --help`)".replace("\n", " "), exc.exit_code)
        if isinstance(code, int) and code and standalone_mode:
            sys.exit(code)
        return code


class Context:
    def __init__(self, db: Path):
        self.db = db


pass_ctx = click.make_pass_decorator(Context)


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    envvar="NEURONS_DB",
    default=None,
    help="Warehouse file (env NEURONS_DB; default warehouse/activations.duckdb).",
)
@click.version_option(__version__, prog_name="neurons")
@click.pass_context
def cli(ctx: click.Context, db: Path | None) -> None:
    """Neuron-level analysis of text encoders across languages.

    Extract activations of a fine-tuned encoder into a DuckDB warehouse, then query them with SQL.
    Start with `neurons demo`.
    """
    ctx.obj = Context(db or default_db())


def finite(ctx, param, value):
    """A float option that must be a finite number."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number", ctx, param)
    return value


def probability(ctx, param, value):
    """A float option strictly between 0 and 1."""
    if value is not None and not 0 < value < 1:
        raise click.BadParameter(f"{value} must be strictly between 0 and 1", ctx, param)
    return value


def effect_size(ctx, param, value):
    """An effect-size option in [0, 1)."""
    if value is not None and not 0 <= value < 1:
        raise click.BadParameter(f"{value} must be in [0, 1)", ctx, param)
    return value


def at_least(minimum: int):
    """An int option of at least MINIMUM."""

    def check(ctx, param, value):
        if value is not None and value < minimum:
            raise click.BadParameter(f"{value} must be at least {minimum}", ctx, param)
        return value

    return check


def threshold_option(help_text: str = "Activity threshold on mean z."):
    return click.option(
        "--threshold", type=float, default=THRESHOLD, show_default=True, callback=finite, help=help_text
    )


DATA_DEFAULTS = {
    "text_column": "text",
    "language_column": "language",
    "label_column": "label",
    "id_column": None,
    "split_column": None,
}


def data_options(fn):
    """The options that say which columns of a data file hold what."""
    for opt in reversed(
        [
            click.option("--text-column", default="text", show_default=True, help="Column with the sentence."),
            click.option(
                "--language-column", default="language", show_default=True, help="Column with the language code."
            ),
            click.option("--label-column", default="label", show_default=True, help="Column with the gold label."),
            click.option("--id-column", default=None, help="Column with unique sentence ids (default: row numbers)."),
            click.option(
                "--split-column", default=None, help="Column with the split (default 'split' when --split is given)."
            ),
            click.option(
                "--split", "splits", default=None, help="Keep only these splits, comma-separated, e.g. dev,test."
            ),
            click.option("--limit", type=int, default=None, help="Use only the first N sentences (after --split)."),
        ]
    ):
        fn = opt(fn)
    return fn


@cli.command()
@click.argument("model")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--run", required=True, help="Name of the run to create.")
@data_options
@click.option(
    "--layers",
    default="-2",
    show_default=True,
    help="hidden_states indices: 11 | 6,11 | -2 (penultimate) | all. 0 is the embedding output.",
)
@click.option(
    "--pooling",
    type=click.Choice(["cls", "mean", "active"]),
    default="cls",
    show_default=True,
    help="First token ([CLS]/<s>), the mean over non-padding tokens, or (ffn) the share of tokens active (> 0).",
)
@click.option(
    "--site",
    type=click.Choice(["residual", "ffn"]),
    default="residual",
    show_default=True,
    help="residual: the hidden states; ffn: the feed-forward activations after the nonlinearity (blocks 1..n).",
)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--max-length", type=int, default=None, help="Truncate longer inputs (default: the model's limit).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16", "bfloat16"]),
    default="float32",
    show_default=True,
    help="Model weights' dtype; activations are stored as float32.",
)
@click.option(
    "--no-predictions",
    is_flag=True,
    help="Skip the classification head: no predicted labels, and no compute above the deepest layer.",
)
@click.option(
    "--commit-every",
    type=int,
    default=1024,
    show_default=True,
    help="Sentences per committed chunk (what an interruption can lose at most).",
)
@click.option(
    "--allow-unk",
    is_flag=True,
    help="Extract even when the tokenizer maps over 5 % of a language's tokens to the unknown token.",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run with the same settings.")
@click.option("--replace", is_flag=True, help="Redo the run from scratch if it exists.")
@click.option(
    "--lake",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Write to the Delta Lake in this folder instead of the warehouse (with --shard; see `neurons lake`).",
)
@click.option(
    "--shard",
    default=None,
    metavar="K/N",
    help="With --lake: extract shard K (0-based) of N; rerunning a committed shard is a no-op.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@pass_ctx
@handled
def extract(
    ctx: Context,
    model: str,
    data: Path,
    run: str,
    text_column: str,
    language_column: str,
    label_column: str,
    id_column: str | None,
    split_column: str | None,
    splits: str | None,
    limit: int | None,
    layers: str,
    pooling: str,
    site: str,
    batch_size: int,
    max_length: int | None,
    device: str,
    dtype: str,
    no_predictions: bool,
    commit_every: int,
    allow_unk: bool,
    resume: bool,
    replace: bool,
    lake: Path | None,
    shard: str | None,
    quiet: bool,
) -> None:
    """Extract pooled activations of MODEL (checkpoint directory or hub id) on DATA into a run.

    DATA is CSV, TSV, JSONL or Parquet with text, language and label columns. With --lake DIR --shard K/N the
    run is one of N shards written to a Delta Lake, for clusters (README, "Beyond one machine").
    """
    from toolkit.capture.datasets import read_dataset
    from toolkit.capture.extract import ExtractOptions
    from toolkit.capture.extract import extract as run_extract
    from toolkit.figures.report_text import extraction_summary

    if (lake is None) != (shard is None):
        raise UserError("--lake and --shard go together: --lake DIR --shard K/N (use --shard 0/1 for one process)")
    if lake is not None and (resume or replace):
        raise UserError("a lake shard resumes by itself (rerun the same command); drop --resume/--replace")
    dataset = read_dataset(
        data,
        text_column,
        language_column,
        label_column,
        id_column,
        split_column,
        splits.split(",") if splits else None,
        limit,
    )
    options = ExtractOptions(
        layers=layers,
        pooling=pooling,
        site=site,
        batch_size=batch_size,
        max_length=max_length,
        device=device,
        dtype=dtype,
        predictions=not no_predictions,
        commit_every=commit_every,
    )
    if lake is not None:
        from toolkit.scale.lake import parse_shard
        from toolkit.scale.shards import extract_shard

        k_of_n = parse_shard(shard)
        click.echo(extract_shard(lake, model, dataset, run, k_of_n, options, not quiet, allow_unk).text())
        return
    summary = run_extract(
        ctx.db,
        model,
        dataset,
        run,
        options,
        resume=resume,
        replace=replace,
        progress=not quiet,
        allow_unknown=allow_unk,
    )
    click.echo(extraction_summary(summary))


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--run", required=True, help="Name of the run to create.")
@click.option("--replace", is_flag=True, help="Replace the run if it exists.")
@click.option(
    "--site",
    type=click.Choice(["residual", "ffn"]),
    default="residual",
    show_default=True,
    help="What the values are: hidden states or feed-forward activations.",
)
@click.option(
    "--pooling",
    type=click.Choice(["cls", "mean", "active"]),
    default=None,
    help="How they were pooled (active: token shares, with an n_tokens column; LAPE reads these).",
)
@click.option(
    "--memory",
    default=None,
    metavar="SIZE",
    help="For a folder or Delta table: DuckDB's memory limit during the import (e.g. 4GB; beyond it, it spills to disk).",
)
@pass_ctx
@handled
def load(ctx: Context, file: Path, run: str, replace: bool, site: str, pooling: str | None, memory: str | None) -> None:
    """Import a long-format table of activations made elsewhere: a Parquet, CSV, TSV or JSONL file, or a folder
    of Parquet files or a Delta table (imported one layer at a time, in bounded memory).

    Columns: sentence_id, language, label, layer, neuron, value; text and n_tokens optional.
    """
    if file.is_dir():
        from toolkit.capture.bulk_load import load_folder

        summary = load_folder(ctx.db, file, run, replace=replace, site=site, pooling=pooling, memory_limit=memory)
    else:
        from toolkit.capture.load import load_long

        summary = load_long(ctx.db, file, run, replace=replace, site=site, pooling=pooling)
    click.echo(
        f"loaded run '{run}' into {ctx.db}: {summary['n_sentences']} sentences, layers {summary['layers']}, "
        f"{summary['hidden_size']} neurons, {summary['n_values']:,} values"
    )


RUNS_FIRST = ("run", "status", "layers", "split")  # always shown; then others in this order while they fit
RUNS_THEN = (
    "sentences",
    "neurons",
    "site",
    "max_length",
    "pooling",
    "languages",
    "labels",
    "created",
    "truncated",
    "model",
    "statistics_cached",
    "data_file",
    "source",
    "version",
)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table (every column).")
@click.option("--wide", is_flag=True, help="Every column, whatever the terminal's width.")
@pass_ctx
@handled
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


@cli.command()
@click.option("--run", default=None, help="Run to delete, with everything computed from it.")
@click.option("--ablation", "ablation_id", type=int, default=None, help="One ablation to delete (see ablations).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
@handled
def delete(ctx: Context, run: str | None, ablation_id: int | None, yes: bool) -> None:
    """Delete a run with its sentences, activations, statistics, significance results and ablations, or one
    ablation with its predictions."""
    from toolkit.store.warehouse import Warehouse

    if (run is None) == (ablation_id is None):
        raise UserError("name what to delete with exactly one of --run or --ablation")
    with Warehouse(ctx.db, create=False) as wh:
        if run is not None:
            row = wh.run_row(run)
            if row is None:
                wh.run_id(run)  # the error naming the runs there are
            what = f"run '{run}' ({row['n_sentences']} sentences)"
        else:
            found = wh.sql(
                "select a.ablation_id, r.name from ablations a join runs r using (run_id) where ablation_id = ?",
                [ablation_id],
            )
            if not found.height:
                known = wh.sql("select ablation_id from ablations order by 1")["ablation_id"].to_list()
                raise UserError(
                    f"no ablation {ablation_id} in {wh.path} (ablations: {', '.join(map(str, known)) or 'none'})"
                )
            what = f"ablation {ablation_id} of run '{found['name'][0]}'"
        if not yes:
            if not sys.stdin.isatty():
                raise UserError(f"not deleting {what} without confirmation and there is no terminal to ask; pass --yes")
            if not click.confirm(f"delete {what} from {wh.path}?"):
                raise UserError("nothing deleted")
        with wh.transaction():
            if run is not None:
                wh.delete_run(int(row["run_id"]))
            else:
                wh.delete_ablation(ablation_id)
        wh.con.execute("checkpoint")
    click.echo(f"deleted {what} from {ctx.db}")


@cli.command()
@click.argument("sql")
@click.option("--csv", "fmt", flag_value="csv", help="CSV output.")
@click.option("--json", "fmt", flag_value="json", help="JSON output (a list of rows).")
@click.option("--markdown", "fmt", flag_value="markdown", help="Markdown table output.")
@pass_ctx
@handled
def query(ctx: Context, sql: str, fmt: str | None) -> None:
    """Run read-only SQL on the warehouse (SQL `-` reads it from stdin).

    Tables: runs, sentences, activations; view: activations_long. Writes are refused.
    """
    from toolkit.store.query import render, run_query

    if sql == "-":
        sql = sys.stdin.read()
    click.echo(render(run_query(ctx.db, sql), fmt or "table"), nl=False)


@cli.command()
@click.option("--run", required=True, help="Run to analyse.")
@click.option("--layer", type=int, default=None, help="Layer (default: the penultimate stored layer).")
@click.option(
    "--sweep", is_flag=True, help="The layer sweep: one row per stored layer instead of one layer's findings."
)
@click.option(
    "--layers",
    "layers_alias",
    type=click.Choice(["all"]),
    default=None,
    hidden=True,
    help="Deprecated spelling of --sweep.",
)
@threshold_option()
@click.option("--abs", "absolute", is_flag=True, help="Classify on |mean z| instead of mean z.")
@click.option(
    "--top",
    type=int,
    default=10,
    show_default=True,
    callback=at_least(1),
    help="How many top-variance neurons to list.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
@pass_ctx
@handled
def analyze(
    ctx: Context,
    run: str,
    layer: int | None,
    sweep: bool,
    layers_alias: str | None,
    threshold: float,
    absolute: bool,
    top: int,
    as_json: bool,
) -> None:
    """The paper's findings for one run and layer: top-variance neurons, language-pair consistency,
    neuron classes per label and monolingual neurons per language. With --layers all, the layer sweep."""
    from toolkit.stats.analysis import analyze as run_analyze
    from toolkit.stats.analysis import caveats, criteria_headline, layer_sweep
    from toolkit.store.query import render, to_json
    from toolkit.store.warehouse import Warehouse

    with Warehouse(ctx.db, read_only=True) as wh:
        if layers_alias:
            click.echo("neurons: note: `analyze --layers all` is now `analyze --sweep`", err=True)
        if sweep or layers_alias:
            table = layer_sweep(wh, run, threshold, absolute)
            click.echo(render(table, "json" if as_json else "table", float_precision=3), nl=False)
            return
        f = run_analyze(wh, run, layer, threshold, absolute, top)
        notes = caveats(wh, f.run, f.layer)
        agreement = criteria_headline(wh, f.run, f.layer)
        accuracy = wh.sql(
            "select language, n_sentences, accuracy, macro_f1, chance_high, at_chance from evaluation "
            "where run = ? order by language",
            [f.run],
        )
    if as_json:
        click.echo(
            to_json(
                {**f.as_dict(), "evaluation": accuracy.to_dicts(), "caveats": notes, "agreement": agreement.to_dicts()}
            )
        )
        return
    rule = "|P|" if absolute else "P"
    sections = [
        (f"Top {top} neurons by between-label variance (Section 2.3)", f.top_variance),
        ("Cross-lingual consistency per language pair, mean over labels (Section 3.2)", f.language_pairs),
        (f"Neuron classes per label, share of the layer's neurons ({rule} > {threshold}; Section 3.3)", f.class_shares),
        (f"Monolingual neurons per language ({rule} > {threshold}; Section 4)", f.monolingual),
    ]
    if agreement.height:
        sections.append(
            (
                "Agreement of neuron criteria: Jaccard of their top-10 and top-50 sets, Spearman of their "
                "rankings (view criteria_agreement; probe after `neurons probe`)",
                agreement,
            )
        )
    if accuracy.height:
        sections.insert(
            0, ("Model accuracy per language (at_chance: macro-F1 within the binomial interval of guessing)", accuracy)
        )
    click.echo(f"run '{f.run}', layer {f.layer}")
    for note in notes:
        click.echo(f"note: {note}")
    for title, df in sections:
        click.echo(f"\n{title}\n" + render(df, "table", float_precision=3), nl=False)


@cli.command()
@click.argument(
    "name",
    type=click.Choice(
        [
            "label-variance",
            "correlation",
            "ceiling",
            "agreement",
            "profiles",
            "classes",
            "monolingual",
            "variance-ranking",
            "classes-null",
            "layers",
            "ablation",
        ]
    ),
)
@click.option("--run", required=True, help="Run to chart.")
@click.option("--layer", type=int, default=None, help="Layer (default: the penultimate stored layer).")
@click.option("--label", default=None, help="profiles: the label to draw (default: sadness, else the first).")
@click.option("--labels", default=None, help="label-variance: labels to draw, comma-separated (default: all).")
@click.option(
    "--metric",
    type=click.Choice(["spearman", "cosine"]),
    default="spearman",
    show_default=True,
    help="correlation: which similarity.",
)
@click.option(
    "--top", type=int, default=5, show_default=True, callback=at_least(1), help="Top neurons marked per panel."
)
@threshold_option("classes, monolingual: threshold.")
@click.option("--abs", "absolute", is_flag=True, help="classes, monolingual: use |mean z|.")
@click.option(
    "--ablation", "ablation_id", type=int, default=None, help="ablation: which one (default: the run's latest)."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Output file: .png, .svg, .pdf or .html.",
)
@pass_ctx
@handled
def chart(
    ctx: Context,
    name: str,
    run: str,
    layer: int | None,
    label: str | None,
    labels: str | None,
    metric: str,
    top: int,
    threshold: float,
    absolute: bool,
    ablation_id: int | None,
    out: Path,
) -> None:
    """Draw one figure from the statistics views.

    \b
    label-variance    Figure 1: variance of z within each label, every neuron
    correlation       Figure 2: cross-lingual Spearman (or cosine) heatmap
    ceiling           beside Figure 2: noise ceiling and disattenuated Spearman
    agreement         neuron criteria (variance, eta squared, probe): Jaccard of top-k sets
    profiles          Figure 3: mean z of each language's top neurons for one label (heatmap)
    classes           neuron classes per label, stacked
    monolingual       monolingual neurons per language
    variance-ranking  between-label variance in rank order
    classes-null      class counts against the permutation null (after `neurons significance`)
    layers            class shares and mean Spearman per pair across layers
    ablation          change in macro-F1 per language under an ablation (--ablation ID, default: latest)
    """
    from toolkit.figures.charts import FORMATS, ChartOptions, build, save
    from toolkit.store.warehouse import Warehouse

    if out.suffix.lower() not in FORMATS:
        raise UserError(f"--out {out}: unsupported extension '{out.suffix}'; use one of {', '.join(FORMATS)}")
    with Warehouse(ctx.db, read_only=True) as wh:
        c = build(
            wh,
            name,
            ChartOptions(
                run=run,
                layer=layer,
                label=label,
                labels=labels.split(",") if labels else None,
                metric=metric,
                top=top,
                threshold=threshold,
                absolute=absolute,
                ablation=ablation_id,
            ),
        )
    click.echo(f"wrote {save(c, out)}")


@cli.command()
@click.option("--run", required=True, help="Run to report on.")
@click.option("--layer", type=int, default=None, help="Layer (default: the penultimate stored layer).")
@threshold_option("Threshold of the neuron classes.")
@click.option("--abs", "absolute", is_flag=True, help="Classify on |mean z|.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@pass_ctx
@handled
def report(ctx: Context, run: str, layer: int | None, threshold: float, absolute: bool, out: Path) -> None:
    """Write a self-contained HTML report (works offline) with every chart, the key tables and the
    definitions, plus PNG/SVG charts, CSV/LaTeX tables and a Markdown summary."""
    from toolkit.figures.report import build_report

    click.echo(f"wrote {build_report(ctx.db, run, out, layer, threshold, absolute)}")


@cli.command()
@click.argument("what")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Output file: .csv, .parquet, .json, .md or .tex.",
)
@click.option("--run", default=None, help="With a view name: keep this run.")
@click.option("--layer", type=int, default=None, help="With a view name: keep this layer.")
@click.option("--caption", default=None, help="LaTeX caption.")
@click.option("--label", "tex_label", default=None, help="LaTeX \\label.")
@click.option("--precision", type=int, default=3, show_default=True, help="Decimals for floats in .tex and .md.")
@pass_ctx
@handled
def export(
    ctx: Context,
    what: str,
    out: Path,
    run: str | None,
    layer: int | None,
    caption: str | None,
    tex_label: str | None,
    precision: int,
) -> None:
    """Export a view or table (by name) or a read-only SQL query (`-` for stdin) to a file for a paper."""
    from toolkit.figures.export import TABLE_FORMATS, export_query, write_table

    if out.suffix.lower() not in TABLE_FORMATS:
        raise UserError(f"--out {out}: unsupported extension '{out.suffix}'; use one of {', '.join(TABLE_FORMATS)}")
    if what == "-":
        what = sys.stdin.read()
    df = export_query(ctx.db, what, run, layer)
    write_table(df, out, caption, tex_label, precision)
    click.echo(f"wrote {df.height} rows to {out}")


@cli.command()
@click.option("--run", required=True, help="Run to test.")
@click.option("--layer", type=int, default=None, help="Layer (default: the penultimate stored layer).")
@click.option("--permutations", type=int, default=1000, show_default=True, help="Label permutations for the nulls.")
@click.option("--bootstraps", type=int, default=1000, show_default=True, help="Bootstrap resamples for the intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same results).")
@threshold_option("Threshold of the neuron classes.")
@click.option("--abs", "absolute", is_flag=True, help="Classify on |mean z|.")
@click.option(
    "--alpha",
    type=float,
    default=ALPHA,
    show_default=True,
    callback=probability,
    help="q-value cut for label-sensitive neurons.",
)
@click.option(
    "--min-effect",
    type=float,
    default=MIN_EFFECT,
    show_default=True,
    callback=effect_size,
    help="Pooled eta squared a label-sensitive neuron needs besides q < alpha (0.01: a small effect).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@pass_ctx
@handled
def significance(
    ctx: Context,
    run: str,
    layer: int | None,
    permutations: int,
    bootstraps: int,
    seed: int,
    threshold: float,
    absolute: bool,
    alpha: float,
    min_effect: float,
    as_json: bool,
    quiet: bool,
) -> None:
    """Test the findings against chance: permutation nulls of the class counts and of each neuron's
    between-label variance (with Benjamini-Hochberg q-values), bootstrap intervals of Spearman's rho,
    and ANOVA across labels. Results are stored in the warehouse (views class_significance,
    neuron_significance, correlation_intervals, anova_significance, sensitive_neurons)."""
    from tqdm import tqdm

    from toolkit.stats.significance import SignificanceOptions, store
    from toolkit.stats.significance import significance as run_significance
    from toolkit.store.query import render, to_json
    from toolkit.store.warehouse import WRITER_LOCK_WAIT, Warehouse

    options = SignificanceOptions(permutations, bootstraps, seed, threshold, absolute, alpha, min_effect)
    Warehouse(ctx.db, create=False).close()  # a writing command: migrate an older warehouse first
    with Warehouse(ctx.db, read_only=True) as wh:  # computed without holding the write lock
        wh.run_id(run)
        bar = tqdm(
            total=permutations + bootstraps, unit="resample", desc="significance", disable=quiet, file=sys.stderr
        )
        result = run_significance(wh, run, layer, options, progress=bar.update)
        bar.close()
    with Warehouse(ctx.db, create=False, lock_wait=WRITER_LOCK_WAIT) as wh:
        store(wh, result)
        counts = wh.sensitive_counts(result.run, result.layer)
    if as_json:
        click.echo(
            to_json(
                {
                    "run": result.run,
                    "layer": result.layer,
                    **result.settings,
                    "seconds": result.seconds,
                    "q_significant_neurons": counts["q_significant"],
                    "sensitive_neurons": counts["sensitive"],
                    "counts": result.counts.to_dicts(),
                    "correlation": result.correlation.filter(result.correlation["label"].is_null()).to_dicts(),
                }
            )
        )
        return
    click.echo(
        f"run '{result.run}', layer {result.layer}: {permutations} permutations, {bootstraps} bootstraps, "
        f"seed {seed} ({result.seconds:.1f} s)"
    )
    click.echo(
        f"\nLabel-sensitive neurons (between-label variance) of {counts['n_neurons']}: "
        f"{counts['q_significant']} with BH q < {alpha}; {counts['sensitive']} with q < {alpha} and pooled "
        f"eta squared >= {min_effect} (view sensitive_neurons). The smallest p-value {permutations} "
        f"permutations can give is {1 / (permutations + 1):.4f}."
    )
    click.echo(
        "\nClass counts against the permutation null (labels shuffled within language)\n"
        + render(result.counts, "table", float_precision=3),
        nl=False,
    )
    click.echo(
        "\nMean Spearman per language pair with basic bootstrap 95 % intervals (bias = bootstrap mean - "
        "estimate; min_cell = smallest cell, coverage is nominal from about 20 sentences)\n"
        + render(
            result.correlation.filter(result.correlation["label"].is_null()).drop("label"), "table", float_precision=3
        ),
        nl=False,
    )


@cli.command()
@click.argument("base")
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Checkpoint folder to write."
)
@data_options
@click.option("--train-languages", default=None, help="Train on these languages only, comma-separated (e.g. en).")
@click.option(
    "--head",
    type=click.Choice(["linear", "default"]),
    default="linear",
    show_default=True,
    help="linear: one linear layer over [CLS], as in the paper; default: the architecture's head.",
)
@click.option("--epochs", type=int, default=3, show_default=True)
@click.option("--lr", type=float, default=2e-5, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--max-length", type=int, default=128, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option(
    "--allow-unk",
    is_flag=True,
    help="Train even when the tokenizer maps over 5 % of a language's tokens to the unknown token.",
)
@click.option(
    "--eval-split",
    default=None,
    help="Score the sentences of this split (all languages) after each epoch: accuracy and macro-F1 per language.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
@handled
def finetune(
    click_ctx: click.Context,
    base: str,
    data: Path,
    out: Path,
    text_column: str,
    language_column: str,
    label_column: str,
    id_column: str | None,
    split_column: str | None,
    splits: str | None,
    limit: int | None,
    train_languages: str | None,
    head: str,
    epochs: int,
    lr: float,
    batch_size: int,
    max_length: int,
    seed: int,
    device: str,
    allow_unk: bool,
    eval_split: str | None,
    quiet: bool,
) -> None:
    """Fine-tune checkpoint BASE on DATA with cross-entropy over its labels; save a classifier checkpoint
    (with id2label and a record of how it was made, neurons-finetune.json) that `extract` and `ablate`
    accept. E.g. --train-languages en --split train --eval-split test. With --db the record is also stored
    in that warehouse (view finetunes)."""
    from toolkit.capture.datasets import read_dataset
    from toolkit.capture.finetune import FinetuneOptions
    from toolkit.capture.finetune import finetune as run_finetune
    from toolkit.store.output import check_writable_dir
    from toolkit.store.warehouse import Warehouse

    check_writable_dir(out)
    options = FinetuneOptions(head, epochs, lr, batch_size, max_length, seed, device, allow_unk)
    db = click_ctx.find_root().params.get("db")
    if db is not None:
        Warehouse(db, create=False).close()  # the record's warehouse must exist (and be one) before training
    columns = (text_column, language_column, label_column, id_column)
    dataset = read_dataset(data, *columns, split_column, splits.split(",") if splits else None, limit)
    frame = dataset.frame
    if train_languages:
        wanted = [x.strip() for x in train_languages.split(",")]
        frame = frame.filter(frame["language"].is_in(wanted))
        if not frame.height:
            raise UserError(
                f"no sentences in {', '.join(wanted)} (languages: "
                f"{', '.join(sorted(dataset.frame['language'].unique().to_list()))})"
            )
    held_out = None
    if eval_split:
        held_out = read_dataset(data, *columns, split_column or "split", [eval_split], None).frame
        overlap = held_out.join(frame, on="sentence_id", how="semi").height
        if overlap:
            raise UserError(
                f"--eval-split {eval_split} shares {overlap} sentence(s) with the training sentences; "
                "choose --split and --eval-split so that they do not overlap"
            )
    source = {
        "data_file": str(dataset.path),
        "data_sha256": dataset.sha256,
        **dataset.options,
        "train_languages": train_languages,
        "eval_split": eval_split,
    }
    done = run_finetune(base, frame, out, options, held_out, source, progress=not quiet)
    if db is not None:
        from toolkit.capture.finetune import store_record

        with Warehouse(db, create=False, lock_wait=WRITER_LOCK_WAIT) as wh:
            finetune_id = store_record(wh, out, done.record)
        click.echo(f"record stored in {db} (finetunes, id {finetune_id})")
    r = done.result
    held = ""
    if r.history and "scores" in r.history[-1]:
        held = "; held-out macro-F1 " + ", ".join(
            f"{s['language']} {s['macro_f1']:.3f}" for s in r.history[-1]["scores"]
        )
    click.echo(
        f"fine-tuned on {frame.height} sentences ({head} head): loss {r.losses[0]:.3f} -> {r.losses[-1]:.3f}, "
        f"training accuracy {r.train_accuracy:.3f}{held}; saved to {out} (record: neurons-finetune.json)"
    )


@cli.command()
@click.argument("model", required=False)
@click.argument("data", type=click.Path(path_type=Path), required=False)
@click.option("--run", required=True, help="Run whose layer, neurons and means are used.")
@click.option("--layer", type=int, required=True, help="Ablate at hidden_states[LAYER] (the output of block LAYER).")
@data_options
@click.option("--neurons", default=None, help="Target neurons, comma-separated.")
@click.option(
    "--query", default=None, help="Read-only SQL returning a neuron column, e.g. polyglot neurons for a label."
)
@click.option("--top-variance", type=int, default=None, help="The K neurons of highest between-label variance.")
@click.option("--mode", type=click.Choice(["zero", "mean"]), default="zero", show_default=True)
@click.option(
    "--mean-scope",
    type=click.Choice(["language", "pooled"]),
    default="language",
    show_default=True,
    help="mode mean: each sentence's language mean, or the mean over all the run's sentences.",
)
@click.option("--positions", type=click.Choice(["cls", "all"]), default="cls", show_default=True)
@click.option("--controls", type=int, default=10, show_default=True, help="Random control sets of the same size.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--max-length", type=int, default=None)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option(
    "--data-override",
    is_flag=True,
    help="Accept DATA whose sentences differ from the run's (texts, languages, labels).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@pass_ctx
@handled
def ablate(
    ctx: Context,
    model: str | None,
    data: Path | None,
    run: str,
    layer: int,
    text_column: str,
    language_column: str,
    label_column: str,
    id_column: str | None,
    split_column: str | None,
    splits: str | None,
    limit: int | None,
    neurons: str | None,
    query: str | None,
    top_variance: int | None,
    mode: str,
    mean_scope: str,
    positions: str,
    controls: int,
    seed: int,
    batch_size: int,
    max_length: int | None,
    device: str,
    data_override: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Ablate a neuron set inside MODEL at one layer, re-predict DATA, and compare per language with the
    unablated model and with random control sets of the same size. MODEL and DATA default to the run's own
    (DATA with the run's columns and splits unless --split/--limit say otherwise). Results: views
    ablation_summary, ablation_scores and ablation_recall."""
    from toolkit.capture.datasets import read_dataset
    from toolkit.causal.ablate import AblateOptions, rank_in_words, run_inputs
    from toolkit.causal.ablate import ablate as run_ablate
    from toolkit.store.query import render, to_json

    options = AblateOptions(
        layer,
        neurons,
        query,
        top_variance,
        mode,
        mean_scope,
        positions,
        controls,
        seed,
        batch_size,
        max_length,
        device,
        data_override,
    )
    model, data, read = run_inputs(ctx.db, run, model, data)
    given = {
        "text_column": text_column,
        "language_column": language_column,
        "label_column": label_column,
        "id_column": id_column,
        "split_column": split_column,
    }
    if data is not None and read and all(v == DATA_DEFAULTS.get(k) for k, v in given.items()):
        given = {k: read.get(k, v) for k, v in given.items()}  # the run's own data: read as the run read it
    chosen_splits = splits.split(",") if splits else (read.get("splits") if read and not limit else None)
    dataset = read_dataset(data, *given.values(), chosen_splits, limit)
    result = run_ablate(ctx.db, model, dataset, run, options, progress=not quiet)
    for w in result.warnings:
        click.echo(f"neurons: warning: {w}", err=True)
    if as_json:
        click.echo(
            to_json(
                {
                    "ablation_id": result.ablation_id,
                    "summary": result.summary.to_dicts(),
                    "recall": result.recall.to_dicts(),
                }
            )
        )
        return
    cols = [
        "language",
        "n_sentences",
        "baseline_macro_f1",
        "target_macro_f1",
        "delta_macro_f1",
        "control_mean_delta_macro_f1",
        "baseline_accuracy",
        "target_accuracy",
        "delta_accuracy",
        "target_rank",
        "n_controls",
    ]
    click.echo(
        f"ablation {result.ablation_id}: macro-F1 and accuracy per language, target set against {controls} random "
        "controls (rank 1 = the largest drop in macro-F1)\n"
        + render(result.summary.select(cols), "table", float_precision=3),
        nl=False,
    )
    click.echo(rank_in_words(result.summary))
    worst = (
        result.recall.sort("delta_recall")
        .head(10)
        .select("language", "label", "baseline_recall", "target_recall", "delta_recall", "control_mean_delta_recall")
    )
    click.echo("\nLargest recall drops under the target set\n" + render(worst, "table", float_precision=3), nl=False)


def languages_option(text: str | None) -> tuple[str, ...] | None:
    return tuple(x.strip() for x in text.split(",") if x.strip()) if text else None


@cli.command()
@click.option("--run", required=True, help="Run to probe.")
@click.option("--layer", type=int, default=None, help="Layer (default: the penultimate stored layer).")
@click.option("--train-languages", default=None, help="Train on these languages, comma-separated (default: all).")
@click.option("--test-languages", default=None, help="Score on these languages, comma-separated (default: all).")
@click.option("--l1", type=float, default=1e-3, show_default=True, callback=finite, help="L1 penalty (elastic net).")
@click.option("--l2", type=float, default=1e-3, show_default=True, callback=finite, help="L2 penalty (elastic net).")
@click.option("--top", default="10,50,100", show_default=True, help="k values: probes on the top-k neurons only.")
@click.option(
    "--controls",
    type=int,
    default=10,
    show_default=True,
    callback=at_least(0),
    help="Random k-sets per k for the top-k comparison.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@pass_ctx
@handled
def probe(
    ctx: Context,
    run: str,
    layer: int | None,
    train_languages: str | None,
    test_languages: str | None,
    l1: float,
    l2: float,
    top: str,
    controls: int,
    seed: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Linear probes (elastic-net logistic regression on the layer's z-scores) predicting the label: accuracy and
    macro-F1 per train x test language with a control task's selectivity, neurons ranked by weight mass, and
    probes on the top-k neurons against random k-sets. Stored in the warehouse (views probe_scores,
    probe_rankings, probe_topk, criteria_agreement)."""
    from tqdm import tqdm

    from toolkit.stats.probe import ProbeOptions, store
    from toolkit.stats.probe import probe as run_probe
    from toolkit.store.query import render, to_json
    from toolkit.store.warehouse import Warehouse

    try:
        ks = tuple(int(x) for x in top.split(",") if x.strip())
    except ValueError:
        raise UserError(f"--top {top!r}: give comma-separated numbers, e.g. 10,50,100") from None
    options = ProbeOptions(
        languages_option(train_languages), languages_option(test_languages), l1, l2, ks, controls, seed
    )
    Warehouse(ctx.db, create=False).close()  # a writing command: migrate an older warehouse first
    with Warehouse(ctx.db, read_only=True) as wh:
        wh.run_id(run)
        with tqdm(desc="probe", unit="fit", disable=quiet, file=sys.stderr) as bar:
            result = run_probe(wh, run, layer, options, progress=bar.update)
    with Warehouse(ctx.db, create=False, lock_wait=WRITER_LOCK_WAIT) as wh:
        probe_id = store(wh, result)
    if as_json:
        click.echo(
            to_json(
                {
                    "probe_id": probe_id,
                    "run": result.run,
                    "layer": result.layer,
                    "scores": result.scores.to_dicts(),
                    "topk": result.topk.to_dicts(),
                }
            )
        )
        return
    click.echo(f"probe {probe_id}: run '{result.run}', layer {result.layer} ({result.seconds:.1f} s)")
    scores = result.scores.with_columns((pl.col("accuracy") - pl.col("control_accuracy")).alias("selectivity"))
    click.echo(
        "\nAccuracy and macro-F1 per train x test language (held-out sentences; selectivity = accuracy - "
        "control task)\n" + render(scores, "table", float_precision=3),
        nl=False,
    )
    if result.topk.height:
        click.echo(
            "\nProbes on the top-k neurons (by weight mass) against random k-sets\n"
            + render(result.topk, "table", float_precision=3),
            nl=False,
        )


@cli.command()
@click.argument("neuron", type=int)
@click.option("--run", required=True, help="Run to look in.")
@click.option("--layer", type=int, default=None, help="Layer (default: the penultimate stored layer).")
@click.option(
    "--sentences",
    type=int,
    default=5,
    show_default=True,
    callback=at_least(0),
    help="Most and least activating sentences shown per language.",
)
@threshold_option("Threshold of the neuron classes.")
@click.option("--abs", "absolute", is_flag=True, help="Classify on |mean z|.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@pass_ctx
@handled
def neuron(
    ctx: Context,
    neuron: int,
    run: str,
    layer: int | None,
    sentences: int,
    threshold: float,
    absolute: bool,
    as_json: bool,
) -> None:
    """One neuron's card: its label x language profile, class per label, variance rank, significance,
    ablations that held it, and the sentences that activate it most and least in each language."""
    from toolkit.stats.explorer import card_text, cards_json, neuron_cards
    from toolkit.store.query import render, to_json
    from toolkit.store.warehouse import Warehouse

    with Warehouse(ctx.db, read_only=True) as wh:
        cards = neuron_cards(wh, run, layer, [neuron], sentences, threshold, absolute)
    if as_json:
        click.echo(to_json(cards_json(cards)))
    else:
        click.echo(card_text(cards, neuron, render), nl=False)


@cli.command()
@pass_ctx
@handled
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


@cli.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("warehouse"),
    show_default=True,
    help="Folder for the demo model and warehouse.",
)
@click.option("--epochs", type=int, default=30, show_default=True, help="Training epochs of the tiny classifier.")
@handled
def demo(out: Path, epochs: int) -> None:
    """Train a tiny XLM-R classifier on the bundled sample and extract it (illustrative only)."""
    from toolkit.cli.demo import run_demo

    run_demo(out, epochs=epochs)


@cli.group(cls=OneLineGroup)
def lake() -> None:
    """Runs extracted in shards into a Delta Lake folder: their progress, and bringing them to the warehouse."""


@lake.command("status")
@click.argument("lake_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--run", default=None, help="The run to report on (default: one line per run of the lake).")
@click.option("--json", "as_json", is_flag=True, help="Rows as JSON.")
@handled
def lake_status(lake_dir: Path, run: str | None, as_json: bool) -> None:
    """Each shard of RUN: committed, started (chunks committed so far) or missing; exit 3 while any is not
    committed, so scripts can wait on it. Without --run, the lake's runs and their shards committed."""
    from toolkit.scale.shards import lake_runs, status
    from toolkit.store.query import render

    if run is None:
        click.echo(render(lake_runs(lake_dir), "json" if as_json else "table"), nl=False)
        return
    df = status(lake_dir, run)
    click.echo(render(df, "json" if as_json else "table"), nl=False)
    missing = df.filter(pl.col("state") != "committed")
    if missing.height:
        if not as_json:
            click.echo(f"{missing.height} of {df.height} shards not committed: {', '.join(missing['shard'])}")
        sys.exit(3)
    if not as_json:
        click.echo(
            f"all {df.height} shards committed; bring the run in with `neurons lake attach {lake_dir} --run {run}`"
        )


@lake.command("attach")
@click.argument("lake_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--run", required=True, help="The run in the lake.")
@click.option("--as", "name", default=None, help="Its name in the warehouse (default: the same).")
@click.option("--replace", is_flag=True, help="Replace a warehouse run of that name.")
@pass_ctx
@handled
def lake_attach(ctx: Context, lake_dir: Path, run: str, name: str | None, replace: bool) -> None:
    """Register a run whose shards are all committed in the warehouse: sentences copied, partial moments merged
    exactly into the statistics cache, activations read in place from the lake's Parquet files (no copy)."""
    from toolkit.scale.attach import attach

    click.echo(attach(ctx.db, lake_dir, run, name, replace).text())


@cli.group(cls=OneLineGroup)
def spark() -> None:
    """The statistics on Spark, over a lake (needs the extra: pip install 'neurons[spark]', and Java 17)."""


master_option = click.option(
    "--master", default=None, help="Spark master URL (default local[*]; e.g. spark://host:7077, local[2])."
)


@spark.command("moments")
@click.argument("lake_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--run", required=True, help="The lake's run.")
@master_option
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the moments (.parquet, .csv, .json).",
)
@click.option("--store", is_flag=True, help="Add them to the lake as the run's partial moments (runs without any).")
@handled
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
@click.argument("lake_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.argument("query")
@master_option
@click.option(
    "--dialect",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="duckdb: the query is written as for `neurons query` and transpiled; spark: Spark SQL as is.",
)
@click.option("--csv", "fmt", flag_value="csv", help="CSV output.")
@click.option("--json", "fmt", flag_value="json", help="JSON output (a list of rows).")
@click.option("--markdown", "fmt", flag_value="markdown", help="Markdown table output.")
@handled
def spark_sql_command(lake_dir: Path, query: str, master: str | None, dialect: str, fmt: str | None) -> None:
    """Run QUERY on Spark over the lake's runs, with every view and macro of sql/views/010_statistics.sql
    (label_profiles, between_label_variance, crosslingual_correlation, classify_neurons(...), ...)."""
    from toolkit.scale.spark import run_query
    from toolkit.store.query import render

    click.echo(render(run_query(lake_dir, query, master, dialect), fmt or "table"), nl=False)


SHORT_HELP = {
    "extract": "Extract activations of a model on a dataset into a run.",
    "load": "Import a long-format activations table as a run.",
    "runs": "List the runs in the warehouse.",
    "delete": "Delete a run and everything computed from it.",
    "query": "Run read-only SQL on the warehouse.",
    "analyze": "The paper's findings for a run (or the layer sweep).",
    "significance": "Test the findings against chance (permutations, bootstrap, ANOVA).",
    "chart": "Draw one figure as PNG, SVG, PDF or HTML.",
    "report": "Write the self-contained HTML report with figures and tables.",
    "export": "Export a view or query as CSV, Parquet, JSON, Markdown or LaTeX.",
    "finetune": "Fine-tune a classifier with the paper's recipe.",
    "ablate": "Ablate neurons inside the model against random controls.",
    "demo": "Run the whole workflow on the bundled sample with a tiny model.",
    "upgrade": "Migrate a warehouse made by an older version.",
    "neuron": "One neuron's card: profile, classes, significance, sentences.",
    "probe": "Linear probes: transfer across languages, neuron rankings, top-k.",
    "lake": "Sharded runs in a Delta Lake: status, attach.",
    "spark": "The statistics on Spark over a lake: moments, sql.",
}
for _name, _text in SHORT_HELP.items():
    cli.commands[_name].short_help = _text


def main() -> None:
    cli(prog_name="neurons")
