"""Reading a user's labelled dataset (CSV, TSV, JSONL, Parquet) and checking it before anything is written.

Every problem found here is a `UserError` naming the file, what is wrong and how to fix it, raised
before the warehouse is touched.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import polars as pl

from toolkit.capture.options import DataSpec
from toolkit.errors import UserError, first_line

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def sample_path() -> Path:
    """The bundled multilingual emotion sample (ar, en, ja, nl, sl; six labels; train/test split)."""
    return Path(str(resources.files("toolkit.data") / "emotions_sample.csv"))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_table(path: str | Path, formats: dict[str, str] = FORMATS) -> pl.DataFrame:
    """Read a data file into a DataFrame; text formats are decoded strictly as UTF-8."""
    path = Path(path)
    kind = formats.get(path.suffix.lower())
    if kind is None:
        raise UserError(
            f"{path}: unsupported format '{path.suffix or '(none)'}'; use one of {', '.join(sorted(formats))}"
        )
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        if kind == "parquet":
            df = pl.read_parquet(path)
        else:
            raw = path.read_bytes()
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(
                    f"{path}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); re-save it as UTF-8"
                ) from None
            if not raw.strip():
                raise UserError(f"{path}: the file is empty; it needs a header and at least one row")
            if kind == "jsonl":
                df = pl.read_ndjson(raw)
            else:
                df = pl.read_csv(
                    raw,
                    separator="\t" if kind == "tsv" else ",",
                    infer_schema=False,
                    quote_char=None if kind == "tsv" else '"',
                )
    except UserError:
        raise
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UserError(
            f"{path}: cannot read it as {kind.upper()} ({first_line(exc)}); check the file's format"
        ) from None
    if df.height == 0:
        raise UserError(f"{path}: the file has no rows; it needs at least one sentence")
    duplicated = sorted({c.split("_duplicated_")[0] for c in df.columns if "_duplicated_" in c})
    if duplicated:
        raise UserError(
            f"{path}: duplicate column name(s) {', '.join(repr(c) for c in duplicated)} in the header; "
            "give every column its own name"
        )
    return df


def require_columns(df: pl.DataFrame, path: Path, wanted: dict[str, str]) -> None:
    """Fail with the missing and the found column names. WANTED maps column -> option that renames it."""
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        hints = ", ".join(f"{wanted[c]}" for c in missing if wanted[c])
        raise UserError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)} "
            f"(found: {', '.join(repr(c) for c in df.columns)})"
            + (f"; name the right ones with {hints}" if hints else "")
        )


def file_rows(df: pl.DataFrame) -> pl.Series:
    """1-based data row numbers (header excluded) of DF's rows in the file: its `_row` column, else 1..n."""
    return df["_row"] if "_row" in df.columns else pl.int_range(1, df.height + 1, eager=True)


def first_rows(mask: pl.Series, rows: pl.Series, n: int = 3) -> str:
    """'rows 3, 9, 12' of the first N true entries of MASK, numbered by ROWS."""
    rows = rows.filter(mask).head(n).to_list()
    more = int(mask.sum()) - len(rows)
    return (
        ("row " if len(rows) == 1 else "rows ") + ", ".join(map(str, rows)) + (f" and {more} more" if more > 0 else "")
    )


INVISIBLE = r"[\p{Cf}\p{Cc}]"  # zero-width and other format characters (U+200B, U+FEFF, ...), control characters


def require_scalar(df: pl.DataFrame, path: Path, column: str, what: str) -> None:
    """Fail when COLUMN holds lists or structs: one value per sentence is needed."""
    if df[column].dtype.is_nested():
        raise UserError(
            f"{path}: {what} (column '{column}') holds {df[column].dtype} values; give one plain {what} per row"
        )


def require_visible(df: pl.DataFrame, path: Path, column: str, what: str) -> None:
    """Fail when COLUMN's values contain invisible characters: 'joy' and 'joy\u200b' would be two labels that
    print the same."""
    col = df[column].cast(pl.String)
    bad = col.str.contains(INVISIBLE).fill_null(False)
    if bad.any():
        value = col.filter(bad).head(1).to_list()[0]
        char = next(ch for ch in value if unicodedata.category(ch) in ("Cf", "Cc"))
        name = unicodedata.name(char, "control character")
        raise UserError(
            f"{path}: {what} (column '{column}') contains an invisible character (U+{ord(char):04X} {name}) in "
            f"{int(bad.sum())} row(s) ({first_rows(bad, file_rows(df))}, e.g. {value!r}); remove it"
        )


def require_present(df: pl.DataFrame, path: Path, column: str, what: str) -> None:
    """Fail when COLUMN has nulls or blank strings."""
    col = df[column]
    bad = col.is_null() | (col.cast(pl.String).str.strip_chars() == "")
    if bad.any():
        raise UserError(
            f"{path}: {what} (column '{column}') is empty or missing in {int(bad.sum())} row(s) "
            f"({first_rows(bad, file_rows(df))}); fill or remove them"
        )


def require_unique(df: pl.DataFrame, path: Path, columns: list[str], what: str) -> None:
    """Fail on the first duplicated key of COLUMNS, naming both rows."""
    dup = df.select(columns).is_duplicated()
    if dup.any():
        key = df.row(int(dup.arg_true()[0]), named=True)
        same = pl.all_horizontal(pl.col(c) == key[c] for c in columns)
        rows = file_rows(df).filter(df.select(same).to_series()).head(2).to_list()
        shown = ", ".join(f"{c}={key[c]!r}" for c in columns)
        raise UserError(f"{path}: duplicate {what} ({shown}) in rows {rows[0]} and {rows[1]}; {what}s must be unique")


@dataclass(frozen=True)
class Dataset:
    """Sentences to extract: sentence_id (0-based file row), source_id, text, language, label, split."""

    path: Path
    sha256: str
    frame: pl.DataFrame
    spec: DataSpec  # the columns, splits and limit it was read with

    @property
    def options(self) -> dict:
        """The spec as a run's settings record it."""
        return self.spec.stored()

    @property
    def n_sentences(self) -> int:
        return self.frame.height


def read_dataset(path: str | Path, spec: DataSpec | None = None, **given) -> Dataset:
    """Read and check a labelled dataset as SPEC says (GIVEN: DataSpec fields that override it): keep the rows of
    its splits (if any), then the first LIMIT rows."""
    spec = replace(spec or DataSpec(), **given)
    if spec.splits and not spec.split_column:
        spec = replace(spec, split_column="split")
    text_column, language_column, label_column = spec.text_column, spec.language_column, spec.label_column
    id_column, split_column, splits, limit = spec.id_column, spec.split_column, spec.splits, spec.limit
    path = Path(path)
    df = read_table(path)
    wanted = {text_column: "--text-column", language_column: "--language-column", label_column: "--label-column"}
    if id_column:
        wanted[id_column] = "--id-column"
    if split_column:
        wanted[split_column] = "--split-column"
    require_columns(df, path, wanted)
    for column, what in (
        (text_column, "text"),
        (language_column, "language"),
        (label_column, "label"),
        (id_column, "sentence id"),
        (split_column, "split"),
    ):
        if column:
            require_scalar(df, path, column, what)

    def as_text(column: str | None) -> pl.Expr:
        return pl.col(column).cast(pl.String) if column else pl.lit(None, dtype=pl.String)

    frame = df.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("sentence_id"),
        as_text(id_column).alias("source_id"),
        as_text(text_column).alias("text"),
        as_text(language_column).str.strip_chars().alias("language"),
        as_text(label_column).str.strip_chars().alias("label"),
        as_text(split_column).alias("split"),
    )
    if splits:
        keep = frame["split"].is_in(list(splits))
        if not keep.any():
            found = ", ".join(sorted(frame["split"].drop_nulls().unique().to_list())) or "none"
            raise UserError(f"{path}: no rows with {split_column} in {', '.join(splits)} (found: {found})")
        frame = frame.filter(keep)
    if limit is not None:
        frame = frame.head(limit)
    checked = frame.with_columns(_row=pl.col("sentence_id").cast(pl.Int64) + 1)
    for column, what in (("text", "text"), ("language", "language"), ("label", "label")):
        require_present(checked, path, column, what)
    for column, what in (("language", "language"), ("label", "label")):
        require_visible(checked, path, column, what)
    if id_column:
        require_present(checked, path, "source_id", "sentence id")
        ids = checked.select(pl.col("source_id").alias(id_column), "_row")  # the id column may also be the text's
        require_unique(ids, path, [id_column], "sentence id")
    return Dataset(path=path.resolve(), sha256=file_sha256(path), frame=frame, spec=spec)
