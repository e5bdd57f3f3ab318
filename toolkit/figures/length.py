"""The figures of sentence length (definition 25): each neuron's between-label variance against the same variance
once its profiles are compared at equal sentence length, so the neurons whose label differences are mostly length
stand apart from those whose differences survive; and which of them the report draws (with Figure 2 at equal
length, `crosslingual_heatmap` with `at_equal_length`)."""

from __future__ import annotations

import altair as alt
import polars as pl

from toolkit.errors import UserError
from toolkit.figures.options import ChartOptions
from toolkit.stats.analysis import resolve
from toolkit.store.warehouse import Warehouse

SIZE = 420
"""Width and height of the square plotting area in px."""

REPORT_FIGURES = (
    (
        "length",
        "Sentence length: between-label variance before and after regressing it out",
        "length_confound",
        "length",
        {},
    ),
    (
        "correlation-equal-length",
        "Figure 2 at equal sentence length: Spearman of the length-adjusted profiles",
        "profile_correlation",
        "correlation",
        {"at_equal_length": True},
    ),
)
"""The report's figures of a run with token counts (definition 25): file key, title, view, chart and its options."""


def length_confound(wh: Warehouse, o: ChartOptions) -> alt.Chart:
    """Every neuron of the layer as a point (between-label variance, the same at equal length): on the solid
    diagonal length explains nothing, below the dashed half-line half or more is length (view `length_confound`,
    `length_driven`); the top O.top neurons by variance are filled red."""
    layer = resolve(wh, o.run, o.layer).layer
    df = wh.held("length_confound", o.run, layer, "neuron").with_columns(
        is_top=(pl.col("rank") <= o.top).fill_null(False)
    )
    if not df.height:
        raise UserError(
            f"run '{o.run}' has no sentence lengths (a token count for every sentence; a run imported with "
            "`neurons load` without an n_tokens column has none), so there is no length confound to draw"
        )
    top = float(max(df["variance"].max(), df["adjusted_variance"].max()) or 1.0) * 1.05
    axis = alt.Scale(domain=[0, top], nice=False, zero=True)
    lines = pl.DataFrame(
        {"x": [0.0, top, 0.0, top], "y": [0.0, top, 0.0, top / 2], "line": ["y = x"] * 2 + ["y = x / 2"] * 2}
    )
    guide = (
        alt.Chart(lines)
        .mark_line(color="#555555", strokeWidth=1)
        .encode(
            x=alt.X("x:Q", scale=axis),
            y=alt.Y("y:Q", scale=axis),
            detail="line:N",
            strokeDash=alt.StrokeDash(
                "line:N", legend=None, scale=alt.Scale(domain=["y = x", "y = x / 2"], range=[[1, 0], [5, 4]])
            ),
        )
    )
    points = (
        alt.Chart(df)
        .mark_circle(size=36, opacity=0.75)
        .encode(
            x=alt.X(
                "variance:Q",
                title="between-label variance (definition 3)",
                scale=axis,
                axis=alt.Axis(labelFlush=False, labelOverlap=True, tickCount=8),  # first label centred, none touching
            ),
            y=alt.Y("adjusted_variance:Q", title="the same at equal sentence length", scale=axis),
            color=alt.condition("datum.is_top", alt.value("#d62728"), alt.value("#3182bd")),
            order=alt.Order("is_top:Q"),
            tooltip=[
                "neuron",
                "rank",
                alt.Tooltip("variance:Q", format=".4f"),
                alt.Tooltip("adjusted_variance:Q", format=".4f"),
                alt.Tooltip("length_share:Q", format=".0%"),
                alt.Tooltip("length_r:Q", format="+.2f"),
            ],
        )
    )
    driven = int(df["length_driven"].sum())
    top_driven = df.filter(pl.col("is_top") & pl.col("length_driven"))["neuron"].to_list()
    notes = [
        f"run {o.run}, layer {layer}",
        "on the solid line length explains nothing; below the dashed one, half or more",
        f"is length ({driven} of {df.height} neurons); red: the top {o.top} by variance,",
        f"of them mostly length: {', '.join(map(str, top_driven))}" if top_driven else "none of them mostly length",
    ]
    return alt.layer(guide, points).properties(
        width=SIZE,
        height=SIZE,
        title=alt.TitleParams(
            "Between-label variance before and after regressing out sentence length",
            subtitle=notes,
            subtitleColor="#666666",
        ),
    )
