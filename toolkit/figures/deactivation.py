"""The LAPE causal test as a figure (Tang et al. 2024, Figure 3): how each language's NLL moves when a
language's LAPE neurons are zeroed (view `deactivation_matrix`), beside where those neurons sit by layer."""

from __future__ import annotations

import json

import altair as alt

from toolkit.errors import UserError
from toolkit.figures.scales import diverging, diverging_legend
from toolkit.store.warehouse import Warehouse


def latest_deactivation(wh: Warehouse, run: str) -> dict | None:
    """RUN's latest LAPE deactivation (`neurons ablate --lape`), None when it has none."""
    rows = wh.sql(
        "select deactivation_id, settings from deactivations where run_id = ? order by deactivation_id desc limit 1",
        [wh.run_id(run)],
    )
    return rows.row(0, named=True) if rows.height else None


def deactivation_chart(wh: Warehouse, o) -> alt.Chart:
    """Left: change in mean next-token NLL (deactivated language x evaluated language), the random sets' mean
    change under it; red is a rise. Right: each language's LAPE neurons per FFN layer."""
    d = latest_deactivation(wh, o.run)
    if d is None:
        raise UserError(f"run '{o.run}' has no LAPE deactivation; run `neurons ablate --run {o.run} --lape` first")
    df = wh.sql(
        """select deactivated_language, evaluated_language, delta, control_delta, nll, baseline_nll, n_neurons,
                  printf('%+.3g', delta) || coalesce(printf('\nrandom %+.3g', control_delta), '') as text
           from deactivation_matrix where deactivation_id = ? order by all""",
        [d["deactivation_id"]],
    )
    extent = max(float(df["delta"].abs().max() or 0), float(df["control_delta"].abs().max() or 0), 1e-6)
    languages = sorted(set(df["evaluated_language"]))
    base = alt.Chart(df).encode(
        x=alt.X("evaluated_language:N", title="NLL of", sort=languages, axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("deactivated_language:N", title="neurons zeroed of", sort=languages),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "delta:Q",
            title="change in NLL",
            scale=diverging(extent),
            legend=diverging_legend(extent, ".3g"),
        ),
        tooltip=["deactivated_language", "evaluated_language", "n_neurons", "baseline_nll", "nll", "delta",
                 "control_delta"],
    )  # fmt: skip
    text = base.mark_text(fontSize=11, lineBreak="\n").encode(
        text="text:N",
        color=alt.condition(f"abs(datum.delta) > {0.6 * extent}", alt.value("white"), alt.value("black")),
    )
    heat = (cells + text).properties(width=100 * len(languages), height=48 * len(set(df["deactivated_language"])))
    settings = json.loads(d["settings"])
    layers = wh.sql(
        "select language, layer, count(*) as neurons from language_specific_neurons(top_rate := ?, filter_rate := ?, "
        "activation_bar_ratio := ?) where run = ? group by all order by all",
        [settings["top_rate"], settings["filter_rate"], settings["activation_bar_ratio"], o.run],
    )
    spread = alt.Chart(layers).encode(
        x=alt.X("layer:O", title="FFN layer", axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("language:N", title=None, sort=languages),
    )
    dist = (
        spread.mark_rect().encode(color=alt.Color("neurons:Q", title="neurons", scale=alt.Scale(scheme="greens")))
        + spread.mark_text(fontSize=11).encode(text="neurons:Q")
    ).properties(height=48 * max(layers["language"].n_unique(), 1), width=36 * max(layers["layer"].n_unique(), 3))
    return (
        alt.hconcat(heat, dist, spacing=40)
        .resolve_scale(color="independent")
        .properties(
            title=alt.TitleParams(
                "Zeroing each language's LAPE neurons: change in every language's next-token NLL",
                subtitle=f"run {o.run}, deactivation {d['deactivation_id']}; second line: mean change under random sets "
                "of the same size per layer; right: the neurons per layer",
                subtitleColor="#666666",
            )
        )
    )
