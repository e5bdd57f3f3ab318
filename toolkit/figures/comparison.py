"""The figure of `neurons compare`: linear CKA between every layer of run A (rows) and every layer of run B
(columns), the debiased estimate beside the plain one, from the view `run_comparison` (definition 19)."""

from __future__ import annotations

import altair as alt
import polars as pl

from toolkit.errors import UserError
from toolkit.figures.scales import diverging, diverging_legend
from toolkit.store.warehouse import Warehouse


def cka_heatmaps(wh: Warehouse, run_a: str, run_b: str) -> alt.Chart:
    """Two layer x layer heatmaps, debiased CKA and plain CKA, each cell annotated."""
    df = wh.sql(
        "select layer_a, layer_b, n_shared, cka, cka_debiased from run_comparison where run_a = ? and run_b = ? "
        "order by layer_a, layer_b",
        [run_a, run_b],
    )
    if not df.height:
        raise UserError(f"no comparison of '{run_a}' with '{run_b}'; run `neurons compare {run_a} {run_b}` first")
    long = pl.concat(
        [
            df.select(
                "layer_a", "layer_b", pl.lit("debiased CKA").alias("estimate"), pl.col("cka_debiased").alias("value")
            ),
            df.select("layer_a", "layer_b", pl.lit("plain CKA").alias("estimate"), pl.col("cka").alias("value")),
        ]
    ).with_columns(
        text=pl.when(pl.col("value").is_null())
        .then(pl.lit("n/a"))
        .otherwise(pl.format("{}", (pl.col("value").round(2) + 0.0).round(2)))
    )
    base = alt.Chart().encode(
        x=alt.X("layer_b:O", title=f"layer of {run_b}", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("layer_a:O", title=f"layer of {run_a}"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("value:Q", title="CKA", scale=diverging(1.0), legend=diverging_legend(1.0)),
        tooltip=["layer_a", "layer_b", alt.Tooltip("value:Q", format=".4f")],
    )
    text = base.mark_text(fontSize=11).encode(
        text="text:N", color=alt.condition("abs(datum.value) > 0.6", alt.value("white"), alt.value("black"))
    )
    n_b = df["layer_b"].n_unique()
    return (
        alt.layer(cells, text, data=long)
        .properties(width=max(34 * n_b, 160), height=alt.Step(26))
        .facet(column=alt.Column("estimate:N", title=None, sort=["debiased CKA", "plain CKA"]))
        .properties(
            title=alt.TitleParams(
                f"Linear CKA of {run_a} (rows) and {run_b} (columns)",
                subtitle=[
                    f"{df['n_shared'][0]} shared sentences; debiased: about 0 for unrelated representations, "
                    "plain: biased upwards when neurons are many for the sentences",
                    *(
                        ["n/a: a constant layer (every sentence has the same vector, as an embedding layer's [CLS])"]
                        if df["cka"].is_null().any()
                        else []
                    ),
                ],
                subtitleColor="#666666",
            )
        )
    )
