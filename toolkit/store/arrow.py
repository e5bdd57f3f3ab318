"""Arrow tables into DuckDB in bulk: activation arrays as long rows, and one insert per table (no Python
loop over values, no per-row inserts)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import duckdb
import numpy as np
import pyarrow as pa


def activation_table(sentence_ids: np.ndarray, layers: list[int], values: np.ndarray) -> pa.Table:
    """Rows of `activation_vectors` from VALUES [sentence, layer, neuron]: one per sentence and layer with the
    layer's activations as a float32 list, ordered by (layer, sentence_id).

    That order keeps each row group's min/max of `layer` tight, so scans of one layer skip the rest of the
    file; one list per row makes the keys free and leaves one float column to compress.
    """
    n, n_layers, hidden = values.shape
    order = np.argsort(sentence_ids, kind="stable")
    flat = np.ascontiguousarray(values[order].transpose(1, 0, 2), dtype=np.float32).reshape(-1)
    offsets = np.arange(0, flat.size + 1, hidden, dtype=np.int64)
    return pa.table(
        {
            "sentence_id": np.tile(sentence_ids[order].astype(np.uint32), n_layers),
            "layer": np.repeat(np.asarray(layers, dtype=np.uint8), n),
            "vector": pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat)),
        }
    )


def neuron_table(layers: list[int], neurons: dict[int, np.ndarray] | int) -> pa.Table:
    """Rows of `layer_neurons`: each layer's neuron ids in list order (0..NEURONS-1 when NEURONS is a count)."""
    ids = {k: (np.arange(neurons) if isinstance(neurons, int) else neurons[k]) for k in layers}
    lengths = np.array([len(ids[k]) for k in layers], dtype=np.int64)
    flat = np.concatenate([np.asarray(ids[k], dtype=np.uint16) for k in layers]) if layers else np.array([], np.uint16)
    return pa.table(
        {
            "layer": np.asarray(layers, dtype=np.uint8),
            "neurons": pa.LargeListArray.from_arrays(pa.array(np.r_[0, np.cumsum(lengths)]), pa.array(flat)),
        }
    )


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, **tables: pa.Table) -> Iterator[duckdb.DuckDBPyConnection]:
    """Expose Arrow TABLES to SQL under their keyword names for the duration of the block."""
    for name, table in tables.items():
        con.register(name, table)
    try:
        yield con
    except BaseException:  # an aborted transaction refuses the unregister: keep the error that aborted it
        for name in tables:
            with suppress(duckdb.Error):
                con.unregister(name)
        raise
    for name in tables:
        con.unregister(name)


def insert_table(con: duckdb.DuckDBPyConnection, target: str, rows: pa.Table, key: str, value) -> None:
    """INSERT INTO TARGET the ROWS' columns (matched by name) with column KEY set to VALUE."""
    cols = ", ".join(rows.column_names)
    with registered(con, rows=rows):
        con.execute(f"insert into {target} ({key}, {cols}) select ?, {cols} from rows", [value])


def insert_run_rows(con: duckdb.DuckDBPyConnection, run_id: int, sentences: pa.Table, activations: pa.Table) -> None:
    """Write a run's sentences (any subset of the `sentences` columns) and activation vectors."""
    insert_table(con, "sentences", sentences, "run_id", run_id)
    insert_table(con, "activation_vectors", activations, "run_id", run_id)
