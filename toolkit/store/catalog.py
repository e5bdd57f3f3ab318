"""The SQL catalogue: the one reader of `sql/`. Every other module (the warehouse's migrations, Spark's
transpiled statistics, the scores of predictions outside a warehouse, the report's quoted definitions, a shard's
partial moments) asks it for statements instead of opening the files.

Files are split into statements by DuckDB's own parser (`extract_statements`), so a ';' or '--' inside a string
never splits or cuts a statement. Each statement keeps the comment block written just above it, which is the
definition the report quotes and the docs cite.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb

DEFINITION = re.compile(
    r"CREATE\s+OR\s+REPLACE\s+(?P<kind>VIEW|MACRO)\s+(?P<name>\w+)\s*(?:\((?P<params>[^)]*)\)\s*)?AS\s+(?:TABLE\s+)?(?P<body>.*)",
    re.S | re.I,
)


@dataclass(frozen=True)
class Statement:
    """One statement of a file of `sql/`."""

    file: str  # relative to sql/, e.g. 'views/010_statistics.sql'
    text: str  # the statement as written, without the comment block above it
    comment: str  # that comment block as one line of prose ('' when there is none)
    kind: str  # 'view', 'macro' or 'other' (tables, types, indexes)
    name: str | None  # the view's or macro's name
    parameters: str | None  # a macro's parameter list as written
    body: str | None  # the SELECT after AS (AS TABLE for a table macro), comments removed


def sql_dir() -> Path:
    """The `sql/` folder shipped with the package (the repository's top-level `sql/`)."""
    return Path(str(resources.files("toolkit.sql")))


def files(kind: str) -> list[Path]:
    """The files of `sql/KIND` ('schema' or 'views') in the order they are applied."""
    return sorted((sql_dir() / kind).glob("*.sql"))


def _without_comments(text: str) -> str:
    return "\n".join(line.split("--", 1)[0].rstrip() for line in text.splitlines()).strip()


def _split_comment(raw: str) -> tuple[str, str]:
    """(the comment block directly above the statement's first line of code, the statement from that line on)."""
    lines = raw.strip("\n").splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("--")), len(lines))
    block: list[str] = []
    for ln in reversed(lines[:first]):
        if not ln.lstrip().startswith("--"):
            break
        block.insert(0, ln.lstrip()[2:].strip())
    return " ".join(block), "\n".join(lines[first:])


@functools.cache
def statements(file: str) -> tuple[Statement, ...]:
    """The statements of `sql/FILE` (e.g. 'views/010_statistics.sql'), split by DuckDB's parser."""
    con = duckdb.connect()
    try:
        parsed = con.extract_statements((sql_dir() / file).read_text())
    finally:
        con.close()
    out = []
    for st in parsed:
        comment, text = _split_comment(st.query)
        code = _without_comments(text).rstrip(";").rstrip()
        m = DEFINITION.fullmatch(code)
        out.append(
            Statement(
                file=file,
                text=text.strip(),
                comment=comment,
                kind=m.group("kind").lower() if m else "other",
                name=m.group("name") if m else None,
                parameters=m.group("params") if m else None,
                body=m.group("body").strip() if m else None,
            )
        )
    return tuple(out)


def file_statements(kind: str) -> list[Statement]:
    """Every statement of `sql/KIND`, file by file in order."""
    return [s for p in files(kind) for s in statements(f"{kind}/{p.name}")]


def definition(name: str) -> Statement:
    """The view or macro NAME of `sql/views`."""
    for s in file_statements("views"):
        if s.name == name:
            return s
    raise KeyError(f"no view or macro {name} in sql/views")


def view_query(name: str) -> str:
    """The SELECT that defines view NAME: for running one definition outside a warehouse (a shard's partial
    moments, predictions scored in memory) without writing it twice."""
    found = definition(name)
    if found.kind != "view":
        raise KeyError(f"{name} is a {found.kind}, not a view")
    return found.body


@functools.lru_cache(maxsize=1)
def _migrations() -> tuple[tuple[int, str], ...]:
    return tuple((int(p.name.split("_", 1)[0]), p.read_text()) for p in files("schema"))


def migrations() -> list[tuple[int, str]]:
    """(version, SQL text) of each schema migration, in order (read once per process)."""
    return list(_migrations())


def schema_version() -> int:
    """The highest migration number under `sql/schema/`: the schema version this package writes."""
    return max(v for v, _ in migrations())


@functools.lru_cache(maxsize=1)
def views_digest() -> str:
    """A digest of every file of `sql/views`: a warehouse whose stored digest differs gets its views re-applied."""
    h = hashlib.sha256()
    for p in files("views"):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def view_files() -> list[str]:
    """The text of each file of `sql/views`, in order (each is a series of idempotent CREATE OR REPLACE)."""
    return [p.read_text() for p in files("views")]


def definitions() -> dict[str, tuple[str, str]]:
    """(comment, file) of each view and macro of `sql/views`: the definition a figure or table quotes."""
    return {s.name: (s.comment, f"sql/{s.file}") for s in file_statements("views") if s.name}


def quote(text: str) -> str:
    """TEXT as a SQL string literal (DuckDB and Spark both read '' as one quote)."""
    return "'" + text.replace("'", "''") + "'"


def literal(value: str | int) -> str:
    """An integer as a number, anything else as a string literal."""
    return str(int(value)) if isinstance(value, int) else quote(str(value))
