"""Commands that make what a paper shows: chart, report, export."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from toolkit.cli.base import (
    Context,
    abs_option,
    at_least,
    comma_list,
    layer_option,
    out_option,
    pass_ctx,
    run_option,
    threshold_option,
)
from toolkit.errors import UserError

CHARTS = [
    "label-variance",
    "correlation",
    "ceiling",
    "agreement",
    "profiles",
    "classes",
    "monolingual",
    "variance-ranking",
    "length",
    "classes-null",
    "sensitivity",
    "layers",
    "ablation",
    "deactivation",
]


@click.command()
@click.argument("name", type=click.Choice(CHARTS))
@run_option("Run to chart.")
@layer_option()
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
    "--at-equal-length",
    is_flag=True,
    help="correlation: of the profiles at equal sentence length (definition 25; runs with token counts).",
)
@click.option(
    "--top", type=int, default=5, show_default=True, callback=at_least(1), help="Top neurons marked per panel."
)
@threshold_option("classes, monolingual: threshold.")
@abs_option("classes, monolingual: use |mean z|.")
@click.option(
    "--ablation", "ablation_id", type=int, default=None, help="ablation: which one (default: the run's latest)."
)
@out_option("Output file: .png, .svg, .pdf or .html.")
@pass_ctx
def chart(ctx: Context, name: str, out: Path, ablation_id: int | None, labels: str | None, **o) -> None:
    """Draw one figure from the statistics views.

    \b
    label-variance    Figure 1: the neurons whose z varies most within each label, against all
    correlation       Figure 2: cross-lingual Spearman (or cosine) heatmap (--at-equal-length)
    ceiling           beside Figure 2: noise ceiling and disattenuated Spearman
    agreement         neuron criteria (variance, eta squared, probe): Jaccard of top-k sets
    profiles          Figure 3: mean z of each language's top neurons for one label (heatmap)
    classes           neuron classes per label, stacked
    monolingual       monolingual neurons per language
    variance-ranking  between-label variance in rank order
    length            between-label variance against the same at equal sentence length
    classes-null      class counts against the permutation null (after `neurons significance`)
    sensitivity       label-sensitive neurons per language beside the pooled count (after significance)
    layers            class shares and mean Spearman per pair across layers
    ablation          change in macro-F1 per language under an ablation (--ablation ID, default: latest)
    """
    from toolkit.figures.charts import FORMATS, ChartOptions, build, save
    from toolkit.store.warehouse import Warehouse

    if out.suffix.lower() not in FORMATS:
        raise UserError(f"--out {out}: unsupported extension '{out.suffix}'; use one of {', '.join(FORMATS)}")
    with Warehouse(ctx.db, read_only=True) as wh:
        c = build(wh, name, ChartOptions(labels=list(comma_list(labels) or []) or None, ablation=ablation_id, **o))
    click.echo(f"wrote {save(c, out)}")


@click.command()
@run_option("Run to report on.")
@layer_option()
@threshold_option("Threshold of the neuron classes.")
@abs_option()
@out_option("Output folder.", folder=True)
@click.option(
    "--redact-paths",
    is_flag=True,
    help="Show the model, data and lake by their last path component only (for a report you share).",
)
@pass_ctx
def report(
    ctx: Context, run: str, layer: int | None, threshold: float, absolute: bool, out: Path, redact_paths: bool
) -> None:
    """Write a self-contained HTML report (works offline) with every chart, the key tables and the
    definitions, plus PNG/SVG charts, CSV/LaTeX tables and a Markdown summary."""
    from toolkit.figures.report import build_report

    click.echo(f"wrote {build_report(ctx.db, run, out, layer, threshold, absolute, redact_paths)}")


@click.command()
@click.argument("what")
@out_option("Output file: .csv, .parquet, .json, .md or .tex.")
@run_option("With a view name: keep this run.", required=False)
@layer_option("With a view name: keep this layer.")
@click.option("--caption", default=None, help="LaTeX caption.")
@click.option("--label", "tex_label", default=None, help="LaTeX \\label.")
@click.option(
    "--precision",
    type=click.IntRange(0, 17),
    default=3,
    show_default=True,
    help="Decimals for floats in .tex and .md (0-17).",
)
@pass_ctx
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
    from toolkit.figures.export import PAGE_ROWS, TABLE_FORMATS, export_query, write_table

    if out.suffix.lower() not in TABLE_FORMATS:
        raise UserError(f"--out {out}: unsupported extension '{out.suffix}'; use one of {', '.join(TABLE_FORMATS)}")
    if what == "-":
        what = sys.stdin.read()
    df = export_query(ctx.db, what, run, layer)
    write_table(df, out, caption, tex_label, precision)
    click.echo(f"wrote {df.height} rows to {out}")
    if out.suffix.lower() == ".tex" and df.height > PAGE_ROWS:
        click.echo(
            f"note: {df.height} rows do not fit one page, so the table is a longtable that continues over the next "
            "pages: it needs \\usepackage{longtable} beside booktabs and graphicx, and one-column pages",
            err=True,
        )


COMMANDS = [chart, report, export]
