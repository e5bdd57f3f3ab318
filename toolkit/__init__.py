"""neurons: neuron-level analysis of language models (encoders and decoders) across languages, on a DuckDB warehouse.

Library entry point: `toolkit.open(db)` returns a `Warehouse`; `toolkit.capture.extract`, `toolkit.capture.load`
and friends are the calls behind every CLI command.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("neurons")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

from toolkit.store.warehouse import Warehouse  # noqa: E402


def open(db: str | None = None, read_only: bool = False) -> Warehouse:  # noqa: A001 - mirrors duckdb.connect
    """Open (creating if needed) the warehouse at DB, default `$NEURONS_DB` or `warehouse/activations.duckdb`."""
    return Warehouse(db, read_only=read_only)


__all__ = ["Warehouse", "__version__", "open"]
