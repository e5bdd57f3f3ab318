"""Turning activation arrays into Arrow tables for DuckDB's bulk insert (no Python loop over values)."""

from __future__ import annotations

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


INSERT_ACTIVATIONS = (
    "insert into activations select ?::usmallint, sentence_id, layer, neuron, value from {table}"
)
