"""Scoring predictions that are not (yet) in a warehouse, with the warehouse's own SQL: accuracy and macro-F1
per language exactly as the views `label_scores` and `prediction_scores` (sql/views/030_evaluation.sql)
define them, run on an in-memory DuckDB over the given predictions. Fine-tuning uses it for its held-out
scores after each epoch."""

from __future__ import annotations

import duckdb
import polars as pl

from toolkit.store.catalog import view_query

SCORED_VIEWS = ("label_scores", "prediction_scores")


def _definitions() -> list[str]:
    """The CREATE statements of SCORED_VIEWS, as the SQL catalogue holds them."""
    return [f"create view {name} as {view_query(name)}" for name in SCORED_VIEWS]


def score(language: list[str], gold: list[str], predicted: list[str]) -> pl.DataFrame:
    """language, n_sentences, accuracy, macro_f1 of the predictions, one row per language."""
    rows = pl.DataFrame(
        {"language": language, "gold": gold, "predicted": predicted},
        schema={"language": pl.String, "gold": pl.String, "predicted": pl.String},
    )
    con = duckdb.connect()
    try:
        con.register("given", rows.to_arrow())
        con.execute(
            "create view prediction_rows as select 'given' as run, null::usmallint as ablation_id, "
            "null::integer as set_index, language, gold, predicted from given"
        )
        for statement in _definitions():
            con.execute(statement)
        return con.sql("select language, n_sentences, accuracy, macro_f1 from prediction_scores order by language").pl()
    finally:
        con.close()
