"""`neurons report`: one self-contained HTML page per run and layer, with every chart, the key tables and
the definition of each statistic, plus the charts as PNG and SVG, the tables as CSV and LaTeX and a
Markdown summary beside it. The page inlines Vega's JavaScript and its data: it works with no network.
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

import altair as alt
import polars as pl

from toolkit import __version__
from toolkit.defaults import CLASSES, THRESHOLD
from toolkit.figures import vega
from toolkit.figures.charts import ChartOptions, build, images
from toolkit.figures.deactivation import latest_deactivation
from toolkit.figures.export import PAGE_ROWS, for_readers, human_names, write_table
from toolkit.figures.length import REPORT_FIGURES
from toolkit.figures.report_sections import Table, method_tables, shown_path
from toolkit.stats.analysis import EVALUATION_COLUMNS, caveats, language_pairs, resolve, top_variance_neurons
from toolkit.stats.explorer import cards_json, neuron_cards
from toolkit.store.catalog import definitions
from toolkit.store.output import atomic_dir, check_output_dir
from toolkit.store.query import NULL_MARK, fixed, json_value, render
from toolkit.store.warehouse import Warehouse

STATISTICS_SQL = "sql/views/010_statistics.sql"
COLLAPSE_ROWS = 15  # longer tables are folded (<details>); every table is also a CSV file beside the page
EXPLORER_SENTENCES = 5  # most and least activating sentences per language on a neuron's card


@dataclass
class Figure:
    key: str
    title: str
    view: str  # the view it reads, whose definition the page quotes
    chart: alt.Chart

    @functools.cached_property
    def spec(self) -> dict:
        """The chart's Vega-Lite specification, for the files and the page (unvalidated: a tenth of a report's time;
        tests validate every chart a report draws)."""
        return self.chart.to_dict(validate=False)


def file_key(kind: str, label: str, i: int) -> str:
    """A figure's key, used in file names and element ids: KIND and LABEL reduced to ASCII letters, digits, _ and
    - (a label is the data's own text: slashes or dots must never leave the output folder or break a selector),
    with the label's position I where that reduction changed it, so that two labels never share a key."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", label).strip("_")[:40]
    return f"{kind}-{safe}" if safe == label else f"{kind}-{i}-{safe}".rstrip("-")


PROFILE_FIGURES = 12
"""At most this many labels get a Figure 3 (those with the most sentences); every label is in the tables."""


def _figures(wh: Warehouse, run: str, layer: int, threshold: float, absolute: bool) -> list[Figure]:
    o = ChartOptions(run=run, layer=layer, threshold=threshold, absolute=absolute)
    labels = wh.sql(  # Figure 3 for the labels with the most sentences: a page stays readable with hundreds
        "select label from sentences where run_id = ? group by label order by count(*) desc, label limit ?",
        [wh.run_id(run), PROFILE_FIGURES],
    )["label"].sort()
    figs = [
        Figure(
            "label-variance",
            "Figure 1. Variance of z within each label",
            "label_variance",
            build(wh, "label-variance", o),
        ),
        Figure(
            "correlation-spearman",
            "Figure 2. Cross-lingual Spearman correlation",
            "crosslingual_correlation",
            build(wh, "correlation", o),
        ),
        Figure(
            "correlation-ceiling",
            "Figure 2, noise ceiling. How high each Spearman could be given the noise of its two profiles",
            "crosslingual_ceiling",
            build(wh, "ceiling", o),
        ),
        Figure(
            "correlation-cosine",
            "Figure 2b. Cross-lingual cosine similarity",
            "crosslingual_correlation",
            build(wh, "correlation", ChartOptions(**{**o.__dict__, "metric": "cosine"})),
        ),
    ]
    for i, label in enumerate(labels, start=1):
        figs.append(
            Figure(
                file_key("profiles", label, i),
                f"Figure 3. Mean z of the top neurons for {label}",
                "top_neurons",
                build(wh, "profiles", ChartOptions(**{**o.__dict__, "label": label})),
            )
        )
    tested = _has_significance(wh, run, layer)
    figs += [
        Figure("classes", "Neuron classes per label", "classify_neurons", build(wh, "classes", o)),
        *(
            [
                Figure(
                    "classes-null",
                    "Neuron classes against chance (permutation null)",
                    "class_significance",
                    build(wh, "classes-null", o),
                ),
                Figure(
                    "sensitivity",
                    "Label-sensitive neurons per language beside the pooled count",
                    "language_sensitive_counts",
                    build(wh, "sensitivity", o),
                ),
            ]
            if tested
            else []
        ),
        Figure("monolingual", "Monolingual neurons per language", "count_monolingual", build(wh, "monolingual", o)),
        Figure(
            "variance-ranking",
            "Neurons ranked by between-label variance",
            "between_label_variance",
            build(wh, "variance-ranking", o),
        ),
    ]
    if wh.scalar("select count(*) from label_lengths where run = ?", [run]):  # the run has token counts
        for key, title, view, chart, extra in REPORT_FIGURES:
            figs.append(Figure(key, title, view, build(wh, chart, ChartOptions(**{**o.__dict__, **extra}))))
    if wh.scalar("select count(k) from criteria_agreement where run = ? and layer = ?", [run, o.layer]):
        figs.append(  # none where no top-k is defined (fewer than 10 neurons, or one criterion)
            Figure(
                "agreement",
                "Agreement of neuron criteria (variance, eta squared, probe weight mass)",
                "criteria_agreement",
                build(wh, "agreement", o),
            )
        )
    if len(wh.run(run).layers) > 1:
        figs.append(Figure("layers", "Across layers (the layer sweep)", "summarize_layers", build(wh, "layers", o)))
    for ablation_id in _ablations(wh, run):
        figs.append(
            Figure(
                f"ablation-{ablation_id}",
                f"Ablation {ablation_id}: change in macro-F1 against random controls",
                "ablation_summary",
                build(wh, "ablation", ChartOptions(run=run, ablation=ablation_id)),
            )
        )
    if latest_deactivation(wh, run) is not None:
        figs.append(
            Figure(
                "deactivation",
                "LAPE deactivation: change in each language's next-token NLL",
                "deactivation_matrix",
                build(wh, "deactivation", o),
            )
        )
    return figs


def _ablations(wh: Warehouse, run: str) -> list[int]:
    return wh.sql("select ablation_id from ablations where run_id = ? order by ablation_id", [wh.run_id(run)])[
        "ablation_id"
    ].to_list()


def _has_significance(wh: Warehouse, run: str, layer: int) -> bool:
    return bool(wh.scalar("select count(*) from class_significance where run = ? and layer = ?", [run, layer]))


def _tables(wh: Warehouse, run: str, layer: int, threshold: float, absolute: bool, redact: bool) -> list[Table]:
    """Every table of the report: the findings, then (when stored) significance, accuracy, ablations and the sweep."""
    tables = _finding_tables(wh, run, layer, threshold, absolute)
    if _has_significance(wh, run, layer):
        tables += _significance_tables(wh, run, layer, threshold, absolute)
    tables += _causal_tables(wh, run)
    tables += method_tables(wh, run, layer, redact)
    if len(wh.run(run).layers) > 1:
        from toolkit.stats.analysis import layer_sweep

        tables.append(Table("layers", "The layer sweep", "summarize_layers", layer_sweep(wh, run, threshold, absolute)))
    return tables


def _finding_tables(wh: Warehouse, run: str, layer: int, threshold: float, absolute: bool) -> list[Table]:
    """The paper's findings: top-variance neurons, cross-lingual consistency, ceilings, classes, top neurons."""
    wide = _wide(wh.class_counts(run, layer, threshold, absolute))
    top = top_variance_neurons(wh, run, layer, 20)
    length = " (length share: the share that is sentence length, view length_confound)" * (
        "length_share" in top.columns
    )
    return [
        Table("top-variance", f"Top 20 neurons by between-label variance{length}", "between_label_variance", top),
        Table(
            "language-pairs",
            "Cross-lingual consistency per language pair (mean over labels; at equal length: view length_pair_summary)",
            "language_pair_summary",
            language_pairs(wh, run, layer),
        ),
        Table(
            "crosslingual",
            "Cross-lingual consistency per label and language pair",
            "crosslingual_correlation",
            wh.crosslingual_correlation(run, layer).drop("run", "layer"),
        ),
        Table(
            "ceiling",
            "Noise ceilings: split-half reliabilities, ceiling and disattenuated Spearman",
            "crosslingual_ceiling",
            wh.crosslingual_ceiling(run, layer),
        ),
        Table(
            "classes",
            f"Neurons per class and label ({'|P|' if absolute else 'P'} > {threshold})",
            "classify_neurons",
            wide,
        ),
        Table(
            "monolingual",
            "Monolingual neurons per language",
            "count_monolingual",
            wh.monolingual_counts(run, layer, threshold, absolute).drop("run", "layer"),
        ),
        Table(
            "top-neurons",
            "Top 5 neurons by |mean z| per language and label",
            "top_neurons",
            wh.sql(
                "select language, label, rank, neuron, mean_z from top_neurons where run = ? and layer = ? and rank <= 5 "
                "order by language, label, rank",
                [run, layer],
            ),
        ),
    ]


def _significance_tables(wh: Warehouse, run: str, layer: int, threshold: float, absolute: bool) -> list[Table]:
    """The stored tests against chance (`neurons significance`)."""
    return [
        Table(
            "class-significance",
            "Class counts against the permutation null",
            "class_significance",
            wh.sql(
                "select label, language, neuron_class, observed, null_mean, null_low, null_high, p_value "
                "from class_significance where run = ? and layer = ? order by label nulls last, language, "
                "neuron_class",
                [run, layer],
            ),
        ),
        Table(
            "sensitive-neurons",
            "Label-sensitive neurons (permutation test of between-label variance: BH q < "
            "alpha, and pooled omega squared at least min_effect)",
            "sensitive_neurons",
            wh.sql(
                "select neuron, variance, omega_squared, eta_squared, p_value, q_value from sensitive_neurons "
                "where run = ? and layer = ? order by q_value, variance desc",
                [run, layer],
            ),
        ),
        Table(
            "language-sensitivity",
            "Label-sensitive neurons per language (each language's ANOVA across labels: BH q < alpha over its "
            "neurons, and omega squared at least min_effect): which languages carry the pooled count",
            "language_sensitive_counts",
            wh.language_sensitive_counts(run, layer),
        ),
        Table(
            "sensitive-classes",
            "Neuron classes among the label-sensitive neurons",
            "count_classes",
            _wide(wh.class_counts(run, layer, threshold, absolute, sensitive=True)),
        ),
        Table(
            "pair-intervals",
            "Mean Spearman per language pair with basic bootstrap 95 % intervals: Spearman is the estimate from the "
            "profiles (attenuated by their noise), corrected the bias-corrected estimate (Spearman - bias) the "
            "interval is built around; the interval may exclude Spearman",
            "correlation_intervals",
            wh.sql(
                "select language_a, language_b, spearman, corrected, low, high, bias, min_cell from correlation_intervals "
                "where run = ? and layer = ? and label is null order by language_a, language_b",
                [run, layer],
            ),
        ),
        Table(
            "anova",
            "Top 20 neurons by one-way ANOVA F across labels (pooled over languages)",
            "label_anova",
            wh.sql(
                "select neuron, f, omega_squared, eta_squared, df_between, df_within, p_value from anova_significance "
                "where run = ? and layer = ? and language is null order by f desc nulls last limit 20",
                [run, layer],
            ),
        ),
    ]


def _causal_tables(wh: Warehouse, run: str) -> list[Table]:
    """The model's accuracy per language and each stored ablation of the run."""
    tables = []
    if wh.scalar("select count(*) from evaluation where run = ?", [run]):
        tables.append(
            Table(
                "evaluation",
                "Accuracy and macro-F1 per language of the model's predictions, each against chance for that "
                "metric: accuracy against the 95 % binomial bound of guessing, macro-F1 against its permutation "
                "null (gold labels permuted against the predictions, 200 draws; at chance: p > 0.05)",
                "evaluation",
                wh.sql(
                    f"select {EVALUATION_COLUMNS} from evaluation where run = ? order by language",
                    [run],
                ),
                per_layer=False,
            )
        )
    for ablation_id in _ablations(wh, run):
        tables.append(
            Table(
                f"ablation-{ablation_id}",
                f"Ablation {ablation_id}: macro-F1 per language, target set "
                "against random controls (rank 1 = the largest drop)",
                "ablation_summary",
                wh.sql(
                    "select language, n_sentences, baseline_macro_f1, target_macro_f1, delta_macro_f1, "
                    "control_mean_delta_macro_f1, control_min_delta_macro_f1, control_max_delta_macro_f1, "
                    "baseline_accuracy, target_accuracy, target_rank, n_controls, baseline_at_chance from ablation_summary "
                    "where ablation_id = ? order by language",
                    [ablation_id],
                ),
                per_layer=False,
            )
        )
    return tables


def _wide(counts: pl.DataFrame) -> pl.DataFrame:
    """Class counts with one column per class."""
    if not counts.height:
        return counts
    return counts.pivot(on="neuron_class", index="label", values="n_neurons").select("label", *CLASSES)


WARNINGS = {"underserved", "at_chance", "accuracy_at_chance", "macro_f1_at_chance", "constant", "by_construction"}
"""Boolean columns whose true value is a warning to the reader: shown in red. Other booleans are plain yes/no."""


def _html_table(df: pl.DataFrame, precision: int = 3) -> str:
    """DF as an HTML table: human column names, numbers right-aligned at PRECISION decimals, undefined as --, a
    warning flag (WARNINGS) in red."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in human_names(df.columns))
    rows = []
    for row in df.iter_rows():
        cells = []
        for name, v in zip(df.columns, row):
            if isinstance(v, float) and math.isfinite(v):
                cells.append(f'<td class="num">{fixed(v, precision)}</td>')
            elif isinstance(v, float) or v is None:
                cells.append(f'<td class="num">{NULL_MARK}</td>')
            elif isinstance(v, bool):
                cells.append(f"<td{' class=flag' if v and name in WARNINGS else ''}>{'yes' if v else 'no'}</td>")
            elif isinstance(v, int):
                cells.append(f'<td class="num">{v}</td>')
            else:
                cells.append(f"<td>{html.escape('' if v is None else str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _json_for_script(obj) -> str:
    return json.dumps(json_value(obj), ensure_ascii=False, allow_nan=False).replace("</", "<\\/")


def template(name: str) -> str:
    """A file of the report's page (its CSS, scripts and the explorer's markup), kept beside this module."""
    return (resources.files("toolkit.figures") / "templates" / name).read_text(encoding="utf-8")


@dataclass
class Contents:
    """Everything the report shows of one run and layer, read from the warehouse before any file is written."""

    run: str
    layer: int
    meta: dict  # the run's row, with `lake` and `lake_version` for a run attached from a lake
    figures: list[Figure]
    tables: list[Table]
    notes: list[str]  # caveats: what these results can claim
    explorer: dict  # every neuron's card, for the explorer
    threshold: float
    absolute: bool
    redact_paths: bool = False  # model, data and lake shown by their last path component only

    def shown(self, path: str) -> str:
        """PATH as the page shows it: whole, or (redact_paths) its last component, so a shared report does not
        reveal the author's folders."""
        return shown_path(path, self.redact_paths)

    def definition(self, view: str) -> str:
        """The quoted definition of VIEW (its comment in sql/views) as an HTML paragraph."""
        text, source = definitions().get(view, ("", STATISTICS_SQL))
        return f'<p class="definition">{html.escape(text)} <br><code>{source}</code>, <code>{view}</code></p>'


def build_report(
    db,
    run: str,
    out: str | Path,
    layer: int | None = None,
    threshold: float = THRESHOLD,
    absolute: bool = False,
    redact_paths: bool = False,
) -> Path:
    """Write the report of RUN (one LAYER) into folder OUT; returns the path of index.html. REDACT_PATHS: the
    model, data and lake appear by their last path component only."""
    final = check_output_dir(out, "report")
    with Warehouse(db, read_only=True) as wh:
        wh.run(run).per_sentence("the report (`neurons chart deactivation` draws the LAPE test's figure)")
        rl = resolve(wh, run, layer)
        meta = dict(wh.run(run).row)
        lake = wh.sql("select lake, version, n_shards from lake_runs where run_id = ?", [meta["run_id"]])
        if lake.height:  # where an attached run's activations are read from
            row = lake.row(0, named=True)
            meta["lake"] = row["lake"]
            meta["lake_version"] = f"(Delta version {row['version']}, {row['n_shards']} shards)"
        c = Contents(
            run=rl.run,
            layer=rl.layer,
            meta=meta,
            figures=_figures(wh, rl.run, rl.layer, threshold, absolute),
            tables=_tables(wh, rl.run, rl.layer, threshold, absolute, redact_paths),
            notes=caveats(wh, rl.run, rl.layer, threshold, absolute),
            explorer=cards_json(neuron_cards(wh, rl.run, rl.layer, None, EXPLORER_SENTENCES, threshold, absolute)),
            threshold=threshold,
            absolute=absolute,
            redact_paths=redact_paths,
        )
    with atomic_dir(final, "report") as out:
        _write_files(out, c)
        info = _info(c)
        (out / "index.html").write_text(_page(c, info), encoding="utf-8")
        (out / "summary.md").write_text(_summary(c, info), encoding="utf-8")
    return final / "index.html"


def _write_files(out: Path, c: Contents) -> None:
    """Each figure as PNG and SVG, each table as CSV and LaTeX, inside folder OUT."""
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    for f in c.figures:
        svg, png = images(f.spec)  # drawn once for both files
        (out / "figures" / f"{f.key}.svg").write_text(svg, encoding="utf-8")
        (out / "figures" / f"{f.key}.png").write_bytes(png)
    for t in c.tables:
        write_table(t.frame, out / "tables" / f"{t.key}.csv")
        write_table(
            t.frame,
            out / "tables" / f"{t.key}.tex",
            caption=f"{t.title} (run {c.run}{f', layer {c.layer}' if t.per_layer else ''}).",
            label=f"tab:{t.key}",
        )


def _info(c: Contents) -> pl.DataFrame:
    """The run's facts as a two-column table (field, value)."""
    meta = c.meta
    info = {
        "run": c.run,
        "layer": c.layer,
        "model": c.shown(meta["model"]) if meta["model"] else "(imported)",
        "data": c.shown(meta["data_file"]),
        "pooling": meta["pooling"] or "-",
        "stored in": f"lake {c.shown(meta['lake'])} {meta['lake_version']}" if meta.get("lake") else "warehouse",
        "sentences": meta["n_sentences"],
        "languages": meta["n_languages"],
        "labels": meta["n_labels"],
        "neurons": meta["hidden_size"],
        "layers stored": ", ".join(map(str, meta["layers"])),
        "threshold": f"{'|P|' if c.absolute else 'P'} > {c.threshold}",
        "created": str(meta["created_at"])[:19],
        "report": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "toolkit": __version__,
    }
    return pl.DataFrame({"field": list(info), "value": [str(v) for v in info.values()]})


def _table_block(c: Contents, t: Table) -> str:
    links = f"<a href='tables/{t.key}.csv'>CSV</a> · <a href='tables/{t.key}.tex'>LaTeX</a>"
    body = _html_table(t.frame)
    if t.frame.height > COLLAPSE_ROWS:
        body = f"<details><summary>{t.frame.height} rows (show)</summary>{body}</details>"
    return f"<h3 id='table-{t.key}'>{html.escape(t.title)}</h3>{body}{c.definition(t.view)}<p class='files'>{links}</p>"


def _nav(c: Contents, accuracy: Table | None, rest: list[Table]) -> str:
    """The table of contents."""
    toc = [("caveats", "What these results can claim")] if c.notes else []
    toc += [("accuracy", "Model accuracy")] if accuracy else []
    toc += [
        ("run", "Run"),
        ("figures", "Figures"),
        ("explorer", "Neuron explorer"),
        ("tables", "Tables"),
        ("definitions", "Definitions"),
    ]
    sub = {
        "figures": [(f"figure-{f.key}", f.title) for f in c.figures],
        "tables": [(f"table-{t.key}", t.title) for t in rest],
    }
    return "".join(
        f"<li><a href='#{k}'>{html.escape(v)}</a>"
        + (
            "<ul>" + "".join(f"<li><a href='#{a}'>{html.escape(b)}</a></li>" for a, b in sub[k]) + "</ul>"
            if k in sub
            else ""
        )
        + "</li>"
        for k, v in toc
    )


def _page(c: Contents, info: pl.DataFrame) -> str:
    """The self-contained HTML page: every figure (Vega inlined), table, card and definition."""
    accuracy = next((t for t in c.tables if t.key == "evaluation"), None)
    rest = [t for t in c.tables if t is not accuracy]
    parts = [
        f"<h1>Neuron analysis of run <code>{html.escape(c.run)}</code>, layer {c.layer}</h1>",
        '<section hidden><h2>Problems</h2><ul id="errors"></ul></section>',
        f"<nav id='toc'><h2>Contents</h2><ul>{_nav(c, accuracy, rest)}</ul></nav>",
    ]
    if c.notes:
        parts.append(
            "<section id='caveats' class='caveats'><h2>What these results can claim</h2><ul>"
            + "".join(f"<li>{html.escape(n)}</li>" for n in c.notes)
            + "</ul></section>"
        )
    if accuracy:
        parts.append(f"<section id='accuracy'><h2>Model accuracy</h2>{_table_block(c, accuracy)}</section>")
    parts += ["<h2 id='run'>Run</h2>", _html_table(info)]
    parts.append("<h2 id='figures'>Figures</h2>")
    for f in c.figures:
        parts.append(
            f"<h3 id='figure-{f.key}'>{html.escape(f.title)}</h3><div class='chart' id='chart-{f.key}'></div>"
            f"{c.definition(f.view)}<p class='files'><a href='figures/{f.key}.png'>PNG</a> · "
            f"<a href='figures/{f.key}.svg'>SVG</a></p>"
        )
    parts.append(template("explorer.html"))
    parts.append("<h2 id='tables'>Tables</h2>")
    parts += [_table_block(c, t) for t in rest]
    parts.append(
        "<h2 id='definitions'>Definitions</h2><p>Every number above comes from a view or macro in "
        "<code>sql/views/</code>, stored in the warehouse file (the full list: <code>docs/definitions.md</code>); "
        "z-scores come from <code>zscores</code>:</p>" + c.definition("zscores") + c.definition("label_profiles")
    )
    specs = {f.key: f.spec for f in c.figures}
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>neurons report: {html.escape(c.run)}, layer {c.layer}</title><style>{template('report.css')}</style>"
        f"<script>{vega.bundle()}</script></head>"
        f"<body data-charts='{len(c.figures)}' data-rendered='0'>"
        + "\n".join(parts)
        + f"<script type='application/json' id='specs'>{_json_for_script(specs)}</script>"
        + f"<script type='application/json' id='explorer-data'>{_json_for_script(c.explorer)}</script>"
        + f"<script>{template('page.js')}</script><script>{template('explorer.js')}</script></body></html>"
    )


def _summary(c: Contents, info: pl.DataFrame) -> str:
    """The Markdown summary beside the page: the run, every table, and the list of files."""
    summary = [f"# Run `{c.run}`, layer {c.layer}", "", render(info, "markdown")]
    for t in c.tables:
        summary += [f"## {t.title}", "", render(for_readers(t.frame), "markdown", float_precision=3)]
    summary += [
        "## Files",
        "",
        "- `index.html`: the self-contained report",
        *[f"- `figures/{f.key}.png`, `figures/{f.key}.svg`: {f.title}" for f in c.figures],
        *[f"- `tables/{t.key}.csv`, `tables/{t.key}.tex`: {t.title}" for t in c.tables],
        "",
        f"The LaTeX tables need `\\usepackage{{booktabs,graphicx,longtable}}` (longtable: over {PAGE_ROWS} rows).",
    ]
    return "\n".join(summary) + "\n"
