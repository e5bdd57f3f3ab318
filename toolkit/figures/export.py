"""Writing query results for papers: CSV, Parquet, JSON, Markdown and booktabs LaTeX, by extension."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from toolkit.errors import UserError
from toolkit.store.catalog import literal
from toolkit.store.output import atomic_file
from toolkit.store.query import NULL_MARK, execute_read_only, flatten_nested, nan_to_null, render, run_query
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


def human_names(columns: list[str]) -> list[str]:
    """Column names for readers (tables in papers and the report): HUMAN_NAMES, else underscores as spaces."""
    return [HUMAN_NAMES.get(c, c.replace("_", " ")) for c in columns]


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def _cell(value, dtype: pl.DataType, precision: int) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return NULL_MARK
    if dtype.is_float():
        return f"{value:.{precision}f}"
    return latex_escape(str(value))


def to_latex(df: pl.DataFrame, caption: str | None = None, label: str | None = None, precision: int = 3) -> str:
    """A booktabs table: numbers right-aligned at PRECISION decimals, text escaped, columns as in DF."""
    df = flatten_nested(df)
    align = "".join("r" if t.is_numeric() else "l" for t in df.dtypes)
    lines = [
        "\\begin{table}[ht]",
        "\\centering",
        f"\\begin{{tabular}}{{{align}}}",
        "\\toprule",
        " & ".join(latex_escape(c) for c in human_names(df.columns)) + " \\\\",
        "\\midrule",
    ]
    dtypes = df.dtypes
    for row in df.iter_rows():
        lines.append(" & ".join(_cell(v, t, precision) for v, t in zip(row, dtypes)) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if caption:
        lines.append(f"\\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(f"\\label{{{label}}}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


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
            named = df.rename(dict(zip(df.columns, human_names(df.columns))))
            tmp.write_text(render(named, "markdown", float_precision=precision), encoding="utf-8")
        else:
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
