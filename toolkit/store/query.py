"""Ad-hoc SQL on a sandboxed read-only connection, and rendering results as text, CSV, JSON or Markdown.

User SQL (`neurons query`, `neurons export`, `neurons ablate --query`) runs on the sandbox that
`Warehouse(read_only=True)` opens: the warehouse is attached read-only, file system access is disabled and
the configuration is locked, so the engine itself refuses every write, whatever the statement's form.

Undefined values (NaN, e.g. a correlation of a constant profile) are null in every output: `null` in JSON,
an empty field in CSV and `--` (the one marker, `NULL_MARK`) in text, Markdown and LaTeX tables.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import polars as pl

from toolkit.errors import UserError, first_line
from toolkit.store.connection import interruptible
from toolkit.store.warehouse import Warehouse

NULL_MARK = "--"


def fixed(value: float, precision: int) -> str:
    """VALUE at PRECISION decimals, the same on every run, without the sign of a value that rounds to zero ("-0.000"
    would read as a negative result that is not there). DuckDB sums in parallel in no fixed order, so a statistic
    can come out 1e-16 apart from one query to the next; a value on a rounding midpoint (a Spearman correlation of
    exactly 0.9875 over 64 neurons) printed as 0.987 in one report and 0.988 in the next. It is first rounded to
    PRECISION + 6 decimals: far above that noise, far below what the digits shown can tell apart."""
    text = f"{round(value, precision + 6):.{precision}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def run_query(db: str | Path | None, sql: str) -> pl.DataFrame:
    """Run SQL (one or more statements; the last one's result is returned) without changing any file."""
    if not sql.strip():
        raise UserError("the query is empty; pass SQL as an argument or on stdin with `-`")
    with Warehouse(db, read_only=True) as wh:
        return execute_read_only(wh.con, sql)


def execute_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    """Run SQL on CON, a sandboxed read-only connection (see `Warehouse`); the last statement's result.

    Refusals come from the engine: a write to the warehouse ("attached in read-only mode") or any file
    access ("file system operations are disabled") is explained in one line."""
    try:

        def work() -> pl.DataFrame:
            result = None
            for st in con.extract_statements(sql):
                result = con.sql(st.query)
            return result.pl() if result is not None else pl.DataFrame()

        return interruptible(work, con.interrupt)
    except duckdb.Error as exc:
        text = str(exc)
        if "read-only mode" in text or "read_only" in text.lower() and "attached" in text:
            raise UserError(
                "refused: the warehouse is read-only here (queries cannot change it); use "
                "`neurons extract/load/delete` to change runs"
            ) from None
        if (
            "disabled by configuration" in text
            or "disabled through configuration" in text
            or ("configuration" in text and "Cannot change" in text)
        ):
            raise UserError(
                "refused: queries may not read, write or attach files, load extensions or change "
                f"settings ({first_line(exc)}); export results with `neurons export`"
            ) from None
        raise UserError(f"query failed: {first_line(exc)}") from None


def nan_to_null(df: pl.DataFrame) -> pl.DataFrame:
    """Every float NaN (also inside lists) as null: undefined is null in every output."""
    fixes = []
    for name, dtype in df.schema.items():
        if dtype.is_float():
            fixes.append(pl.col(name).fill_nan(None))
        elif isinstance(dtype, pl.List) and dtype.inner.is_float():
            fixes.append(pl.col(name).list.eval(pl.element().fill_nan(None)))
    return df.with_columns(fixes) if fixes else df


def json_value(value):
    """A JSON-safe value: NaN and infinities become None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def to_json(obj, indent: int | None = 1) -> str:
    """Strict JSON (no NaN tokens): undefined numbers are null."""
    return json.dumps(json_value(obj), ensure_ascii=False, default=str, indent=indent, allow_nan=False)


def flatten_nested(df: pl.DataFrame) -> pl.DataFrame:
    """Lists and structs as JSON text, for formats that hold only scalars."""
    nested = [c for c, t in df.schema.items() if t.is_nested()]
    return df.with_columns(
        pl.col(c).map_elements(
            lambda v: to_json(v.to_list() if hasattr(v, "to_list") else v, indent=None), return_dtype=pl.String
        )
        for c in nested
    )


def _cells(df: pl.DataFrame, float_precision: int | None) -> list[list[str]]:
    """Every value as display text: floats at FLOAT_PRECISION decimals (else 6 significant digits), null as
    NULL_MARK."""
    columns = []
    for name, dtype in df.schema.items():
        values = df[name].to_list()
        if dtype.is_float():
            fmt = (lambda v: fixed(v, float_precision)) if float_precision is not None else (lambda v: f"{v:.6g}")
            columns.append([NULL_MARK if v is None else fmt(v) for v in values])
        else:
            columns.append([NULL_MARK if v is None else str(v) for v in values])
    return [list(row) for row in zip(*columns)] if columns else []


def render(df: pl.DataFrame, fmt: str = "table", float_precision: int | None = None) -> str:
    """DF as an aligned text table (numbers right-aligned), CSV, JSON (a list of row objects) or a Markdown
    table; NaN and null are the same undefined value in each (see the module's docstring)."""
    df = nan_to_null(df)
    if fmt == "csv":
        return flatten_nested(df).write_csv()
    if fmt == "json":
        return to_json(df.to_dicts()) + "\n"
    flat = flatten_nested(df)
    header = flat.columns
    rows = _cells(flat, float_precision)
    numeric = [t.is_numeric() for t in flat.dtypes]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: list[str], sep: str) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)]
        return sep.join(parts)

    if fmt == "markdown":
        rule = ["-" * (w + 1) + ":" if num else "-" * (w + 2) for w, num in zip(widths, numeric)]
        lines = ["| " + line(header, " | ") + " |", "|" + "|".join(rule) + "|"]
        lines += ["| " + line([c.replace("|", "\\|") for c in r], " | ") + " |" for r in rows]
        return "\n".join(lines) + "\n"
    lines = [line(header, "  ").rstrip()]
    lines.append("-" * max(len(lines[0]), 1))
    lines += [line(r, "  ").rstrip() for r in rows]
    return "\n".join(lines) + "\n"
