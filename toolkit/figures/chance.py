"""Figures of the tests against chance (after `neurons significance`): class counts against their permutation
null, and label-sensitive neurons in each language beside the pooled count (definition 10)."""

from __future__ import annotations

import altair as alt
import polars as pl

from toolkit.defaults import CLASSES
from toolkit.errors import UserError
from toolkit.figures.options import ChartOptions
from toolkit.figures.scales import CLASS_COLORS, chart_title
from toolkit.stats.analysis import resolve
from toolkit.store.warehouse import Warehouse


def classes_null(wh: Warehouse, o: ChartOptions) -> alt.Chart:
    """Observed class counts per label against their permutation null (mean and 95 % interval), and the
    monolingual neurons of each language (over all labels) against theirs, in a panel of its own."""
    layer = resolve(wh, o.run, o.layer).layer
    df = wh.sql(
        "select coalesce(label, language) as row, case when label is null then 'monolingual, per language' "
        "else neuron_class end as panel, label, language, neuron_class, observed, null_mean, null_low, null_high, "
        "p_value from class_significance where run = ? and layer = ? order by label nulls last, language, neuron_class",
        [o.run, layer],
    )
    if not df.height:
        raise UserError(f"no significance results for run '{o.run}', layer {layer}; run `neurons significance` first")
    order = [c for c in CLASSES if c != "inactive"]
    panels = [*order, "monolingual, per language"]
    base = alt.Chart().encode(y=alt.Y("row:N", title=None, sort=None))
    # whole neurons only (the renderer ignores tickMinStep), the last label centred on its tick, not flush
    counts = alt.Axis(
        format="d", labelExpr="datum.value % 1 ? '' : datum.label", labelFlush=False, labelOverlap=True, tickCount=5
    )
    # round caps keep a null interval of zero width visible as a grey dot under the observed count
    band = base.mark_rule(strokeWidth=12, strokeCap="round", opacity=0.8, color="#c4c4c4").encode(
        x=alt.X("null_low:Q", title="neurons", axis=counts), x2="null_high:Q"
    )
    null_mean = base.mark_tick(color="#333333", thickness=2, size=16).encode(x=alt.X("null_mean:Q", axis=counts))
    observed = base.mark_point(filled=True, size=70, opacity=1).encode(
        x=alt.X("observed:Q", axis=counts),
        color=alt.Color(
            "neuron_class:N",
            title="class",
            sort=order,
            legend=None,
            scale=alt.Scale(domain=order, range=[CLASS_COLORS[c] for c in order]),
        ),
        tooltip=[
            "label",
            "language",
            "neuron_class",
            "observed",
            alt.Tooltip("null_mean:Q", format=".1f"),
            alt.Tooltip("null_low:Q", format=".1f"),
            alt.Tooltip("null_high:Q", format=".1f"),
            alt.Tooltip("p_value:Q", format=".4f"),
        ],
    )
    return (
        alt.layer(band, null_mean, observed, data=df)
        .properties(width=200, height=alt.Step(22))
        .facet(
            column=alt.Column(
                "panel:N", title=None, sort=panels, header=alt.Header(labelFontSize=13, labelFontWeight="bold")
            )
        )
        .resolve_scale(y="independent", x="independent")
        .properties(
            title=chart_title(
                "Class counts against chance (dot: observed; grey bar: the permutation null's 95 % interval, "
                "dark tick: its mean)",
                o,
                layer,
            )
        )
    )


def sensitivity_by_language(wh: Warehouse, o: ChartOptions) -> alt.Chart:
    """Label-sensitive neurons in each language's own test beside the pooled count (definition 10): which
    languages carry the pooled headline."""
    layer = resolve(wh, o.run, o.layer).layer
    counts = wh.language_sensitive_counts(o.run, layer)
    if not counts.height:
        raise UserError(f"no significance results for run '{o.run}', layer {layer}; run `neurons significance` first")
    pooled = wh.sensitive_counts(o.run, layer)
    df = pl.concat(
        [
            pl.DataFrame(
                {"group": ["pooled"], "n_sensitive": [pooled["sensitive"]], "n_tested": [pooled["n_neurons"]]}
            ),
            counts.select(pl.col("language").alias("group"), "n_sensitive", "n_tested"),
        ],
        how="vertical_relaxed",
    ).with_columns(kind=pl.when(pl.col("group") == "pooled").then(pl.lit("pooled")).otherwise(pl.lit("language")))
    base = alt.Chart(df).encode(
        x=alt.X("group:N", title=None, sort=df["group"].to_list(), axis=alt.Axis(labelAngle=0, labelFontSize=12)),
        y=alt.Y("n_sensitive:Q", title="label-sensitive neurons", axis=alt.Axis(tickMinStep=1, format="d")),
        tooltip=["group", "n_sensitive", "n_tested"],
    )
    bars = base.mark_bar().encode(
        color=alt.Color(
            "kind:N", scale=alt.Scale(domain=["pooled", "language"], range=["#555555", "#6b9bc9"]), legend=None
        )
    )
    return alt.layer(bars, base.mark_text(dy=-7, fontSize=11).encode(text="n_sensitive:Q")).properties(
        width=max(70 * df.height, 220),
        height=200,
        title=chart_title(
            "Label-sensitive neurons: pooled over languages (grey) and in each language's own test (blue)", o, layer
        ),
    )
