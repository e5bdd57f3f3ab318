"""What every figure shares: the one colour scale for signed values (and the explorer's cards: red above 0, blue
below, white at 0, symmetric so that equal sizes look alike), the neuron classes' colours, and the title with the
run and layer under it."""

from __future__ import annotations

import altair as alt

CLASS_COLORS = {"polyglot": "#1b9e77", "shared": "#7570b3", "monolingual": "#d95f02", "inactive": "#bdbdbd"}


def chart_title(text: str, o, layer: int) -> alt.TitleParams:
    """TEXT with the run (O.run) and LAYER under it."""
    return alt.TitleParams(text, subtitle=f"run {o.run}, layer {layer}", subtitleColor="#666666")


def diverging(extent: float) -> alt.Scale:
    """Red for positive, blue for negative, over [-EXTENT, EXTENT] (EXTENT: the largest |value| shown, or the
    quantity's natural bound, so the legend spans the data)."""
    return alt.Scale(scheme="redblue", domain=[-extent, extent], domainMid=0, reverse=True)


def diverging_legend(extent: float, fmt: str = ".2g") -> alt.Legend:
    """A legend for `diverging(EXTENT)` labelled at both ends of the data, the middle and 0: it spans the data."""
    return alt.Legend(values=[-extent, -extent / 2, 0.0, extent / 2, extent], format=fmt)
