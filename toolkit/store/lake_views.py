"""The stored views through which a warehouse reads the runs attached from a lake: one branch per run (and
layer) over exactly the Parquet files it pinned."""

from __future__ import annotations

import polars as pl

from toolkit.store.catalog import quote


def parquet(paths: list[str]) -> str:
    return "read_parquet([" + ", ".join(quote(p) for p in paths) + "])"


LAKE_COLUMNS = {
    "activations": "{run_id}::USMALLINT AS run_id, sentence_id::UINTEGER AS sentence_id, {layer}::UTINYINT AS layer, "
    "language, label, n_tokens::INTEGER AS n_tokens, neuron::USMALLINT AS neuron, value::FLOAT AS value",
    "moments": "{run_id}::USMALLINT AS run_id, layer::UTINYINT AS layer, language, label, neuron::USMALLINT AS neuron, "
    "n_sentences::BIGINT AS n_sentences, mean, variance, minimum::DOUBLE AS minimum, maximum::DOUBLE AS maximum",
}
LAKE_VIEWS = {"activations": "lake_activations", "moments": "lake_moment_parts"}


def lake_view_sql(files: pl.DataFrame, source) -> dict[str, str]:
    """The SELECT of each lake view over FILES (run_id, kind, layer, paths): one branch per run (and layer, a
    constant, so a layer filter drops the other branches before any file is opened), reading
    SOURCE(kind, run_id, layer, paths). Views without files keep their empty definition."""
    out = {}
    for kind, view in LAKE_VIEWS.items():
        rows = files.filter(pl.col("kind") == kind).sort("run_id", "layer").iter_rows(named=True)
        branches = [
            f"SELECT {LAKE_COLUMNS[kind].format(run_id=r['run_id'], layer=r['layer'])} "
            f"FROM {source(kind, r['run_id'], r['layer'], r['paths'])}"
            for r in rows
        ]
        if branches:
            out[view] = "\nUNION ALL\n".join(branches)
    return out
