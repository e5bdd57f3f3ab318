"""`neurons lake attach`: bring a sharded run from a lake into the warehouse without copying its activations.

The run's sentences (small) are copied; its activations stay in the lake's Parquet files, listed in
`lake_files` at the Delta version current at attach time and read by the view `lake_activations`; the
shards' partial moments are merged exactly into `moments` (view `moments_source`). Every view, `analyze`,
`report`, `significance`, `probe` and `export` then work on the run as on any other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from toolkit.errors import UserError
from toolkit.scale.integrity import DATA_TABLES, verify, verify_counts
from toolkit.scale.lake import Lake
from toolkit.scale.shards import check_started, not_committed, status
from toolkit.store.arrow import insert_table, neuron_table
from toolkit.store.warehouse import Warehouse, check_db_path, validate_run_name

RUN_COLUMNS = (
    "source",
    "model",
    "model_type",
    "data_file",
    "data_sha256",
    "layers",
    "site",
    "pooling",
    "hidden_size",
    "n_sentences",
    "n_languages",
    "n_labels",
    "class_names",
    "settings",
    "created_at",
    "toolkit_version",
)


@dataclass
class AttachSummary:
    run: str
    db: Path
    lake: Path
    version: int
    n_shards: int
    n_sentences: int
    n_files: int
    n_bytes: int
    n_values: int

    def text(self) -> str:
        if not self.n_files:  # an aggregate run: its counts are copied
            return (
                f"run '{self.run}' attached to {self.db} from {self.lake} (Delta version {self.version}, "
                f"{self.n_shards} shards): fired-token counts of {self.n_sentences} sentences, summed over the shards"
            )
        return (
            f"run '{self.run}' attached to {self.db} from {self.lake} (Delta version {self.version}, "
            f"{self.n_shards} shards): {self.n_sentences} sentences, {self.n_values:,} values in {self.n_files} "
            f"Parquet files ({self.n_bytes / 1e6:,.1f} MB, read in place); statistics cached"
        )


def attach(
    db: str | Path, lake_dir: str | Path, run: str, name: str | None = None, replace: bool = False
) -> AttachSummary:
    """Register lake run RUN in warehouse DB as run NAME (default RUN)."""
    name = name or run
    validate_run_name(name)
    lake = Lake(lake_dir)
    n_missing, n_shards, rows = not_committed(status(lake_dir, run))
    if n_missing:
        raise UserError(
            f"run '{run}' has {n_missing} of {n_shards} shards not committed "
            f"({', '.join(rows[:8])}); run them (see `neurons lake status {lake_dir} --run {run}`)"
        )
    records = lake.run_records(run)
    record = records[0]
    check_started(lake, run, record, int(record["n_shards"]), others=records[1:])
    if json.loads(record["settings"]).get("aggregate"):
        return _attach_counts(Path(db), lake, run, name, replace, record)
    sentences = lake.read("sentences", run).drop_columns(["run", "shard", "chunk", "writer"])
    ids = sentences["sentence_id"]
    if sentences.num_rows != record["n_sentences"] or pc.count_distinct(ids).as_py() != sentences.num_rows:
        raise UserError(
            f"the lake's run '{run}' holds {sentences.num_rows} sentence rows ({pc.count_distinct(ids).as_py()} "
            f"distinct) for {record['n_sentences']} sentences; it was changed outside neurons"
        )
    verify(lake, run, list(record["layers"]), int(record["hidden_size"]))  # whole, one chunk per file, unchanged
    files = {kind: lake.files(kind, run) for kind in DATA_TABLES}
    version = lake.table("activations").version()
    db_path = Path(db)
    check_db_path(db_path, create=True)
    with Warehouse(db_path) as wh:
        with wh.new_run(name, replace) as (con, run_id):
            _insert_run(wh, run_id, name, lake, run, record, version)
            insert_table(con, "sentences", sentences, "run_id", run_id)
            for kind, table in files.items():
                n = table.num_rows
                rows = pa.table(
                    {
                        "kind": pa.array([kind] * n, pa.string()),
                        "layer": table["layer"] if "layer" in table.column_names else pa.nulls(n, pa.int16()),
                        "path": pa.array([str(Path(p).resolve()) for p in table["path"].to_pylist()], pa.string()),
                        "size_bytes": table["size_bytes"],
                    }
                )
                insert_table(con, "lake_files", rows, "run_id", run_id)
            wh.refresh_lake_views()
            con.execute(
                "update runs set n_truncated = (select count(*) from sentences where run_id = ? and truncated) "
                "where run_id = ?",
                [run_id, run_id],
            )
            wh.materialize(run_id)
    sizes = files["activations"]["size_bytes"].to_numpy()
    return AttachSummary(
        run=name,
        db=db_path,
        lake=lake.root,
        version=version,
        n_shards=int(record["n_shards"]),
        n_sentences=sentences.num_rows,
        n_files=len(sizes),
        n_bytes=int(np.sum(sizes)),
        n_values=sentences.num_rows * len(record["layers"]) * int(record["hidden_size"]),
    )


def _insert_run(wh: Warehouse, run_id: int, name: str, lake: Lake, run: str, record: dict, version: int) -> None:
    """The `runs`, `layer_neurons` and `lake_runs` rows of lake run RUN attached as NAME (in a transaction)."""
    row = {c: record[c] for c in RUN_COLUMNS}
    row.update(
        run_id=run_id,
        name=name,
        status="complete",
        source="lake",
        settings=json.dumps({**json.loads(record["settings"]), "lake": str(lake.root.resolve()), "lake_run": run}),
        finished_at=datetime.now(),
    )
    wh.insert_run(row)
    neurons = neuron_table(list(record["layers"]), int(record["hidden_size"]))
    insert_table(wh.con, "layer_neurons", neurons, "run_id", run_id)
    wh.con.execute(
        "insert into lake_runs values (?, ?, ?, ?, ?, ?)",
        [run_id, str(lake.root.resolve()), run, version, int(record["n_shards"]), datetime.now()],
    )


def _attach_counts(db_path: Path, lake: Lake, run: str, name: str, replace: bool, record: dict) -> AttachSummary:
    """Attach an aggregate run (`extract --aggregate --lake`): its chunks' counts, verified, are summed into
    `fired_tokens` and `language_tokens` (languages x layers x neurons rows, small; nothing stays in the lake)."""
    layers, width = list(record["layers"]), int(record["hidden_size"])
    verify_counts(lake, run, layers, width)
    fired = pl.from_arrow(lake.read("fired", run, columns=["language", "layer", "neuron", "fired"]))
    tokens = pl.from_arrow(lake.read("tokens", run, columns=["language", "n_tokens", "n_sentences", "n_windows"]))
    fired = fired.group_by("language", "layer", "neuron").agg(pl.col("fired").sum())
    tokens = tokens.group_by("language").agg(pl.col("n_tokens", "n_sentences", "n_windows").sum())
    if tokens["n_sentences"].sum() != record["n_sentences"]:
        raise UserError(
            f"the lake's run '{run}' holds counts of {tokens['n_sentences'].sum()} of its {record['n_sentences']} "
            "sentences; it was changed outside neurons; extract the run again under another name"
        )
    version = lake.table("tokens").version()
    check_db_path(db_path, create=True)
    with Warehouse(db_path) as wh:
        with wh.new_run(name, replace) as (con, run_id):
            _insert_run(wh, run_id, name, lake, run, record, version)
            con.execute("update runs set aggregated = true, n_truncated = 0 where run_id = ?", [run_id])
            insert_table(con, "fired_tokens", fired.to_arrow(), "run_id", run_id)
            insert_table(con, "language_tokens", tokens.to_arrow(), "run_id", run_id)
    return AttachSummary(
        name, db_path, lake.root, version, int(record["n_shards"]), int(record["n_sentences"]), 0, 0, 0
    )
