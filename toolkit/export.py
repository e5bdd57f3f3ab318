"""Writing query results for papers: CSV, Parquet, JSON, Markdown and booktabs LaTeX, by extension."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl

from toolkit.errors import UserError
from toolkit.query import flatten_nested, render, run_query

TABLE_FORMATS = (".csv", ".parquet", ".json", ".md", ".tex")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def _cell(value, dtype: pl.DataType, precision: int) -> str:
    if value is None:
        return "--"
    if dtype.is_float():
        return f"{value:.{precision}f}"
    return latex_escape(str(value))


def to_latex(df: pl.DataFrame, caption: str | None = None, label: str | None = None, precision: int = 3) -> str:
    """A booktabs table: numbers right-aligned at PRECISION decimals, text escaped, columns as in DF."""
    df = flatten_nested(df)
    align = "".join("r" if t.is_numeric() else "l" for t in df.dtypes)
    lines = ["\\begin{table}[ht]", "\\centering", f"\\begin{{tabular}}{{{align}}}", "\\toprule",
             " & ".join(latex_escape(c) for c in df.columns) + " \\\\", "\\midrule"]
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


def write_table(df: pl.DataFrame, out: str | Path, caption: str | None = None, label: str | None = None,
                precision: int = 3) -> Path:
    """Write DF in the format named by OUT's extension."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise UserError(f"--out {out}: unsupported extension '{out.suffix}'; use one of {', '.join(TABLE_FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        flatten_nested(df).write_csv(out)
    elif suffix == ".parquet":
        df.write_parquet(out)
    elif suffix == ".json":
        out.write_text(json.dumps(df.to_dicts(), ensure_ascii=False, default=str, indent=1) + "\n", encoding="utf-8")
    elif suffix == ".md":
        out.write_text(render(df, "markdown", float_precision=precision), encoding="utf-8")
    else:
        out.write_text(to_latex(df, caption, label, precision), encoding="utf-8")
    return out


def export_query(db, what: str, run: str | None = None, layer: int | None = None) -> pl.DataFrame:
    """WHAT is a table or view name (filtered by RUN and LAYER when given) or a read-only SQL query."""
    if IDENTIFIER.match(what):
        conds = [f"{c} = {_literal(v)}" for c, v in (("run", run), ("layer", layer)) if v is not None]
        where = " where " + " and ".join(conds) if conds else ""
        return run_query(db, f"select * from {what}{where} order by all")
    if run is not None or layer is not None:
        raise UserError("--run and --layer filter a view by name; put the conditions in your SQL instead")
    return run_query(db, what)


def _literal(value) -> str:
    return str(int(value)) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"
