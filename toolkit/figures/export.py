"""Writing query results for papers: CSV, Parquet, JSON, Markdown and booktabs LaTeX, by extension."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import polars as pl

from toolkit.errors import UserError
from toolkit.store.catalog import literal
from toolkit.store.output import atomic_file
from toolkit.store.query import (
    NULL_MARK,
    execute_read_only,
    fixed,
    flatten_nested,
    nan_to_null,
    render,
    run_query,
)
from toolkit.store.warehouse import Warehouse

TABLE_FORMATS = (".csv", ".parquet", ".json", ".md", ".tex")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


HUMAN_NAMES = {
    "n_sentences": "sentences",
    "n_neurons": "neurons",
    "n_labels": "labels",
    "n_languages": "languages",
    "macro_f1": "macro-F1",
    "mean_z": "mean z",
    "eta_squared": "eta²",
    "omega_squared": "omega²",
    "p_value": "p",
    "q_value": "q",
    "language_a": "language a",
    "language_b": "language b",
    "neuron_class": "class",
    "mean_spearman": "mean Spearman",
    "mean_cosine": "mean cosine",
    "spearman": "Spearman",
    "cosine": "cosine",
    "accuracy_chance_high": "accuracy chance bound",
    "accuracy_at_chance": "accuracy at chance",
    "macro_f1_null_high": "macro-F1 null 95 %",
    "macro_f1_p": "macro-F1 p",
    "at_chance": "at chance",
    "min_cell": "smallest cell",
    "null_mean": "null mean",
    "null_low": "null 2.5 %",
    "null_high": "null 97.5 %",
    "df_between": "df between",
    "df_within": "df within",
    "delta_macro_f1": "change in macro-F1",
    "target_rank": "rank of target",
    "n_controls": "controls",
    "reliability_a": "reliability a",
    "reliability_b": "reliability b",
}


HUMAN_PHRASES = (
    ("delta_macro_f1", "change in macro-F1"),
    ("macro_f1", "macro-F1"),
    ("spearman", "Spearman"),
    ("eta_squared", "eta²"),
    ("omega_squared", "omega²"),
)
"""Parts of longer column names written as in HUMAN_NAMES ('control_mean_delta_macro_f1': 'control mean change in
macro-F1'), so that one table does not name one quantity two ways."""


def human_names(columns: list[str]) -> list[str]:
    """Column names for readers (tables in papers and the report): HUMAN_NAMES, else HUMAN_PHRASES replaced and
    underscores as spaces."""
    return [HUMAN_NAMES.get(c) or _phrased(c) for c in columns]


def _phrased(column: str) -> str:
    for part, words in HUMAN_PHRASES:
        column = column.replace(part, words)
    return column.replace("_", " ")


def for_readers(df: pl.DataFrame) -> pl.DataFrame:
    """DF as a table for readers (Markdown beside the report, `export --out x.md`): human column names, and
    true/false as yes/no, as the report's HTML tables show them."""
    df = flatten_nested(df)
    df = df.with_columns(
        pl.when(pl.col(c)).then(pl.lit("yes")).when(pl.col(c).not_()).then(pl.lit("no")).alias(c)
        for c, t in df.schema.items()
        if t == pl.Boolean
    )
    return df.rename(dict(zip(df.columns, human_names(df.columns))))


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def _cell(value, dtype: pl.DataType, precision: int) -> str:
    """One LaTeX cell: undefined as NULL_MARK, true/false as yes/no, numbers with a minus sign ($-$, not the
    hyphen that a bare '-' sets in text)."""
    if value is None or (isinstance(value, float) and value != value):
        return NULL_MARK
    if isinstance(value, bool):
        return "yes" if value else "no"
    if dtype.is_numeric():
        text = fixed(value, precision) if dtype.is_float() else str(value)
        return "$-$" + text[1:] if text.startswith("-") else text
    return latex_escape(str(value))


PAGE_ROWS = 40
"""Rows beyond which a LaTeX table is set as a longtable, which breaks across pages: a float holds one page, about 50
rows of text at 10 pt in an article, and silently drops the rows below the page's end."""


def to_latex(df: pl.DataFrame, caption: str | None = None, label: str | None = None, precision: int = 3) -> str:
    """A booktabs table that fits the page: numbers right-aligned at PRECISION decimals with true minus signs, text
    escaped, columns as in DF. A header longer than its column's values is set on several lines. Up to PAGE_ROWS
    rows, a float scaled down to the line when wider than it (never up); needs `\\usepackage{booktabs,graphicx}`.
    Longer, a longtable in small type that continues on the next pages with its header repeated (it cannot be
    scaled); needs `\\usepackage{longtable}` too, and one-column pages (`\\onecolumn` in a two-column paper)."""
    df = flatten_nested(df)
    aligns = "".join("r" if t.is_numeric() else "l" for t in df.dtypes)
    rows = [[_cell(v, t, precision) for v, t in zip(row, df.dtypes)] for row in df.iter_rows()]
    widths = [max([len(r[i].replace("$-$", "-")) for r in rows], default=0) for i in range(df.width)]
    header = [
        "\\toprule",
        " & ".join(_header(n, w, a) for n, w, a in zip(human_names(df.columns), widths, aligns)) + " \\\\",
        "\\midrule",
    ]
    body = [" & ".join(r) + " \\\\" for r in rows]
    named = ([f"\\caption{{{latex_escape(caption)}}}"] if caption else []) + ([f"\\label{{{label}}}"] if label else [])
    if len(rows) > PAGE_ROWS:
        lines = [
            "\\begingroup\\small\\setlength{\\tabcolsep}{4pt}",
            f"\\begin{{longtable}}{{{aligns}}}",
            *([" ".join(named) + " \\\\"] if named else []),
            *header,
            "\\endfirsthead",
            *header,
            "\\endhead",
            "\\bottomrule",
            "\\endfoot",
            *body,
            "\\end{longtable}",
            "\\endgroup",
        ]
    else:
        lines = [
            "\\begin{table}[ht]",
            "\\centering",
            "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%",
            f"\\begin{{tabular}}{{{aligns}}}",
            *header,
            *body,
            "\\bottomrule",
            "\\end{tabular}}",
            *named,
            "\\end{table}",
        ]
    return "\n".join(lines) + "\n"


def _header(name: str, width: int, align: str) -> str:
    """Column NAME in LaTeX, broken between words into lines no wider than the column's values (WIDTH characters,
    at least 10) and aligned as the column, bottom lines level across the header."""
    parts = textwrap.wrap(name, max(width, 10), break_long_words=False, break_on_hyphens=False)
    if len(parts) < 2:
        return latex_escape(name)
    return f"\\begin{{tabular}}[b]{{@{{}}{align}@{{}}}}" + " \\\\ ".join(map(latex_escape, parts)) + "\\end{tabular}"


def _constants_to_caption(df: pl.DataFrame, caption: str | None) -> tuple[pl.DataFrame, str | None]:
    """A paper's table names its run and layer once, in the caption, not in a column that repeats one value on
    every row: the `run` and `layer` columns that hold one value each leave the table for the caption."""
    constant = [c for c in ("run", "layer") if c in df.columns and df.height and df[c].n_unique() == 1]
    if not constant:
        return df, caption
    said = ", ".join(f"{c} {df[c][0]}" for c in constant)
    if not caption:
        return df.drop(constant), said[0].upper() + said[1:]
    stop = "." if caption.endswith(".") else ""  # "Pairs." -> "Pairs (run r, layer 11)."
    return df.drop(constant), f"{caption.removesuffix('.')} ({said}){stop}"


def write_table(
    df: pl.DataFrame, out: str | Path, caption: str | None = None, label: str | None = None, precision: int = 3
) -> Path:
    """Write DF in the format named by OUT's extension."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise UserError(f"--out {out}: unsupported extension '{out.suffix}'; use one of {', '.join(TABLE_FORMATS)}")
    df = nan_to_null(df)
    with atomic_file(out) as tmp:
        if suffix == ".csv":
            tmp.write_text(render(df, "csv"), encoding="utf-8")
        elif suffix == ".parquet":
            df.write_parquet(tmp)
        elif suffix == ".json":
            tmp.write_text(render(df, "json"), encoding="utf-8")
        elif suffix == ".md":
            tmp.write_text(render(for_readers(df), "markdown", float_precision=precision), encoding="utf-8")
        else:
            df, caption = _constants_to_caption(df, caption)
            tmp.write_text(to_latex(df, caption, label, precision), encoding="utf-8")
    return out


def export_query(db, what: str, run: str | None = None, layer: int | None = None) -> pl.DataFrame:
    """WHAT is a table or view name (filtered by RUN and LAYER when given) or a read-only SQL query. A view by
    name with RUN but no LAYER keeps the run's default layer (the penultimate stored one) when the view has
    per-layer rows: one layer per table, as a paper shows it."""
    if IDENTIFIER.match(what):
        if run is not None:
            with Warehouse(db, read_only=True) as wh:
                found = wh.run(run)  # an unknown or incomplete run is an error, not an empty table
                if "layer" in execute_read_only(wh.con, f"select * from {what} limit 0").columns:
                    layer = found.layer(layer)  # the default layer, or a stored one (else an error, not an empty file)
        conds = [f"{c} = {literal(v)}" for c, v in (("run", run), ("layer", layer)) if v is not None]
        where = " where " + " and ".join(conds) if conds else ""
        return run_query(db, f"select * from {what}{where} order by all")
    if run is not None or layer is not None:
        raise UserError("--run and --layer filter a view by name; put the conditions in your SQL instead")
    return run_query(db, what)
