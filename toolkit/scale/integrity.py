"""What a reader checks before it trusts a lake run's files, so that a lake never reports success over missing,
merged or damaged data (README, "Beyond one machine"):

- **Checksums.** Each chunk's writer records the sha256 and size of every activations and moments file it
  committed, in the lake's `checksums` table, before the chunk's last commit (its sentences). `lake attach`
  reads every file and compares (`verify(..., content=True)`): flipped bytes inside a Parquet page, which a
  Parquet reader may return as plausible numbers, are refused.
- **Completeness.** Every committed chunk (its sentences committed) has, for every layer of the run, activations
  files holding exactly its sentences x neurons values, and moments files: a lost or rolled-back commit of
  `activations` or `moments` is refused, never read as a smaller run.
- **One chunk per file.** A file whose rows come from several chunks or writers (a Delta OPTIMIZE compacts
  them) cannot be attributed to the one copy of each chunk that readers take; it is refused with the version to
  restore.

Everything but the checksums reads only the Delta log's statistics (`verify(..., content=False)`, what Spark's
readers run before every job).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import polars as pl
import pyarrow as pa

from toolkit.errors import UserError

KEYS = ["min.shard", "min.chunk", "min.writer"]
DATA_TABLES = ("activations", "moments")
COUNT_TABLES = ("fired",)  # an aggregate run's (`extract --aggregate`): its chunks' counts


def sha256(path: Path) -> str:
    """The hex sha256 of the file at PATH (read in 8 MiB blocks; hashlib releases the GIL, so threads overlap)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def checksum_rows(lake, name: str, run: str, shard: int, chunk: int, writer: str) -> pa.Table:
    """The `checksums` rows of the files that WRITER committed to table NAME for CHUNK of SHARD of RUN: the
    file's path as the Delta log names it, its size and its sha256 (read back from disk once, just written)."""
    actions = pl.from_arrow(lake.actions(name, run).select(["path", "size_bytes", *KEYS]))
    mine = actions.filter(
        (pl.col("min.shard") == shard) & (pl.col("min.chunk") == chunk) & (pl.col("min.writer") == writer)
    )
    paths = mine["path"].to_list()
    return pa.table(
        {
            "run": pa.array([run] * len(paths), pa.string()),
            "table_name": pa.array([name] * len(paths), pa.string()),
            "path": pa.array(paths, pa.string()),
            "size_bytes": pa.array(mine["size_bytes"].to_list(), pa.int64()),
            "sha256": pa.array([sha256(lake.path(name) / unquote(p)) for p in paths], pa.string()),
        }
    )


def _compacted(lake, name: str, run: str) -> None:
    """Refuse files that hold rows of more than one chunk or writer (a compaction), naming the version to restore."""
    actions = pl.from_arrow(lake.actions(name, run))
    if not actions.height or "min.writer" not in actions.columns:
        return
    mixed = actions.filter(
        (pl.col("min.shard") != pl.col("max.shard"))
        | (pl.col("min.chunk") != pl.col("max.chunk"))
        | (pl.col("min.writer") != pl.col("max.writer"))
    )
    if mixed.height:
        history = lake.table(name).history()
        merges = [h["version"] for h in history if h.get("operation") == "OPTIMIZE"]
        way = (
            f"restore it to version {min(merges) - 1} (deltalake: DeltaTable('{lake.path(name)}').restore("
            f"{min(merges) - 1})) or extract the run again"
            if merges
            else "extract the run again"
        )
        raise UserError(
            f"the lake's table {name} was compacted: {mixed.height} files of run '{run}' mix rows of several chunks "
            f"or writers, so each chunk can no longer be read exactly once; {way}, and do not OPTIMIZE a neurons lake"
        )


def _complete(lake, run: str, layers: list[int], width: int, moments: bool) -> None:
    """Refuse a run whose committed chunks lack activations (per layer, sentences x neurons values) or (MOMENTS)
    their partial moments."""
    sentences = pl.from_arrow(lake.chosen("sentences", run).select(["num_records", *KEYS[:2]]))
    chunks = sentences.group_by(KEYS[:2]).agg(pl.col("num_records").sum().alias("n"))
    acts = pl.from_arrow(lake.chosen("activations", run).select(["num_records", *KEYS[:2], "partition.layer"]))
    expected = chunks.join(pl.DataFrame({"layer": layers}, schema={"layer": pl.Int64}), how="cross")
    got = acts.group_by([*KEYS[:2], pl.col("partition.layer").cast(pl.Int64).alias("layer")]).agg(
        pl.col("num_records").sum().alias("values")
    )
    short = (
        expected.join(got, on=[*KEYS[:2], "layer"], how="left")
        .with_columns(pl.col("values").fill_null(0))
        .filter(pl.col("values") != pl.col("n") * width)
        .sort(KEYS[:2] + ["layer"])
    )
    if short.height:
        row = short.row(0, named=True)
        raise UserError(
            f"the lake's run '{run}' is incomplete: chunk {row['min.chunk']} of shard {row['min.shard']} has "
            f"{row['values']:,} of {row['n'] * width:,} activation values at layer {row['layer']} ({short.height} "
            "chunk layers short in all); an activations commit was lost or removed outside neurons; extract the "
            "run again under another name"
        )
    if not moments:
        return
    parts = pl.from_arrow(lake.chosen("moments", run).select(KEYS[:2])).unique()
    if parts.filter(pl.col("min.shard") < 0).height:  # moments computed on Spark stand for every chunk
        return
    lacking = chunks.join(parts, on=KEYS[:2], how="anti")
    if lacking.height:
        row = lacking.sort(KEYS[:2]).row(0, named=True)
        raise UserError(
            f"the lake's run '{run}' is incomplete: chunk {row['min.chunk']} of shard {row['min.shard']} has no "
            f"partial moments ({lacking.height} chunks lack them); a moments commit was lost or removed outside "
            "neurons; extract the run again under another name"
        )


def _checksums(lake, run: str, content: bool, tables: tuple[str, ...] = DATA_TABLES) -> None:
    """Every file of RUN in TABLES has its writer's checksum; with CONTENT, its bytes match it."""
    sums = lake.read("checksums", run)
    recorded = (
        {(r["table_name"], r["path"]): (r["size_bytes"], r["sha256"]) for r in sums.to_pylist()}
        if sums.num_rows
        else {}
    )
    todo = []
    for name in tables:
        actions = lake.chosen(name, run)
        for path, size in zip(actions["path"].to_pylist(), actions["size_bytes"].to_pylist()):
            want = recorded.get((name, path))
            if want is None:
                raise UserError(
                    f"the lake's file {name}/{unquote(path)} of run '{run}' has no checksum: it was written outside "
                    "neurons (or by a version without checksums); extract the run again under another name"
                )
            if want[0] != size:
                raise UserError(
                    f"the lake's file {name}/{unquote(path)} changed size since it was committed; {DAMAGED}"
                )
            todo.append((lake.path(name) / unquote(path), want[1]))
    if not content:
        return
    paths = [p for p, _ in todo]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"the lake's file {missing[0]} is missing ({len(missing)} files of run '{run}'); {DAMAGED}")
    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
        digests = list(pool.map(sha256, paths))
    bad = np.flatnonzero([d != want for d, (_, want) in zip(digests, todo)])
    if bad.size:
        raise UserError(
            f"the lake's file {paths[bad[0]]} does not match its checksum ({bad.size} of {len(paths)} files of run "
            f"'{run}' damaged); {DAMAGED}"
        )


DAMAGED = "restore the lake from a backup, or extract the run again under another name"


def verify(lake, run: str, layers: list[int], width: int, content: bool = True, moments: bool = True) -> None:
    """Refuse RUN of LAKE unless every committed chunk's files are there, whole, one chunk each, and (CONTENT)
    unchanged since their writer committed them (see the module's docstring). MOMENTS false: a reader that
    computes the moments from the activations (Spark) needs no partial moments."""
    for name in DATA_TABLES:
        _compacted(lake, name, run)
    _complete(lake, run, layers, width, moments)
    _checksums(lake, run, content)


def verify_counts(lake, run: str, layers: list[int], width: int, content: bool = True) -> None:
    """`verify` for an aggregate run (`extract --aggregate`): every committed chunk (its `tokens` committed) has
    `fired` files holding, for each language it read, layers x neurons counts, one chunk each, unchanged."""
    for name in COUNT_TABLES:
        _compacted(lake, name, run)
    tokens = pl.from_arrow(lake.chosen("tokens", run).select(["num_records", *KEYS[:2]]))
    fired = pl.from_arrow(lake.chosen("fired", run).select(["num_records", *KEYS[:2]]))
    per_chunk = [pl.col("num_records").sum().alias("n")]
    short = (
        tokens.group_by(KEYS[:2])
        .agg(*per_chunk)
        .join(fired.group_by(KEYS[:2]).agg(pl.col("num_records").sum().alias("values")), on=KEYS[:2], how="left")
        .with_columns(pl.col("values").fill_null(0))
        .filter(pl.col("values") != pl.col("n") * len(layers) * width)
        .sort(KEYS[:2])
    )
    if short.height:
        row = short.row(0, named=True)
        raise UserError(
            f"the lake's run '{run}' is incomplete: chunk {row['min.chunk']} of shard {row['min.shard']} has "
            f"{row['values']:,} of {row['n'] * len(layers) * width:,} counts ({short.height} chunks short in all); a "
            "fired commit was lost or removed outside neurons; extract the run again under another name"
        )
    _checksums(lake, run, content, COUNT_TABLES)
