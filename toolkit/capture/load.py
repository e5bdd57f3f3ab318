"""Importing a long-format activations table made elsewhere (another extractor, another framework).

Columns: sentence_id, language, label, layer, neuron, value; text optional. The table is checked whole
before the warehouse is touched, then written in one transaction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from toolkit.capture.datasets import (
    file_rows,
    file_sha256,
    first_rows,
    read_table,
    require_columns,
    require_present,
    require_scalar,
    require_unique,
    require_visible,
)
from toolkit.errors import UserError
from toolkit.store.arrow import insert_run_rows, insert_table, neuron_table
from toolkit.store.runs import run_record
from toolkit.store.warehouse import Warehouse, validate_run_name

FLOAT32_MAX = float(np.finfo(np.float32).max)
REQUIRED = ("sentence_id", "language", "label", "layer", "neuron", "value")


def _numeric(df: pl.DataFrame, path: Path, column: str, dtype: pl.DataType, what: str) -> pl.Series:
    """COLUMN cast to DTYPE; a clear error naming the first rows that are missing or not numbers."""
    raw = df[column]
    cast = raw.cast(dtype, strict=False) if raw.dtype != dtype else raw
    if dtype.is_integer() and raw.dtype.is_float():
        bad_frac = (raw != raw.floor()).fill_null(False)
        if bad_frac.any():
            raise UserError(f"{path}: {what} must be whole numbers ({first_rows(bad_frac, file_rows(df))})")
    bad = cast.is_null()
    if bad.any():
        example = raw.filter(bad).head(1).to_list()[0]
        raise UserError(
            f"{path}: {what} (column '{column}') is missing or not a number in {int(bad.sum())} row(s) "
            f"({first_rows(bad, file_rows(df))}, e.g. {example!r}); fix or remove them"
        )
    return cast


def _sentence_ids(raw: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(integer sentence_id, source_id text): the ids themselves when they are integers in range, else
    their order of first appearance."""
    as_int = raw.cast(pl.Int64, strict=False)
    text = raw.cast(pl.String)
    if as_int.null_count() == 0 and as_int.min() >= 0 and as_int.max() < 2**32:
        return as_int.cast(pl.UInt32), text
    firsts = text.unique(maintain_order=True)
    mapping = pl.DataFrame({"key": firsts, "id": pl.int_range(0, len(firsts), dtype=pl.UInt32, eager=True)})
    ids = pl.DataFrame({"key": text}).join(mapping, on="key", how="left", maintain_order="left")["id"]
    return ids, text


def read_long(path: str | Path) -> pl.DataFrame:
    """Read and check a long table; returns sentence_id, source_id, text, language, label, layer, neuron, value."""
    path = Path(path)
    df = read_table(path)
    require_columns(df, path, {c: "" for c in REQUIRED})
    for column in ("sentence_id", "language", "label", "layer", "neuron", "value", "text"):
        if column in df.columns:
            require_scalar(df, path, column, column.replace("_", " "))
    for column in ("sentence_id", "language", "label"):
        require_present(df, path, column, column.replace("_", " "))
    for column in ("language", "label"):
        require_visible(df, path, column, column)
    value = _numeric(df, path, "value", pl.Float64, "value")
    nonfinite = ~value.is_finite()
    if nonfinite.any():
        raise UserError(
            f"{path}: value is not finite (nan or inf) in {int(nonfinite.sum())} row(s) "
            f"({first_rows(nonfinite, file_rows(df))}); fix or remove them"
        )
    overflow = value.abs() > FLOAT32_MAX
    if overflow.any():
        example = value.filter(overflow).head(1).to_list()[0]
        raise UserError(
            f"{path}: value is outside the float32 range (|value| > {FLOAT32_MAX:.4g}) in {int(overflow.sum())} "
            f"row(s) ({first_rows(overflow, file_rows(df))}, e.g. {example!r}); activations are stored as float32, "
            "so it would become infinite: rescale or remove them"
        )
    layer = _numeric(df, path, "layer", pl.Int64, "layer")
    neuron = _numeric(df, path, "neuron", pl.Int64, "neuron")
    for s, hi, what in ((layer, 255, "layer"), (neuron, 65535, "neuron")):
        out = (s < 0) | (s > hi)
        if out.any():
            raise UserError(f"{path}: {what} must be between 0 and {hi} ({first_rows(out, file_rows(df))})")
    sid, source = _sentence_ids(df["sentence_id"])
    long = pl.DataFrame(
        {
            "sentence_id": sid,
            "source_id": source,
            "text": df["text"].cast(pl.String)
            if "text" in df.columns
            else pl.Series([None] * df.height, dtype=pl.String),
            "language": df["language"].cast(pl.String).str.strip_chars(),
            "label": df["label"].cast(pl.String).str.strip_chars(),
            "layer": layer.cast(pl.UInt8),
            "neuron": neuron.cast(pl.UInt16),
            "value": value.cast(pl.Float32),
            "n_tokens": _numeric(df, path, "n_tokens", pl.Int64, "n_tokens").cast(pl.Int32)
            if "n_tokens" in df.columns
            else pl.Series([None] * df.height, dtype=pl.Int32),
        }
    )
    require_unique(long, path, ["sentence_id", "layer", "neuron"], "(sentence_id, layer, neuron) row")
    per_sentence = long.group_by("sentence_id").agg(
        pl.col("source_id").first(),
        pl.col("language").n_unique().alias("nl"),
        pl.col("label").n_unique().alias("nb"),
        pl.col("text").n_unique().alias("nt"),
        pl.col("n_tokens").n_unique().alias("nn"),
    )
    mixed = per_sentence.filter((pl.col("nl") > 1) | (pl.col("nb") > 1) | (pl.col("nt") > 1) | (pl.col("nn") > 1))
    if mixed.height:
        raise UserError(
            f"{path}: sentence {mixed['source_id'][0]!r} has more than one language, label or text; "
            "each sentence_id must carry one of each"
        )
    grid = long.group_by("layer").agg(
        pl.col("neuron").n_unique().alias("neurons"), pl.col("sentence_id").n_unique().alias("sentences")
    )
    n_sentences = per_sentence.height
    cells = long.group_by("sentence_id", "layer").len().join(grid, on="layer")
    gaps = grid.filter(pl.col("sentences") < n_sentences)
    short = cells.filter(pl.col("len") < pl.col("neurons"))
    if gaps.height or short.height:
        where = (
            f"layer {gaps['layer'][0]} lacks some sentences"
            if gaps.height
            else f"sentence_id {short['sentence_id'][0]} has {short['len'][0]} of the {short['neurons'][0]} neurons of layer {short['layer'][0]}"
        )
        raise UserError(
            f"{path}: the table is not a full sentence x layer x neuron grid ({where}); every sentence needs every neuron of every layer"
        )
    return long


def imported_run(
    run_id: int,
    run: str,
    path: Path,
    digest: str,
    layers: list[int],
    site: str,
    pooling: str | None,
    hidden: int,
    n_sentences: int,
    n_languages: int,
    n_labels: int,
    settings: dict,
) -> dict:
    """The `runs` row of an imported table (complete: an import is one transaction)."""
    record = run_record(
        run,
        "load",
        data_file=str(path.resolve()),
        data_sha256=digest,
        layers=layers,
        hidden_size=hidden,
        counts=(n_sentences, n_languages, n_labels),
        settings=settings,
        site=site,
        pooling=pooling,
        complete=True,
    )
    return {"run_id": run_id, **record}


def load_long(
    db: str | Path | None,
    path: str | Path,
    run: str,
    replace: bool = False,
    site: str = "residual",
    pooling: str | None = None,
) -> dict:
    """Import a long table as run RUN in one transaction; returns counts. SITE and POOLING say what the values
    are (e.g. ffn / active for token shares that LAPE reads, with an n_tokens column)."""
    path = Path(path)
    if site not in ("residual", "ffn") or pooling not in (None, "cls", "mean", "active"):
        raise UserError("--site is residual or ffn; --pooling cls, mean or active")
    long = read_long(path)
    if pooling == "active":
        if long["n_tokens"].null_count() or (long["n_tokens"] < 1).any():
            raise UserError(f"{path}: --pooling active needs an n_tokens column (tokens per sentence, at least 1)")
        if ((long["value"] < 0) | (long["value"] > 1)).any():
            raise UserError(f"{path}: --pooling active values are shares of tokens, between 0 and 1")
    sentences = (
        long.unique("sentence_id", keep="first", maintain_order=True)
        .select("sentence_id", "source_id", "text", "language", "label", "n_tokens")
        .sort("sentence_id")
    )
    vectors = (
        long.select("sentence_id", "layer", "neuron", "value")
        .sort("layer", "sentence_id", "neuron")
        .group_by("layer", "sentence_id", maintain_order=True)
        .agg(pl.col("value").alias("vector"))
        .select("sentence_id", "layer", "vector")
    )
    neurons = {
        int(k[0]): g["neuron"].sort().to_numpy() for k, g in long.select("layer", "neuron").unique().group_by("layer")
    }
    layers = sorted(long["layer"].unique().to_list())
    hidden = int(long.group_by("layer").agg(pl.col("neuron").max())["neuron"].max()) + 1
    digest = file_sha256(path)
    validate_run_name(run)
    with Warehouse(db) as wh:
        with wh.new_run(run, replace) as (con, run_id):
            wh.insert_run(
                imported_run(
                    run_id,
                    run,
                    path,
                    digest,
                    layers,
                    site,
                    pooling,
                    hidden,
                    sentences.height,
                    sentences["language"].n_unique(),
                    sentences["label"].n_unique(),
                    {"data_file": str(path.resolve()), "data_sha256": digest},
                )
            )
            insert_table(con, "layer_neurons", neuron_table(layers, neurons), "run_id", run_id)
            insert_run_rows(con, run_id, sentences.to_arrow(), vectors.to_arrow())
            wh.materialize(run_id)
    return {"n_sentences": sentences.height, "layers": layers, "hidden_size": hidden, "n_values": long.height}
