"""A Delta Lake of activations: the storage of sharded extraction, for studies larger than one DuckDB file
(README, "Beyond one machine").

A lake is a folder of Delta tables:

- `runs`: one record per run and shard that started it; every shard of a run must record the same settings.
- `sentences`: one row per sentence (partitioned by run).
- `activations`: one row per sentence, layer and neuron (partitioned by run and layer; within a file sorted
  by neuron, then sentence), with the sentence's language, label and token count.
- `moments`: per committed chunk, the count, mean, population variance, minimum and maximum of each layer x
  language x label x neuron (label null: the whole language), i.e. partial moments that `neurons lake attach`
  merges exactly.
- `checksums`: the size and sha256 of every activations and moments file, recorded by its writer
  (`toolkit.scale.integrity`, which readers run before they trust a run's files).
- `shards`: one row per finished shard.
- `fired`, `tokens`: an aggregate run's (`extract --aggregate`) counts per committed chunk: per language, layer
  and neuron the tokens on which the neuron fired, and per language the tokens read; a chunk commits `fired`,
  its checksums, then `tokens` (its marker, as `sentences` is for the rest).

A chunk is committed to `activations`, then `moments`, then `checksums`, then `sentences`, each file tagged with its shard, chunk
and writer (one id per process); the sentences' commit carries a Delta application transaction (app id: run and
shard; version: the chunk), so a restarted shard redoes only chunks whose sentences were not committed. Readers
take each chunk from exactly one writer that committed all four (`Lake.chosen`): a torn commit, or a second
copy of a shard running at the same time, never shows twice.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from toolkit.errors import UserError, first_line

TABLES: dict[str, list[str]] = {
    "runs": ["run"],
    "sentences": ["run"],
    "activations": ["run", "layer"],
    "moments": ["run"],
    "checksums": ["run"],
    "shards": ["run"],
    "fired": ["run"],
    "tokens": ["run"],
}
"""The lake's tables and their partition columns."""

MARKERS = {"sentences": (), "tokens": (), "fired": ("tokens",), "checksums": ("sentences", "tokens")}
"""The tables whose commit completes a chunk of each data table (none: the table itself), `sentences` for the
rest: an aggregate run's (`extract --aggregate`) chunks commit `fired`, then `tokens`; a run has one of the two."""

RECORD_SCHEMAS = {
    "runs": pa.schema(
        [
            ("run", pa.string()),
            ("source", pa.string()),
            ("model", pa.string()),
            ("model_type", pa.string()),
            ("data_file", pa.string()),
            ("data_sha256", pa.string()),
            ("layers", pa.list_(pa.int64())),
            ("site", pa.string()),
            ("pooling", pa.string()),
            ("hidden_size", pa.int64()),
            ("n_sentences", pa.int64()),
            ("n_languages", pa.int64()),
            ("n_labels", pa.int64()),
            ("class_names", pa.list_(pa.string())),
            ("settings", pa.string()),
            ("created_at", pa.timestamp("us")),
            ("toolkit_version", pa.string()),
            ("n_shards", pa.int64()),
            ("shard", pa.int64()),
        ]
    ),
    "shards": pa.schema(
        [
            ("run", pa.string()),
            ("shard", pa.int64()),
            ("n_shards", pa.int64()),
            ("n_sentences", pa.int64()),
            ("n_chunks", pa.int64()),
            ("host", pa.string()),
            ("finished_at", pa.timestamp("us")),
        ]
    ),
}
"""Columns of the one-row records, typed (a record with a missing value must still match the table)."""


def record(name: str, row: dict) -> pa.Table:
    """One record of table NAME ('runs' or 'shards')."""
    return pa.Table.from_pylist([row], schema=RECORD_SCHEMAS[name])


WRITER = WriterProperties(compression="ZSTD", compression_level=3, max_row_group_size=1 << 20)


def app_id(run: str, shard: int, n_shards: int) -> str:
    """The Delta application id of one shard of a run (its chunks are that id's versions 1, 2, ...)."""
    return f"neurons:{run}:{shard}/{n_shards}"


MAX_SHARDS = 100_000
"""More shards than any cluster runs at once; a larger N is a typo (each shard would hold a handful of sentences)."""


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 0 <= K < N (K is 0-based, like a Slurm array task id from --array=0-(N-1))."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text!r} is not K/N; e.g. --shard 0/8 for the first of 8 shards") from None
    if n < 1 or not 0 <= k < n:
        raise UserError(f"--shard {text}: K must be between 0 and N-1 (N >= 1); e.g. --shard 0/{max(n, 1)}")
    if n > MAX_SHARDS:
        raise UserError(f"--shard {text}: at most {MAX_SHARDS:,} shards; give each shard more sentences")
    return k, n


def signed(table: pa.Table) -> pa.Table:
    """TABLE with types Delta stores: unsigned integers widened to signed ones, all-null columns as strings."""
    wider = {pa.uint8(): pa.int16(), pa.uint16(): pa.int32(), pa.uint32(): pa.int64(), pa.uint64(): pa.int64()}
    wider[pa.null()] = pa.string()
    wider[pa.list_(pa.null())] = pa.list_(pa.string())
    wider[pa.large_string()] = pa.string()
    fields = [pa.field(f.name, wider.get(f.type, f.type)) for f in table.schema]
    return table.cast(pa.schema(fields))


def constant(text: str, n: int) -> pa.Array:
    """A string column of N copies of TEXT, built in Arrow (a partition key of every row)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([text])).cast(pa.string())


def _readable(method):
    """METHOD of a Lake with a damaged Delta log (unparsable or missing commits) failing as one line."""

    @functools.wraps(method)
    def wrapped(self, name: str, *args, **kwargs):
        try:
            return method(self, name, *args, **kwargs)
        except DeltaError as exc:
            raise UserError(
                f"cannot read the lake's table {self.path(name)}: {first_line(exc)}; its Delta log is damaged "
                "(restore the lake from a backup)"
            ) from None

    return wrapped


class Lake:
    """The Delta tables under one folder."""

    def __init__(self, root: str | Path, create: bool = False):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"--lake {self.root} is a file; pass a folder")
        if not create and not DeltaTable.is_deltatable(str(self.path("runs"))):
            raise UserError(
                f"{self.root} is not a neurons lake (no Delta table runs/); check the path, or fill one with "
                "`neurons extract MODEL DATA --run R --lake DIR --shard K/N`"
            )

    def path(self, name: str) -> Path:
        return self.root / name

    @_readable
    def table(self, name: str) -> DeltaTable | None:
        """The Delta table NAME, or None when nothing was committed to it yet."""
        path = str(self.path(name))
        return DeltaTable(path) if DeltaTable.is_deltatable(path) else None

    @_readable
    def committed(self, name: str, app: str) -> int:
        """The last version APP committed to table NAME (0: none)."""
        table = self.table(name)
        return int((table.transaction_version(app) if table is not None else None) or 0)

    def append(self, name: str, rows: pa.Table, app: str | None = None, version: int | None = None) -> bool:
        """Append ROWS to table NAME; with APP, as version VERSION of that Delta application id, and not at all
        (False) when that version was committed already. Concurrent writers (other shards) make a commit retry."""
        rows = signed(rows)
        txn = CommitProperties(app_transactions=[Transaction(app, version)]) if app is not None else None
        for attempt in range(20):
            if app is not None and self.committed(name, app) >= version:
                return False
            try:
                write_deltalake(
                    str(self.path(name)),
                    rows,
                    mode="append",
                    partition_by=TABLES[name],
                    writer_properties=WRITER,
                    commit_properties=txn,
                )
                return True
            except (CommitFailedError, DeltaError) as exc:  # another shard created the table or won the commit
                if attempt == 19 or not _is_conflict(exc):
                    raise UserError(f"cannot commit to {self.path(name)}: {first_line(exc)}") from None
                time.sleep(0.05 * (attempt + 1))
        return False  # pragma: no cover

    @_readable
    def actions(self, name: str, run: str) -> pa.Table:
        """The add actions (files) of RUN in table NAME: path, size, layer, and the shard, chunk and writer that
        wrote each file (every file holds one writer's rows of one chunk, so its statistics name them)."""
        table = self.table(name)
        if table is None:
            return pa.table({c: pa.array([], t) for c, t in (("path", pa.string()), ("size_bytes", pa.int64()))})
        actions = pa.table(table.get_add_actions(flatten=True))
        return actions.filter(pc.equal(actions["partition.run"], run))

    def chosen(self, name: str, run: str) -> pa.Table:
        """The files of RUN in data table NAME that hold each chunk exactly once: per (shard, chunk), the files of
        one writer whose commit of the chunk is complete (it committed the chunk's sentences, the last of its
        commits; the smallest such writer id). Files of a torn commit, or of a second copy of a shard that ran at
        the same time, are left out. Partial moments of no shard (shard -1: computed on Spark) take their smallest writer."""
        actions = self.actions(name, run)
        if not actions.num_rows or "min.writer" not in actions.column_names:
            return actions
        keys = ["min.shard", "min.chunk"]
        markers = [self.actions(m, run) for m in MARKERS.get(name, ("sentences",))]
        done = (
            pl.concat(
                [pl.from_arrow(m.select([*keys, "min.writer"])) for m in markers if "min.writer" in m.column_names]
            )
            if markers
            else None
        )
        mine = pl.from_arrow(actions.select([*keys, "min.writer"]))
        pick = mine.group_by(keys).agg(pl.col("min.writer").min())
        if done is not None:  # a chunk counts once its sentences are committed; parts of no shard (< 0) stand alone
            complete = done.group_by(keys).agg(pl.col("min.writer").min())
            pick = pick.join(complete, on=keys, how="left", suffix="_done").select(
                *keys,
                pl.when(pl.col("min.shard") < 0)
                .then(pl.col("min.writer"))
                .otherwise(pl.col("min.writer_done"))
                .alias("min.writer"),
            )
        keep = mine.with_row_index("i").join(pick, on=[*keys, "min.writer"], how="semi")["i"].to_numpy()
        return actions.take(pa.array(keep))

    def files(self, name: str, run: str) -> pa.Table:
        """The data files of RUN in table NAME at its current version, each chunk once (see `chosen`): path
        (absolute), size and, for the activations, the layer. Pinning these is what makes a view over the lake a
        fixed snapshot."""
        actions = self.chosen(name, run)
        paths = [str(self.path(name) / unquote(p)) for p in actions["path"].to_pylist()]  # the log's paths are URIs
        cols = {"path": pa.array(paths, pa.string()), "size_bytes": actions["size_bytes"]}
        if "partition.layer" in actions.column_names:
            cols["layer"] = actions["partition.layer"]
        return pa.table(cols)

    @_readable
    def read(self, name: str, run: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """Rows of table NAME (of RUN) at its current version, each chunk once for the data tables; empty when the
        table is missing. Records (runs, shards) come as written: one per shard that wrote one."""
        table = self.table(name)
        if table is None:
            return pa.table({})
        if name in ("runs", "shards") or run is None:
            dataset = table.to_pyarrow_dataset()
            return dataset.to_table(columns=columns, filter=(pc.field("run") == run) if run is not None else None)
        paths = self.files(name, run)["path"].to_pylist()
        if not paths:
            return pa.table({})
        data = ds.dataset(
            paths,
            format="parquet",
            partitioning=ds.partitioning(flavor="hive"),
            partition_base_dir=str(self.path(name)),
        )
        return data.to_table(columns=columns)

    def runs(self) -> list[str]:
        records = self.read("runs", columns=["run"])
        return sorted(set(records["run"].to_pylist())) if records.num_rows else []

    def run_records(self, run: str) -> list[dict]:
        """The records each started shard wrote for RUN (one per shard)."""
        return self.read("runs", run).to_pylist()


def _is_conflict(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("conflict", "already exists", "concurrent", "version", "transaction"))
