"""The paper's figures and companions as Altair charts, built from the SQL views in one publication theme.

Each chart function reads already-aggregated rows from a view (no statistic is computed here) and returns
an `alt.Chart`; every row the view returns is drawn (Altair's row limit is lifted, never silently hit).
`save` writes PNG, SVG, PDF (through vl-convert, offline) or self-contained HTML by extension.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import altair as alt
import polars as pl

from toolkit.defaults import CLASSES
from toolkit.errors import UserError
from toolkit.figures.chance import classes_null, sensitivity_by_language
from toolkit.figures.deactivation import deactivation_chart
from toolkit.figures.length import length_confound
from toolkit.figures.options import ChartOptions
from toolkit.figures.scales import CLASS_COLORS, chart_title, diverging, diverging_legend
from toolkit.stats.analysis import resolve
from toolkit.store.output import atomic_file
from toolkit.store.warehouse import Warehouse, reads

alt.data_transformers.disable_max_rows()

FONT = "Liberation Sans, Helvetica, Arial, sans-serif"
PNG_LIMIT = 1_000_000  # bytes; a larger PNG is drawn again at 1x
WIDTH = 900
FIGURE1_NEURONS = 10  # neurons drawn per label in Figure 1
"""Width of a figure's plotting area in px: the report's column is about 1,000 px wide."""


def theme() -> dict:
    """One look for every figure: white background, light grid, readable 11 pt labels."""
    return {
        "config": {
            "background": "white",
            "font": FONT,
            "view": {"stroke": None, "continuousWidth": WIDTH, "continuousHeight": 180},
            "axis": {
                "labelFontSize": 11,
                "titleFontSize": 12,
                "gridColor": "#eeeeee",
                "domainColor": "#888888",
                "tickColor": "#888888",
                "titleFontWeight": "normal",
            },
            "header": {"labelFontSize": 12, "titleFontSize": 12},
            "legend": {"labelFontSize": 11, "titleFontSize": 12},
            "title": {"fontSize": 13, "anchor": "start", "fontWeight": "normal"},
            "range": {"category": {"scheme": "tableau10"}},
        }
    }


alt.theme.register("neurons", enable=True)(theme)


def _labels(wh: Warehouse, run: str, layer: int) -> list[str]:
    return wh.sql("select distinct label from label_profiles where run = ? and layer = ? order by label", [run, layer])[
        "label"
    ].to_list()


def label_variance(wh: Warehouse, o: ChartOptions) -> alt.Chart:
    """Figure 1: per chosen label, the neurons whose z varies most within it (dots, the paper's statistic), against
    where every neuron of the layer lies (band: the middle 90 %) and 1, the variance of z over all of a
    language's sentences, which a label that says nothing about a neuron leaves it near (dashed)."""
    layer = resolve(wh, o.run, o.layer).layer
    labels = o.labels or _labels(wh, o.run, layer)
    unknown = sorted(set(labels) - set(_labels(wh, o.run, layer)))
    if unknown:
        raise UserError(
            f"run '{o.run}' has no label {', '.join(unknown)} (labels: {', '.join(_labels(wh, o.run, layer))})"
        )
    df = wh.sql(
        """with v as (
               select label, neuron, variance,
                      row_number() over (partition by label order by variance desc, neuron) as rank,
                      quantile_cont(variance, 0.05) over (partition by label) as low,
                      quantile_cont(variance, 0.95) over (partition by label) as high,
                      count(*) over (partition by label) as n_neurons
               from label_variance where run = ? and layer = ? and list_contains(?, label))
           select label, neuron, variance, rank, low, high, n_neurons from v where rank <= ?
           order by label, rank""",
        [o.run, layer, labels, FIGURE1_NEURONS],
    )
    x = alt.X("variance:Q", title="variance of z within the label", scale=alt.Scale(zero=False, nice=True))
    band = (
        alt.Chart()
        .transform_filter("datum.rank == 1")
        .mark_rect(color="#d9d9d9", opacity=0.6)
        .encode(x="low:Q", x2="high:Q")
    )
    one = alt.Chart().mark_rule(color="#444444", strokeDash=[4, 3]).encode(x=alt.datum(1))
    dots = (
        alt.Chart()
        .mark_circle(color="#2f6fab", size=60, opacity=1)
        .encode(
            x=x,
            y=alt.Y("neuron:N", sort=alt.EncodingSortField("rank"), title="neuron", axis=alt.Axis(labelFontSize=11)),
            tooltip=["label", "neuron", alt.Tooltip("variance:Q", format=".3f"), "rank"],
        )
    )
    n = int(df["n_neurons"].max()) if df.height else 0
    return (
        alt.layer(band, one, dots, data=df)
        .properties(width=180, height=16 * FIGURE1_NEURONS)
        .facet(
            facet=alt.Facet("label:N", title=None, header=alt.Header(labelFontSize=13, labelFontWeight="bold")),
            columns=4,
        )
        .resolve_scale(y="independent")
        .resolve_axis(x="independent")  # each panel its own axis: a shared one is also drawn under empty grid cells
        .properties(
            title=chart_title(
                f"The {FIGURE1_NEURONS} neurons whose z varies most within each label (dots); grey band: the middle "
                f"90 % of all {n} neurons; dashed: 1, the variance over all sentences",
                o,
                layer,
            )
        )
    )


def crosslingual_heatmap(wh: Warehouse, o: ChartOptions) -> alt.Chart:
    """Figure 2: Spearman (or cosine) of label profiles per label and language pair, values annotated; with
    O.at_equal_length, of the profiles moved to their language's mean sentence length (definition 25)."""
    if o.metric not in ("spearman", "cosine"):
        raise UserError(f"unknown --metric {o.metric}; use spearman or cosine")
    layer = resolve(wh, o.run, o.layer).layer
    if o.at_equal_length and not wh.scalar("select count(*) from label_lengths where run = ?", [o.run]):
        raise UserError(
            f"run '{o.run}' has no sentence lengths (a token count for every sentence), so no profiles at equal length"
        )
    # with bootstrap intervals stored (`neurons significance`), Spearman cells also show their 95 % interval; the
    # intervals resample the profiles themselves, so the profiles at equal length have none
    df = wh.sql(
        f"""select c.label, c.language_a || '–' || c.language_b as pair, c.{o.metric} as value,
                   case when ? = 'spearman' and i.low is not null and not ?
                        then printf('%.2f\n[%.2f, %.2f]', round(c.spearman, 2) + 0.0, round(i.low, 2) + 0.0, round(i.high, 2) + 0.0)
                        else printf('%.2f', round(c.{o.metric}, 2) + 0.0) end as text
            from profile_correlation(at_equal_length := ?) c
            left join correlation_intervals i using (run, layer, label, language_a, language_b)
            where c.run = ? and c.layer = ? order by c.label, pair""",
        [o.metric, o.at_equal_length, o.at_equal_length, o.run, layer],
    )
    name = "Spearman's rho" if o.metric == "spearman" else "cosine similarity"
    what = "label profiles at equal sentence length" if o.at_equal_length else "label profiles"
    return _pair_heatmap(
        df, o.metric.capitalize(), diverging(1.0), chart_title(f"Cross-lingual {name} of {what}", o, layer)
    )


def ceiling_heatmap(wh: Warehouse, o: ChartOptions) -> alt.Chart:
    """Beside Figure 2: the noise ceiling sqrt(r_a r_b) of each label x pair's Spearman (definition 9), with
    the disattenuated rho below it; pairs whose reliabilities fall under 0.3 are marked as uninterpretable. The
    subtitle says, from the run, how many cells have no ceiling and how many rho* exceed 1, and what each means."""
    layer = resolve(wh, o.run, o.layer).layer
    rows = wh.crosslingual_ceiling(o.run, layer)
    df = rows.select(
        "label", pl.concat_str("language_a", pl.lit("–"), "language_b").alias("pair"), pl.col("ceiling").alias("value")
    ).with_columns(
        text=pl.Series(
            [_ceiling_text(*r) for r in rows.select("ceiling", "disattenuated", "interpretable").rows()],
            dtype=pl.String,
        )
    )
    notes = [f"run {o.run}, layer {layer}"]
    missing = rows["ceiling"].null_count()
    above = int((rows["interpretable"] & (rows["disattenuated"].fill_nan(None).abs() > 1)).sum())  # NaN ranks top
    if missing:
        notes += [
            f"n/a ({missing} of {df.height} cells): a profile's split-half reliability is 0 or below (its Spearman is "
            "noise at this number of sentences),",
            "or undefined (a constant profile, or a cell of under 4 sentences)",
        ]
    if above:
        notes += [
            f"†: |rho*| above 1 ({above} cells): the reliabilities, estimated from half the sentences, came out low "
            "by chance;",
            "read as agreeing (below -1: opposing) as fully as the noise allows",
        ]
    title = alt.TitleParams(
        "Noise ceiling sqrt(r_a r_b) of each Spearman (ρ* = rho / ceiling)", subtitle=notes, subtitleColor="#666666"
    )
    return _pair_heatmap(df, "ceiling", alt.Scale(scheme="greens", domain=[0, 1]), title)


def _ceiling_text(ceiling: float | None, disattenuated: float | None, interpretable: bool) -> str:
    """A ceiling cell's two lines: the ceiling, then rho* (marked † beyond ±1, with a third decimal where two would
    read ±1.00) or why it is not read (n/a: the Spearman itself is undefined, a constant profile)."""
    if ceiling is None:
        return "n/a"
    if not interpretable:
        return f"{ceiling:.2f}\ntoo noisy"
    if disattenuated is None or math.isnan(disattenuated):
        return f"{ceiling:.2f}\nρ* n/a"
    beyond = abs(disattenuated) > 1
    digits = 3 if beyond and abs(round(disattenuated, 2)) == 1 else 2
    return f"{ceiling:.2f}\nρ* {round(disattenuated, digits) + 0.0:.{digits}f}{'†' if beyond else ''}"  # never -0.00


def _pair_heatmap(df: pl.DataFrame, value_title: str, scale: alt.Scale, title) -> alt.Chart:
    """A label x language-pair heatmap of VALUE with each cell's TEXT (one or two lines) annotated."""
    base = alt.Chart(df).encode(
        x=alt.X("pair:N", title="language pair", axis=alt.Axis(labelAngle=0)), y=alt.Y("label:N", title=None)
    )
    cells = base.mark_rect().encode(color=alt.Color("value:Q", title=value_title, scale=scale))
    two_lines = bool(df.height) and df["text"].str.contains("\n").any()
    text = base.mark_text(fontSize=11, lineBreak="\n").encode(
        text="text:N", color=alt.condition("abs(datum.value) > 0.6", alt.value("white"), alt.value("black"))
    )
    n_pairs = max(df["pair"].n_unique(), 1)
    return (
        alt.layer(cells, text)
        .properties(width=max((84 if two_lines else 64) * n_pairs, 260), height=alt.Step(40 if two_lines else 30))
        .properties(title=title)
    )


def label_profiles(wh: Warehouse, o: ChartOptions) -> alt.Chart:
    """Figure 3: for one label, the mean z of each language's top neurons (by |mean z|), as a language x neuron
    heatmap on a diverging scale centred on 0; a language's own top neurons are outlined, and every cell
    gives its value."""
    layer = resolve(wh, o.run, o.layer).layer
    labels = _labels(wh, o.run, layer)
    label = o.label or ("sadness" if "sadness" in labels else labels[0])
    if label not in labels:
        raise UserError(f"run '{o.run}' has no label {label} (labels: {', '.join(labels)})")
    df = wh.sql(
        """with chosen as (select distinct neuron from top_neurons
                           where run = ? and layer = ? and label = ? and rank <= ?)
           select t.language, t.neuron, t.mean_z, t.rank <= ? as is_top, printf('%.1f', round(t.mean_z, 1) + 0.0) as text
           from top_neurons t join chosen using (neuron)
           where t.run = ? and t.layer = ? and t.label = ? order by t.language, t.neuron""",
        [o.run, layer, label, o.top, o.top, o.run, layer, label],
    )
    extent = max(1.0, float(df["mean_z"].abs().max() or 0.0)) if df.height else 1.0
    base = alt.Chart(df).encode(
        x=alt.X("neuron:O", title="neuron (the union of each language's top neurons)", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("language:N", title=None),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "mean_z:Q",
            title="mean z",
            scale=diverging(extent),
            legend=diverging_legend(extent),
        ),
        tooltip=["language", "neuron", alt.Tooltip("mean_z:Q", format=".3f"), "is_top"],
    )
    outline = base.transform_filter("datum.is_top").mark_rect(fill=None, stroke="black", strokeWidth=1.5)
    text = base.mark_text(fontSize=10).encode(
        text="text:N",
        color=alt.condition(f"abs(datum.mean_z) > {0.55 * extent}", alt.value("white"), alt.value("black")),
    )
    n = max(df["neuron"].n_unique(), 1)
    return alt.layer(cells, outline, text).properties(
        width=min(max(30 * n, 300), WIDTH + 100),
        height=alt.Step(26),
        title=chart_title(
            f"Mean z of the top {o.top} neurons (|mean z|) per language for {label}; outlined: that "
            "language's own top neurons",
            o,
            layer,
        ),
    )


def class_distribution(wh: Warehouse, o: ChartOptions) -> alt.Chart:
    """Neurons per class for each label, stacked (polyglot, shared, monolingual, inactive)."""
    layer = resolve(wh, o.run, o.layer).layer
    df = wh.class_counts(o.run, layer, o.threshold, o.absolute).select("label", "neuron_class", "n_neurons", "share")
    order = list(CLASSES)
    rule = "|P|" if o.absolute else "P"
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", title=None),
            x=alt.X("n_neurons:Q", title="neurons", stack="zero"),
            color=alt.Color(
                "neuron_class:N",
                title="class",
                sort=order,
                scale=alt.Scale(domain=order, range=[CLASS_COLORS[c] for c in order]),
            ),
            order=alt.Order("class_order:Q"),
            tooltip=["label", "neuron_class", "n_neurons", alt.Tooltip("share:Q", format=".1%")],
        )
        .transform_calculate(class_order=f"indexof({order}, datum.neuron_class)")
        .properties(
            width=WIDTH - 200,
            height=alt.Step(24),
            title=chart_title(f"Neuron classes per label ({rule} > {o.threshold})", o, layer),
        )
    )


def monolingual_counts(wh: Warehouse, o: ChartOptions) -> alt.Chart:
    """Distinct monolingual neurons per language."""
    layer = resolve(wh, o.run, o.layer).layer
    df = wh.monolingual_counts(o.run, layer, o.threshold, o.absolute).select("language", "n_neurons")
    base = alt.Chart(df).encode(
        x=alt.X("language:N", title=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("n_neurons:Q", title="monolingual neurons", axis=alt.Axis(tickMinStep=1, format="d")),
    )
    return alt.layer(
        base.mark_bar(color=CLASS_COLORS["monolingual"]), base.mark_text(dy=-7, fontSize=11).encode(text="n_neurons:Q")
    ).properties(
        width=max(60 * df.height, 200),
        height=200,
        title=chart_title(
            f"Monolingual neurons per language ({'|P|' if o.absolute else 'P'} > {o.threshold})", o, layer
        ),
    )


def variance_ranking(wh: Warehouse, o: ChartOptions) -> alt.Chart:
    """Between-label variance of every neuron in rank order, the top neurons named."""
    layer = resolve(wh, o.run, o.layer).layer
    df = wh.sql(
        "select rank, neuron, variance, rank <= ? as is_top from between_label_variance "
        "where run = ? and layer = ? order by rank",
        [o.top, o.run, layer],
    )
    base = alt.Chart(df).encode(
        x=alt.X("rank:Q", title="rank", scale=alt.Scale(nice=False)),
        y=alt.Y("variance:Q", title="between-label variance"),
        tooltip=["rank", "neuron", alt.Tooltip("variance:Q", format=".4f")],
    )
    tops = ", ".join(map(str, df.filter(pl.col("is_top"))["neuron"].to_list()))
    return alt.layer(
        base.mark_area(color="#9ecae1", line={"color": "#3182bd"}),
        base.transform_filter("datum.is_top").mark_point(color="#d62728", filled=True),
    ).properties(
        width=WIDTH,
        height=200,
        title=alt.TitleParams(
            "Neurons ranked by between-label variance",
            subtitle=[f"run {o.run}, layer {layer}", f"top {o.top} (red): neurons {tops}"],
            subtitleColor="#666666",
        ),
    )


def layer_sweep(wh: Warehouse, o: ChartOptions) -> alt.Chart:
    """Across layers: polyglot and monolingual shares, and each language pair's mean Spearman."""
    wh.run_id(o.run)
    shares = wh.sql(
        "select layer, 'polyglot' as series, polyglot_share as value from summarize_layers(?, absolute := ?) "
        "where run = ? union all select layer, 'monolingual', monolingual_share from "
        "summarize_layers(?, absolute := ?) where run = ? order by all",
        [o.threshold, o.absolute, o.run, o.threshold, o.absolute, o.run],
    )
    pairs = wh.sql(
        "select layer, language_a || '–' || language_b as series, mean_spearman as value "
        "from language_pair_summary where run = ? and isfinite(mean_spearman) order by all",
        [o.run],
    )
    left = (
        alt.Chart(shares)
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:O", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("value:Q", title="share of (label, neuron) pairs"),
            color=alt.Color(
                "series:N",
                title="class",
                scale=alt.Scale(
                    domain=["polyglot", "monolingual"], range=[CLASS_COLORS["polyglot"], CLASS_COLORS["monolingual"]]
                ),
            ),
        )
        .properties(width=380, height=220, title="Neuron classes")
    )
    right = (
        alt.Chart(pairs)
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:O", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("value:Q", title="mean Spearman over labels", scale=alt.Scale(zero=False)),
            color=alt.Color("series:N", title="pair"),
        )
        .properties(width=380, height=220, title="Cross-lingual consistency")
    )
    return (
        alt.hconcat(left, right)
        .resolve_scale(color="independent")
        .properties(title=alt.TitleParams("Across layers", subtitle=f"run {o.run}", subtitleColor="#666666"))
    )


def latest_ablation(wh: Warehouse, run: str, ablation: int | None) -> dict:
    """The ablation to draw: ABLATION if given (it must belong to RUN), else RUN's latest."""
    run_id = wh.run_id(run)
    rows = wh.sql(
        "select * from ablations where run_id = ? and (? is null or ablation_id = ?) order by ablation_id desc limit 1",
        [run_id, ablation, ablation],
    )
    if not rows.height:
        which = f"ablation {ablation}" if ablation is not None else "ablations"
        raise UserError(f"no {which} for run '{run}'; run `neurons ablate ... --run {run}` first")
    return rows.row(0, named=True)


def ablation_effect(wh: Warehouse, o: ChartOptions) -> alt.Chart:
    """Change in macro-F1 per language when the target set is ablated, beside the random controls' range."""
    a = latest_ablation(wh, o.run, o.ablation)
    df = wh.sql(
        "select language, delta_macro_f1, control_mean_delta_macro_f1, control_min_delta_macro_f1, "
        "control_max_delta_macro_f1, target_rank, n_controls from ablation_summary where ablation_id = ? "
        "order by language",
        [a["ablation_id"]],
    )
    base = alt.Chart(df).encode(x=alt.X("language:N", title=None, axis=alt.Axis(labelAngle=0)))
    band = base.mark_rule(strokeWidth=8, opacity=0.35, color="#888888").encode(
        y=alt.Y("control_min_delta_macro_f1:Q", title="change in macro-F1"), y2="control_max_delta_macro_f1:Q"
    )
    control_mean = base.mark_tick(color="#555555", thickness=1, size=16).encode(y="control_mean_delta_macro_f1:Q")
    target = base.mark_point(filled=True, size=70, color="#d62728").encode(
        y="delta_macro_f1:Q",
        tooltip=["language", alt.Tooltip("delta_macro_f1:Q", format=".3f"), "target_rank", "n_controls"],
    )
    zero = alt.Chart(pl.DataFrame({"y": [0.0]})).mark_rule(color="#999999", strokeDash=[3, 3]).encode(y="y:Q")
    selection = a["selection"] if len(a["selection"]) <= 70 else a["selection"][:69] + "…"
    subtitle = [
        f"run {o.run}, layer {a['layer']}, ablation {a['ablation_id']}: {a['mode']} at {a['positions']}, "
        f"grey: {a['n_controls']} random sets of the same size",
        selection,
    ]
    return (
        alt.layer(zero, band, control_mean, target)
        .properties(width=max(70 * df.height, 240), height=220)
        .properties(
            title=alt.TitleParams(
                "Ablating the target neurons (red) against random controls", subtitle=subtitle, subtitleColor="#666666"
            )
        )
    )


def criteria_agreement(wh: Warehouse, o: ChartOptions) -> alt.Chart:
    """How the neuron criteria agree: Jaccard index of their top-k sets per pair and k, Spearman of their full
    rankings in the row labels (definition 14)."""
    layer = resolve(wh, o.run, o.layer).layer
    df = wh.sql(
        """select a.criterion_a || ' – ' || a.criterion_b || coalesce(printf('  (ρ %.2f)', s.spearman), '') as pair,
                  'top ' || a.k as k, a.k as k_order, a.jaccard, printf('%.2f', a.jaccard) as text
           from criteria_agreement a
           left join criteria_agreement s
             on s.run = a.run and s.layer = a.layer and s.criterion_a = a.criterion_a
            and s.criterion_b = a.criterion_b and s.k is null and s.jaccard is null
           where a.run = ? and a.layer = ? and a.k is not null order by pair, a.k""",
        [o.run, layer],
    )
    if not df.height:
        raise UserError(f"no criteria to compare for run '{o.run}', layer {layer}")
    base = alt.Chart(df).encode(
        x=alt.X("k:N", title=None, sort=alt.EncodingSortField("k_order"), axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("pair:N", title=None),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("jaccard:Q", title="Jaccard", scale=alt.Scale(scheme="greens", domain=[0, 1]))
    )
    text = base.mark_text(fontSize=12).encode(
        text="text:N", color=alt.condition("datum.jaccard > 0.6", alt.value("white"), alt.value("black"))
    )
    return alt.layer(cells, text).properties(
        width=alt.Step(90),
        height=alt.Step(34),
        title=chart_title(
            "Agreement of neuron criteria: Jaccard of their top-k sets (ρ: Spearman of the rankings)", o, layer
        ),
    )


CHARTS: dict[str, tuple[Callable[[Warehouse, ChartOptions], alt.Chart], str]] = {
    "label-variance": (label_variance, "Figure 1: the neurons whose z varies most within each label"),
    "correlation": (crosslingual_heatmap, "Figure 2: cross-lingual Spearman (or --metric cosine) heatmap"),
    "agreement": (criteria_agreement, "Jaccard of the criteria's top-k neuron sets, Spearman of their rankings"),
    "ceiling": (ceiling_heatmap, "noise ceiling and disattenuated Spearman per label and pair"),
    "profiles": (label_profiles, "Figure 3: mean z of each language's top neurons for one label, a heatmap"),
    "classes": (class_distribution, "neuron classes per label, stacked"),
    "monolingual": (monolingual_counts, "monolingual neurons per language"),
    "variance-ranking": (variance_ranking, "between-label variance, neurons in rank order"),
    "length": (length_confound, "between-label variance against the same at equal sentence length (definition 25)"),
    "sensitivity": (sensitivity_by_language, "label-sensitive neurons per language beside the pooled count"),
    "classes-null": (classes_null, "class counts against the permutation null (after `neurons significance`)"),
    "layers": (layer_sweep, "the layer sweep: class shares and mean Spearman per pair across layers"),
    "ablation": (ablation_effect, "change in macro-F1 per language under an ablation, with the control band"),
    "deactivation": (deactivation_chart, "the LAPE causal test: change in each language's NLL (after ablate --lape)"),
}

FORMATS = (".png", ".svg", ".pdf", ".html")


@reads
def build(wh: Warehouse, name: str, options: ChartOptions) -> alt.Chart:
    if name not in CHARTS:
        raise UserError(f"unknown chart {name}; one of {', '.join(CHARTS)}")
    return CHARTS[name][0](wh, options)


def images(spec: dict) -> tuple[str, bytes]:
    """A chart's Vega-Lite SPEC drawn once as SVG, and that SVG rasterised as PNG at 1.5x (1x when that passes
    PNG_LIMIT: a dense figure of thousands of neurons). vl-convert's own PNG path draws the chart again before
    rasterising; this PNG is the same bytes at a third of the cost."""
    import vl_convert

    version = "_".join(alt.SCHEMA_VERSION.split(".")[:2])  # vl-convert names Vega-Lite 6.4.1 'v6_4'
    svg = vl_convert.vegalite_to_svg(spec, vl_version=version)
    png = vl_convert.svg_to_png(svg, scale=1.5)
    if len(png) > PNG_LIMIT:
        png = vl_convert.svg_to_png(svg, scale=1.0)
    return svg, png


def save(chart: alt.Chart, out: str | Path) -> Path:
    """Write CHART as PNG (1.5x scale), SVG, PDF or self-contained HTML, chosen by OUT's extension."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"--out {out}: unsupported extension '{out.suffix}'; use one of {', '.join(FORMATS)}")
    suffix = out.suffix.lower()
    with atomic_file(out) as tmp:
        if suffix == ".png":
            tmp.write_bytes(images(chart.to_dict())[1])
        elif suffix == ".svg":
            tmp.write_text(images(chart.to_dict())[0], encoding="utf-8")
        elif suffix == ".html":
            chart.save(str(tmp), format="html", inline=True)
        else:
            chart.save(str(tmp), format=suffix[1:])
    return out
