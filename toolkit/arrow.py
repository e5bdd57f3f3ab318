"""Arrow tables into DuckDB in bulk: activation arrays as long rows, and one insert per table (no Python
loop over values, no per-row inserts)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import numpy as np
import pyarrow as pa


def activation_table(sentence_ids: np.ndarray, layers: list[int], values: np.ndarray) -> pa.Table:
    """Long rows of VALUES [sentence, layer, neuron], ordered by (layer, neuron, sentence).

    That order keeps each row group's min/max of `layer` and `neuron` tight, so scans of one layer or a
    few neurons skip the rest of the file.
    """
    n, n_layers, hidden = values.shape
    flat = np.ascontiguousarray(values.transpose(1, 2, 0), dtype=np.float32).reshape(-1)
    return pa.table(
        {
            "sentence_id": np.tile(sentence_ids.astype(np.uint32), n_layers * hidden),
            "layer": np.repeat(np.asarray(layers, dtype=np.uint8), hidden * n),
            "neuron": np.tile(np.repeat(np.arange(hidden, dtype=np.uint16), n), n_layers),
            "value": flat,
        }
    )


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, **tables: pa.Table) -> Iterator[duckdb.DuckDBPyConnection]:
    """Expose Arrow TABLES to SQL under their keyword names for the duration of the block."""
    for name, table in tables.items():
        con.register(name, table)
    try:
        yield con
    finally:
        for name in tables:
            con.unregister(name)


def insert_table(con: duckdb.DuckDBPyConnection, target: str, rows: pa.Table, key: str, value) -> None:
    """INSERT INTO TARGET the ROWS' columns (matched by name) with column KEY set to VALUE."""
    cols = ", ".join(rows.column_names)
    with registered(con, rows=rows):
        con.execute(f"insert into {target} ({key}, {cols}) select ?, {cols} from rows", [value])


def insert_run_rows(con: duckdb.DuckDBPyConnection, run_id: int, sentences: pa.Table, activations: pa.Table) -> None:
    """Write a run's sentences (any subset of the `sentences` columns) and activations."""
    insert_table(con, "sentences", sentences, "run_id", run_id)
    insert_table(con, "activations", activations, "run_id", run_id)
