"""Scoring predictions that are not (yet) in a warehouse, with the warehouse's own SQL: accuracy and macro-F1
per language exactly as the views `label_scores` and `prediction_scores` (sql/views/030_evaluation.sql)
define them, run on an in-memory DuckDB over the given predictions. Fine-tuning uses it for its held-out
scores after each epoch."""

from __future__ import annotations

import duckdb
import polars as pl

from toolkit.store.catalog import definition

SCORED = ("label_scores_of", "label_scores", "prediction_scores_of", "prediction_scores")
CHANCE = ("confusion", "guessing_bound", "permuted_predictions", "chance_scores", "evaluation")


def _definitions(names: tuple[str, ...]) -> list[str]:
    """The CREATE statements of the views and macros NAMES, as the SQL catalogue holds them."""
    return [definition(name).text for name in names]


def score(language: list[str], gold: list[str], predicted: list[str]) -> pl.DataFrame:
    """language, n_sentences, accuracy, macro_f1 of the predictions, one row per language."""
    return _scored(language, gold, predicted, SCORED, "language, n_sentences, accuracy, macro_f1", "prediction_scores")


def chance(language: list[str], gold: list[str], predicted: list[str]) -> pl.DataFrame:
    """View `evaluation` of the predictions: each metric with its chance test, one row per language."""
    return _scored(language, gold, predicted, SCORED + CHANCE, "* exclude (run)", "evaluation")


def _scored(language, gold, predicted, names: tuple[str, ...], columns: str, view: str) -> pl.DataFrame:
    """COLUMNS of VIEW over the given predictions, in an in-memory DuckDB holding the definitions NAMES."""
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
        for statement in _definitions(names):
            con.execute(statement)
        return con.sql(f"select {columns} from {view} order by language").pl()
    finally:
        con.close()
