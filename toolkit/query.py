"""Ad-hoc SQL on a read-only connection, and rendering results as text, CSV, JSON or Markdown."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

from toolkit.errors import UserError
from toolkit.warehouse import Warehouse

READ_ONLY_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA", "MULTI"}  # MULTI: PIVOT; the connection is read-only anyway


def first_line(exc: BaseException) -> str:
    return " ".join(str(exc).strip().splitlines()[:1]) or type(exc).__name__


def run_query(db: str | Path | None, sql: str) -> pl.DataFrame:
    """Run SQL (one or more statements; the last one's result is returned) without changing the file.

    The connection is read-only, and anything but SELECT / EXPLAIN / PRAGMA / SHOW / DESCRIBE is refused
    before it runs, so the warehouse cannot be modified through this path.
    """
    if not sql.strip():
        raise UserError("the query is empty; pass SQL as an argument or on stdin with `-`")
    with Warehouse(db, read_only=True) as wh:
        return execute_read_only(wh.con, sql)


def execute_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    """Run SQL on CON after refusing anything but read statements; the last statement's result."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise UserError(f"query failed: {first_line(exc)}") from None
    for st in statements:
        kind = st.type.name
        if kind not in READ_ONLY_STATEMENTS:
            raise UserError(
                f"refused: {kind} statements are not allowed, the warehouse is opened read-only for queries; "
                "use `neurons extract/load` (with --replace) to change runs"
            )
    try:
        result = None
        for st in statements:
            result = con.sql(st.query)
        return result.pl() if result is not None else pl.DataFrame()
    except duckdb.Error as exc:
        raise UserError(f"query failed: {first_line(exc)}") from None


def flatten_nested(df: pl.DataFrame) -> pl.DataFrame:
    """Lists and structs as JSON-ish text, for formats that hold only scalars."""
    nested = [c for c, t in df.schema.items() if t.is_nested()]
    return df.with_columns(
        pl.col(c).map_elements(lambda v: json.dumps(v.to_list() if hasattr(v, "to_list") else v), return_dtype=pl.String)
        for c in nested
    )


def render(df: pl.DataFrame, fmt: str = "table", float_precision: int | None = None) -> str:
    """DF as an aligned text table, CSV, JSON (a list of row objects) or a Markdown table."""
    if fmt == "csv":
        return flatten_nested(df).write_csv()
    if fmt == "json":
        return json.dumps(df.to_dicts(), ensure_ascii=False, default=str, indent=1)
    style = "ASCII_MARKDOWN" if fmt == "markdown" else "NOTHING"
    with pl.Config(
        tbl_formatting=style,
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_hide_dtype_separator=True,
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=10_000,
        fmt_str_lengths=200,
        fmt_table_cell_list_len=12,
        float_precision=float_precision,
    ):
        text = str(df)
    if fmt == "table":
        lines = [ln.rstrip() for ln in text.splitlines()]
        if len(lines) > 1:
            lines.insert(1, "-" * max(len(ln) for ln in lines))
        text = "\n".join(lines)
    return text + "\n"
