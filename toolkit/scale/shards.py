"""Sharded extraction into a lake (`neurons extract ... --lake DIR --shard K/N`) and its progress
(`neurons lake status`).

Shard K of N takes the data rows whose position modulo N is K (every shard then sees every language and a
like mix of lengths), plans length-sorted batches over them and groups whole batches into chunks of about
`--commit-every` sentences: a pure function of the data and the settings. Chunk c is committed as version c
of the shard's Delta application id to `activations`, then `moments`, then `sentences`; a rerun skips each
table's committed versions, so any number of shards can run at once, on any machines, and a killed shard
rerun commits every chunk exactly once. The last commit records the shard in `shards`.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from toolkit.capture.aggregate import count_chunks, plan_batches
from toolkit.capture.datasets import Dataset
from toolkit.capture.extract import (
    DATA_COLUMNS,
    ExtractOptions,
    chunks,
    plan_chunks,
    planned_settings,
    prepare,
    progress_bar,
    resolve_pooling,
    run_record,
    sentence_rows,
)
from toolkit.capture.tokens import batch_plan
from toolkit.capture.writer import WriteBehind
from toolkit.errors import UserError
from toolkit.scale.integrity import COUNT_TABLES, DATA_TABLES, checksum_rows
from toolkit.scale.lake import Lake, app_id, constant
from toolkit.scale.lake import record as lake_record
from toolkit.store.catalog import view_query
from toolkit.store.runs import frame_counts
from toolkit.store.runs import run_record as make_run_record
from toolkit.store.warehouse import validate_run_name


@dataclass
class ShardSummary:
    run: str
    lake: Path
    shard: int
    n_shards: int
    n_sentences: int
    n_chunks: int
    n_committed_before: int  # chunks a previous attempt had committed
    n_values: int
    seconds: float

    def text(self) -> str:
        if self.n_committed_before == self.n_chunks:
            return f"shard {self.shard}/{self.n_shards} of run '{self.run}' is committed in {self.lake} already: nothing to do"
        again = f" ({self.n_committed_before} committed before)" if self.n_committed_before else ""
        values = f", {self.n_values:,} values" if self.n_values else " (fired-token counts)"
        return (
            f"shard {self.shard}/{self.n_shards} of run '{self.run}' committed to {self.lake}: "
            f"{self.n_sentences} sentences in {self.n_chunks} chunks{again}{values}, {self.seconds:.1f} s"
        )


def marker_table(record: dict) -> str:
    """The table whose commit marks a chunk of a run as done: `tokens` for corpus counts, else `sentences`."""
    return "tokens" if json.loads(record["settings"]).get("aggregate") else "sentences"


def shard_rows(frame: pl.DataFrame, shard: int, n_shards: int) -> pl.DataFrame:
    """The rows of shard SHARD: those whose position modulo N_SHARDS is SHARD."""
    return frame.filter((pl.int_range(pl.len()) % n_shards) == shard)


def with_key(table: pa.Table, shard: int, chunk: int, writer: str) -> pa.Table:
    """TABLE with the shard, chunk and writer (one id per process) that wrote it: what readers choose each
    chunk's one copy by (`Lake.chosen`)."""
    n = table.num_rows
    table = table.append_column("shard", pa.array(np.full(n, shard, dtype=np.int32)))
    return table.append_column("chunk", pa.array(np.full(n, chunk, dtype=np.int32))).append_column(
        "writer", constant(writer, n)
    )


def activation_rows(run: str, frame: pl.DataFrame, rows: np.ndarray, layers: list[int], values: np.ndarray, lengths):
    """Long rows of a chunk for the lake's `activations`: per layer, sorted by neuron then sentence, with the
    sentence's language, label and token count (numpy reshapes, no loop over values)."""
    sids = frame["sentence_id"].to_numpy()[rows].astype(np.int64)
    order = np.argsort(sids, kind="stable")
    n, _, width = values.shape
    sub = frame[rows[order]]
    layer_parts = []
    for li, layer in enumerate(layers):
        layer_parts.append(
            pa.table(
                {
                    "run": constant(run, n * width),
                    "layer": np.full(n * width, layer, dtype=np.int16),
                    "neuron": np.repeat(np.arange(width, dtype=np.int32), n),
                    "sentence_id": np.tile(sids[order], width),
                    "language": pa.array(np.tile(sub["language"].to_numpy(), width), pa.string()),
                    "label": pa.array(np.tile(sub["label"].to_numpy(), width), pa.string()),
                    "n_tokens": np.tile(lengths[rows[order]].astype(np.int32), width),
                    "value": np.ascontiguousarray(values[order, li, :].T, dtype=np.float32).reshape(-1),
                }
            )
        )
    return pa.concat_tables(layer_parts)


def moment_rows(activations: pa.Table) -> pa.Table:
    """Partial moments of a chunk: the cell parts of view `moment_parts` (sql/views/010_statistics.sql,
    docs/definitions.md definition 15) run by DuckDB over the chunk's ACTIVATIONS rows, so the shards and the
    warehouse compute them with one definition. Minimum and maximum of float32 activations are float32 exactly."""
    con = duckdb.connect()
    try:
        con.register(
            "labelled_activations",
            activations.append_column("run_id", pa.array(np.zeros(activations.num_rows, np.uint16))),
        )
        con.execute(f"create view lake_moment_parts as {view_query('lake_moment_parts')}")
        con.execute(f"create view moment_parts as {view_query('moment_parts')}")
        parts = con.sql(
            "select layer::SMALLINT as layer, language, label, neuron::INTEGER as neuron, n_sentences, mean, variance, "
            "minimum::FLOAT as minimum, maximum::FLOAT as maximum from moment_parts where label is not null "
            "order by layer, language, label, neuron"
        ).to_arrow_table()
    finally:
        con.close()
    return parts.append_column("run", constant(activations["run"][0].as_py(), parts.num_rows))


def settings_differ(mine: dict, theirs: dict) -> str:
    """How two shard records' settings differ ('' when they agree); the data file's path may (its sha256 is the data)."""
    a, b = json.loads(mine["settings"]), json.loads(theirs["settings"])
    return "; ".join(f"{k}: {b.get(k)!r} there, {a[k]!r} here" for k in a if k != "data_file" and a[k] != b.get(k))


def check_started(lake: Lake, run: str, record: dict, n_shards: int, others: list[dict] | None = None) -> None:
    """Every shard of a run must be made with the same settings and shard count as those already started."""
    for other in lake.run_records(run) if others is None else others:
        if other["n_shards"] != n_shards:
            raise UserError(
                f"run '{run}' in {lake.root} is split into {other['n_shards']} shards, not {n_shards}; "
                f"use --shard K/{other['n_shards']}, or another --run"
            )
        diffs = settings_differ(record, other)
        if diffs:
            raise UserError(
                f"run '{run}' in {lake.root} was started with other settings ({diffs}); use the same, or another --run"
            )


def _already_committed(
    lake: Lake, run: str, k: int, n_shards: int, model: str, dataset: Dataset, opts: ExtractOptions
) -> ShardSummary | None:
    """The summary of shard K when it is committed with this model, data and every setting that determines its
    numbers (read from the model's config and tokenizer, not its weights); None otherwise, and the full checks
    run and name what differs."""
    app = app_id(run, k, n_shards)
    if lake.committed("shards", app) < 1:
        return None
    mine = next((r for r in lake.run_records(run) if r["shard"] == k and r["n_shards"] == n_shards), None)
    finished = next((r for r in lake.read("shards", run).to_pylist() if r["shard"] == k), None)
    if mine is None or finished is None:
        return None
    stored = json.loads(mine["settings"])
    wanted = {**planned_settings(model, dataset, opts), "commit_every": opts.commit_every}
    if any(stored.get(key) != value for key, value in wanted.items() if key != "data_file"):
        return None  # the full checks name what differs
    n = finished["n_sentences"]
    return ShardSummary(
        run,
        lake.root,
        k,
        n_shards,
        n,
        finished["n_chunks"],
        finished["n_chunks"],
        n * len(mine["layers"]) * mine["hidden_size"],
        0.0,
    )


def extract_shard(
    lake_dir: str | Path,
    model: str,
    dataset: Dataset,
    run: str,
    shard: tuple[int, int],
    options: ExtractOptions | None = None,
    progress: bool = True,
    allow_unknown: bool = False,
) -> ShardSummary:
    """Extract shard SHARD = (K, N) of run RUN into the lake at LAKE_DIR; a no-op for chunks already committed."""
    opts = resolve_pooling(model, options or ExtractOptions())
    validate_run_name(run)
    k, n_shards = shard
    lake = Lake(lake_dir, create=True)
    full = dataset.frame
    mine = replace(dataset, frame=shard_rows(full, k, n_shards))
    if mine.frame.height == 0:
        raise UserError(f"shard {k}/{n_shards} has no sentences ({full.height} in the data); use fewer shards")
    done = _already_committed(lake, run, k, n_shards, model, dataset, opts)
    if done is not None:  # a requeued task of a finished shard: no model to load
        return done
    windows = opts.window is not None  # windows are cut from every row's text, then shared out (`window_batches`)
    prep = prepare(model, dataset if windows else mine, opts, allow_unknown)
    record = {
        "run": run,
        **{k: v for k, v in run_record(prep, dataset, run, opts).items() if k not in ("name", "status")},
        "n_shards": n_shards,
        "shard": k,
        "settings": json.dumps({**prep.settings, "commit_every": opts.commit_every}),
    }
    check_started(lake, run, record, n_shards)
    app = app_id(run, k, n_shards)
    record["created_at"] = datetime.now()
    lake.append("runs", lake_record("runs", record), app, 1)

    if opts.aggregate:
        return _count_shard(lake, app, run, shard, prep, dataset if windows else mine, opts, progress)
    frame = mine.frame
    groups = plan_chunks(batch_plan(prep.lengths, opts.batch_size), opts.commit_every)
    done = lake.committed("sentences", app)  # chunks whose three commits are done; the rest are redone whole
    writer = uuid.uuid4().hex
    start = time.perf_counter()
    bar = progress_bar(frame.height, sum(len(b) for g in groups[:done] for b in g), f"shard {k}/{n_shards}", progress)
    sentence_ids = frame["sentence_id"].to_numpy()
    try:
        with WriteBehind(lambda item: _commit_chunk(lake, app, writer, run, k, *item, prep, frame)) as behind:
            for c, pending in enumerate(chunks(prep, sentence_ids, groups[done:], opts, bar), start=done + 1):
                behind.put((c, pending))
    finally:
        bar.close()
    finish(lake, app, run, k, n_shards, frame.height, len(groups))
    return ShardSummary(
        run=run,
        lake=lake.root,
        shard=k,
        n_shards=n_shards,
        n_sentences=frame.height,
        n_chunks=len(groups),
        n_committed_before=done,
        n_values=frame.height * len(prep.layers) * prep.width,
        seconds=time.perf_counter() - start,
    )


def _count_shard(
    lake: Lake, app: str, run: str, shard: tuple[int, int], prep, data: Dataset, opts: ExtractOptions, progress: bool
) -> ShardSummary:
    """An aggregate shard (`extract --aggregate --lake`): each chunk's counts per language, layer and neuron to
    `fired`, their checksums, then the chunk's token counts to `tokens`, whose commit (version CHUNK of APP) marks
    the chunk as done; attach sums the chunks."""
    k, n_shards = shard
    groups = plan_chunks(plan_batches(prep, data, opts, shard), opts.commit_every)
    done = lake.committed("tokens", app)
    writer = uuid.uuid4().hex
    total = sum(len(b) for g in groups for b in g)
    start = time.perf_counter()
    bar = progress_bar(total, sum(len(b) for g in groups[:done] for b in g), f"shard {k}/{n_shards}", progress)
    try:
        windows = opts.window is not None
        with WriteBehind(lambda item: _commit_counts(lake, app, writer, run, k, *item, prep.layers)) as behind:
            for c, counts in enumerate(count_chunks(prep, groups[done:], windows, bar), start=done + 1):
                behind.put((c, counts))
    finally:
        bar.close()
    n_rows = sum(b.n_rows for g in groups for b in g)
    finish(lake, app, run, k, n_shards, n_rows, len(groups))
    return ShardSummary(run, lake.root, k, n_shards, n_rows, len(groups), done, 0, time.perf_counter() - start)


def _commit_counts(lake: Lake, app: str, writer: str, run: str, shard: int, chunk: int, counts, layers) -> None:
    """An aggregate chunk to the lake: its counts to `fired`, their checksums, then its token counts to `tokens`,
    whose commit (version CHUNK of APP) marks the chunk as done."""
    fired = counts.table(layers)
    fired = fired.append_column("run", constant(run, fired.num_rows))
    lake.append("fired", with_key(fired, shard, chunk, writer))
    seal(lake, run, shard, chunk, writer, COUNT_TABLES)
    tokens = pa.table(
        {
            "language": pa.array(list(counts.tokens), pa.string()),
            "n_tokens": pa.array(list(counts.tokens.values()), pa.int64()),
            "n_sentences": pa.array([counts.rows[x] for x in counts.tokens], pa.int64()),
            "n_windows": pa.array([counts.windows[x] for x in counts.tokens], pa.int64()),
            "run": constant(run, len(counts.tokens)),
        }
    )
    lake.append("tokens", with_key(tokens, shard, chunk, writer), app, chunk)


def _commit_chunk(lake: Lake, app: str, writer: str, run: str, shard: int, chunk: int, pending, prep, frame) -> None:
    rows = np.concatenate([p[0] for p in pending])
    values = np.concatenate([p[1] for p in pending])
    sentences = sentence_rows(prep, frame, pending)
    commit(lake, app, writer, run, shard, chunk, frame, rows, prep.layers, values, prep.lengths, sentences)


def commit(
    lake: Lake, app: str, writer: str, run: str, shard: int, chunk: int, frame, rows, layers, values, lengths, sentences
) -> None:
    """Chunk CHUNK (VALUES [rows, layer, neuron] of FRAME's ROWS) to the lake: activations, moments, the checksums
    of their files, then the sentences, whose commit (version CHUNK of APP) marks the chunk as done by WRITER."""
    acts = activation_rows(run, frame, rows, layers, values, lengths)
    lake.append("activations", with_key(acts, shard, chunk, writer))
    lake.append("moments", with_key(moment_rows(acts), shard, chunk, writer))
    seal(lake, run, shard, chunk, writer, DATA_TABLES)
    sentences = sentences.append_column("run", constant(run, len(rows)))
    lake.append("sentences", with_key(sentences, shard, chunk, writer), app, chunk)


def seal(lake: Lake, run: str, shard: int, chunk: int, writer: str, tables: tuple[str, ...]) -> None:
    """Record the checksums of the files WRITER committed to TABLES for CHUNK of SHARD (what readers verify)."""
    sums = pa.concat_tables([checksum_rows(lake, name, run, shard, chunk, writer) for name in tables])
    lake.append("checksums", with_key(sums, shard, chunk, writer))


def finish(lake: Lake, app: str, run: str, shard: int, n_shards: int, n_sentences: int, n_chunks: int) -> None:
    """Record shard SHARD of RUN as finished (the last commit of a shard)."""
    row = {"run": run, "shard": shard, "n_shards": n_shards, "n_sentences": n_sentences, "n_chunks": n_chunks}
    row.update(host=socket.gethostname(), finished_at=datetime.now())
    lake.append("shards", lake_record("shards", row), app, 1)


def write_arrays(
    lake_dir: str | Path, run: str, frame: pl.DataFrame, layers: list[int], values: np.ndarray, chunk_size: int = 4096
) -> None:
    """Write activations computed elsewhere as a one-shard run of the lake: FRAME has sentence_id, text, language
    and label per row of VALUES [sentence, layer, neuron]. Chunks, moments and records as an extraction's."""
    lake = Lake(lake_dir, create=True)
    app = app_id(run, 0, 1)
    frame = frame.with_columns(
        pl.col("sentence_id").cast(pl.Int64),
        *(pl.lit(None, pl.String).alias(c) for c in ("source_id", "split") if c not in frame.columns),
    )
    made = make_run_record(
        run,
        "arrays",
        data_file="",
        data_sha256="",
        layers=layers,
        hidden_size=values.shape[2],
        counts=frame_counts(frame),
        settings={"layers": layers, "chunk_size": chunk_size},
    )
    record = {"run": run, **{k: v for k, v in made.items() if k not in ("name", "status")}, "n_shards": 1, "shard": 0}
    lake.append("runs", lake_record("runs", record), app, 1)
    lengths = np.zeros(frame.height, dtype=np.int32)
    writer = uuid.uuid4().hex
    n_chunks = 0
    for n_chunks, start in enumerate(range(0, frame.height, chunk_size), start=1):
        rows = np.arange(start, min(start + chunk_size, frame.height))
        chunk = frame[rows]
        sentences = pa.table(
            {
                **{c: chunk[c].to_arrow() for c in DATA_COLUMNS},
                "n_tokens": pa.nulls(len(rows), pa.int32()),
                "truncated": pa.nulls(len(rows), pa.bool_()),
                "predicted_label": pa.nulls(len(rows), pa.string()),
                "probabilities": pa.nulls(len(rows), pa.list_(pa.float32())),
            }
        )
        commit(lake, app, writer, run, 0, n_chunks, frame, rows, layers, values[rows], lengths, sentences)
    finish(lake, app, run, 0, 1, frame.height, n_chunks)


def status(lake_dir: str | Path, run: str) -> pl.DataFrame:
    """One row per shard of RUN: committed (finished), started (running or failed: chunks committed so far), or
    missing; consecutive missing shards share one row (`3-9/40`), so the table stays short for any N."""
    lake = Lake(lake_dir)
    records = lake.run_records(run)
    if not records:
        known = ", ".join(lake.runs()) or "none"
        raise UserError(f"no run named '{run}' in lake {lake.root} (runs: {known})")
    n_shards = int(records[0]["n_shards"])
    finished = {r["shard"]: r for r in lake.read("shards", run).to_pylist()}
    started = sorted({int(r["shard"]) for r in records})
    out = []

    def missing(first: int, last: int) -> None:  # shards first..last never started: one row, however many
        if first <= last:
            name = f"{first}/{n_shards}" if first == last else f"{first}-{last}/{n_shards}"
            out.append({"shard": name, "state": "missing", "chunks": "0"})

    previous = -1
    for k in started:  # a shard commits its record before any chunk: only started shards can have chunks
        missing(previous + 1, k - 1)
        previous = k
        chunks_done = lake.committed(marker_table(records[0]), app_id(run, k, n_shards))
        f = finished.get(k, {})
        out.append(
            {
                "shard": f"{k}/{n_shards}",
                "state": "committed" if f else "started",
                "chunks": f"{chunks_done}/{f['n_chunks']}" if f else str(chunks_done),
                "sentences": f.get("n_sentences"),
                "host": f.get("host"),
                "finished": f["finished_at"].strftime("%Y-%m-%d %H:%M:%S") if f else None,
            }
        )
    missing(previous + 1, n_shards - 1)
    schema = {"shard": pl.String, "state": pl.String, "chunks": pl.String, "sentences": pl.Int64}
    return pl.DataFrame(out, schema={**schema, "host": pl.String, "finished": pl.String})


def not_committed(shards: pl.DataFrame) -> tuple[int, int, list[str]]:
    """(shards not committed, shards in all, their rows' names) of a `status` table."""
    n_shards = int(shards["shard"][0].split("/")[1])
    rows = shards.filter(pl.col("state") != "committed")["shard"].to_list()
    return n_shards - shards.filter(pl.col("state") == "committed").height, n_shards, rows


def lake_runs(lake_dir: str | Path) -> pl.DataFrame:
    """One row per run of the lake: shards committed of all, sentences, layers and neurons."""
    lake = Lake(lake_dir)
    rows = []
    for run in lake.runs():
        records = lake.run_records(run)
        first = records[0]
        finished = lake.read("shards", run)
        rows.append(
            {
                "run": run,
                "shards": f"{finished.num_rows}/{first['n_shards']}",
                "sentences": first["n_sentences"],
                "layers": ",".join(map(str, first["layers"])),
                "neurons": first["hidden_size"],
                "model": first["model"],
            }
        )
    return pl.DataFrame(rows, schema_overrides={"model": pl.String})
