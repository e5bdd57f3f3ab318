"""The neuron explorer: everything the warehouse knows about single neurons of one run and layer, as small
Polars frames read from the views (no statistic is computed here).

A card holds the neuron's label x language profile (definition 2), its class per label (definition 6), its
between-label variance and rank (definition 3) and the share of it that is sentence length (definition 25, where the
run has token counts), its significance and effect size (definition 10, after
`neurons significance`), the ablations whose target set held it, and the sentences that activate it most and
least in each language (view `top_sentences`). `neurons neuron` prints one card; the report embeds them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from toolkit.defaults import THRESHOLD
from toolkit.errors import UserError
from toolkit.stats.analysis import resolve
from toolkit.stats.highlight import segments
from toolkit.stats.neighbours import neighbours
from toolkit.store.warehouse import Warehouse, reads


@dataclass
class Cards:
    """The explorer's frames for some neurons of one run and layer; every frame has a `neuron` column."""

    run: str
    layer: int
    n_neurons: int  # neurons in the layer
    variance: pl.DataFrame  # neuron, variance, rank, adjusted_variance, length_share, length_r (definition 25)
    profile: pl.DataFrame  # neuron, language, label, mean_z, n_sentences
    classes: pl.DataFrame  # neuron, label, neuron_class, language
    significance: pl.DataFrame  # neuron, q_value, omega/eta squared, sensitive (empty before `neurons significance`)
    ablations: pl.DataFrame  # neuron, ablation_id, mode, positions, target_size, language, delta_macro_f1, target_rank
    sentences: pl.DataFrame  # neuron, language, rank, sentence_id, label, z, value (raw), text
    density: pl.DataFrame  # neuron, language, n_sentences, density (definition 22)
    histogram: pl.DataFrame  # neuron, language, bin, lo, hi, n (definition 22)
    neighbours: pl.DataFrame  # neuron, by, rank, other, r (definition 23)
    token_values: pl.DataFrame  # neuron, sentence_id, vector, best (view token_evidence's is_max; definition 21)
    sentence_tokens: pl.DataFrame  # sentence_id, tokens, starts, ends, special, pooled
    logit_effects: pl.DataFrame  # neuron, direction, rank, token_id, token, effect: stored (definition 20)

    def one(self, neuron: int) -> Cards:
        """The frames of one neuron."""
        keep = pl.col("neuron") == neuron
        return Cards(
            self.run,
            self.layer,
            self.n_neurons,
            sentence_tokens=self.sentence_tokens,
            **{f: getattr(self, f).filter(keep) for f in PER_NEURON},
        )


PER_NEURON = (
    "variance",
    "profile",
    "classes",
    "significance",
    "ablations",
    "sentences",
    "density",
    "histogram",
    "neighbours",
    "token_values",
    "logit_effects",
)
"""The frames of Cards with one row set per neuron."""

LENGTH_COLUMNS = ("neuron", "adjusted_variance", "length_share", "length_r")
"""A card's columns of view `length_confound` (definition 25)."""

BINS = 20
"""Bins of a card's histogram."""


@reads
def neuron_cards(
    wh: Warehouse,
    run: str,
    layer: int | None = None,
    neurons: list[int] | None = None,
    sentences: int = 5,
    threshold: float = THRESHOLD,
    absolute: bool = False,
) -> Cards:
    """The cards of NEURONS (default: every neuron of the layer), with SENTENCES top and bottom sentences per
    language, classes at THRESHOLD."""
    rl = resolve(wh, run, layer)
    if sentences < 0:
        raise UserError("--sentences must be at least 0")
    known = wh.sql(
        "select neuron from between_label_variance where run = ? and layer = ? order by neuron", [rl.run, rl.layer]
    )["neuron"]
    if neurons is not None:
        missing = sorted(set(neurons) - set(known.to_list()))
        if missing:
            raise UserError(
                f"run '{run}' has no neuron {', '.join(map(str, missing))} at layer {rl.layer} "
                f"(neurons {known.min()}..{known.max()})"
            )
    wanted = neurons if neurons is not None else known.to_list()
    params = [rl.run, rl.layer, wanted]
    where = "run = ? and layer = ? and list_contains(?, neuron)"
    return Cards(
        rl.run,
        rl.layer,
        known.len(),
        variance=wh.sql(
            f"select neuron, variance, rank from between_label_variance where {where} order by neuron", params
        ).join(  # with definition 25's length adjustment where the run has token counts (else nulls)
            wh.held("length_confound", rl.run, rl.layer, "neuron").select(LENGTH_COLUMNS),
            on="neuron",
            how="left",
            maintain_order="left",
        ),
        profile=wh.sql(
            f"select neuron, language, label, mean_z, n_sentences from label_profiles where {where} "
            "order by neuron, label, language",
            params,
        ),
        classes=wh.sql(
            f"select neuron, label, neuron_class, language from classify_neurons(?, absolute := ?) where {where} "
            "order by neuron, label",
            [threshold, absolute, *params],
        ),
        significance=wh.sql(
            f"select neuron, q_value, omega_squared, eta_squared, sensitive from neuron_significance where {where} "
            "order by neuron",
            params,
        ),
        ablations=wh.sql(
            """select u.neuron, a.ablation_id, a.mode, a.positions, len(k.neurons) as target_size, m.language,
                      m.delta_macro_f1, m.target_rank, m.n_controls
               from ablations a
               join runs r using (run_id)
               join ablation_sets k on k.ablation_id = a.ablation_id and k.kind = 'target'
               join (select unnest(?::USMALLINT[]) as neuron) u on list_contains(k.neurons, u.neuron)
               join ablation_summary m on m.ablation_id = a.ablation_id
               where r.name = ? and a.layer = ?
               order by u.neuron, a.ablation_id, m.language""",
            [wanted, rl.run, rl.layer],
        ),
        sentences=wh.sql(
            f"select neuron, language, rank, sentence_id, label, z, value, text from top_sentences where {where} "
            "and abs(rank) <= ? order by neuron, language, rank < 0, abs(rank)",
            [*params, sentences],
        ),
        density=wh.sql("select * from neuron_density(?, ?, ?) order by neuron, language", params),
        histogram=wh.sql(
            "select * from neuron_histogram(?, ?, ?, bins := ?) order by neuron, language, bin", [*params, BINS]
        ),
        neighbours=neighbours(wh, rl.run, rl.layer, wanted),
        token_values=wh.sql(
            "select v.neuron, v.sentence_id, v.vector, e.position as best from token_values v join runs r using (run_id) "
            "left join token_evidence e on e.run = r.name and e.layer = v.layer and e.neuron = v.neuron "
            "and e.sentence_id = v.sentence_id and e.is_max "
            "where r.name = ? and v.layer = ? and list_contains(?, v.neuron) order by v.neuron, v.sentence_id",
            params,
        ),
        sentence_tokens=wh.sql(
            "select t.sentence_id, t.tokens, t.starts, t.ends, t.special, t.pooled from sentence_tokens t "
            "join runs r using (run_id) where r.name = ? order by t.sentence_id",
            [rl.run],
        ),
        logit_effects=wh.sql(
            "select e.neuron, e.direction, e.rank, e.token_id, e.token, e.effect from logit_effects e "
            "join runs r using (run_id) where r.name = ? and e.layer = ? and list_contains(?, e.neuron) "
            "order by e.neuron, e.direction, e.rank",
            params,
        ),
    )


TEXT_WIDTH = 70
"""Characters of a sentence shown in a plain-text card; a longer one ends in an ellipsis."""


def shortened(column: str) -> pl.Expr:
    """COLUMN cut to TEXT_WIDTH characters, with an ellipsis where it was cut."""
    text = pl.col(column)
    return (
        pl.when(text.str.len_chars() > TEXT_WIDTH)
        .then(text.str.slice(0, TEXT_WIDTH - 1) + "…")
        .otherwise(text)
        .alias(column)
    )


def card_text(cards: Cards, neuron: int, render) -> str:
    """One neuron's card as plain text (RENDER formats a frame as a table)."""
    c = cards.one(neuron)
    lines = [f"neuron {neuron}, layer {cards.layer}, run '{cards.run}'"]
    if c.variance.height:
        v = c.variance.row(0, named=True)
        rank = f"rank {v['rank']} of {cards.n_neurons}" if v["rank"] is not None else "constant in every language"
        lines.append(f"between-label variance {v['variance']:.4f}, {rank}")
        if v["length_share"] is not None:  # r is undefined (null) where every sentence has one length
            r = "--" if v["length_r"] is None else f"{v['length_r']:+.2f}"
            lines.append(
                f"length (definition 25): r {r} with log tokens within language; without it, "
                f"between-label variance {v['adjusted_variance']:.4f} ({v['length_share']:.0%} of it is length)"
            )
    if c.significance.height:
        s = c.significance.row(0, named=True)
        effect = {k: "--" if s[k] is None else f"{s[k]:.4f}" for k in ("omega_squared", "eta_squared")}
        lines.append(
            f"significance: q {s['q_value']:.4f}, omega squared {effect['omega_squared']} (eta squared "
            f"{effect['eta_squared']}), "
            f"{'label-sensitive' if s['sensitive'] else 'not label-sensitive'}"
        )
    if c.profile.height:
        wide = c.profile.pivot(on="language", index="label", values="mean_z").sort("label")
        classes = c.classes.select("label", pl.col("neuron_class").alias("class"), pl.col("language").alias("only_in"))
        lines += ["", "mean z per label and language (definition 2) and class (definition 6)"]
        lines.append(render(wide.join(classes, on="label", how="left"), "table", float_precision=3).rstrip())
    if c.ablations.height:
        lines += ["", "ablations whose target set holds this neuron (change in macro-F1; rank 1 = largest drop)"]
        lines.append(render(c.ablations.drop("neuron"), "table", float_precision=3).rstrip())
    lines += density_lines(c) + neighbour_lines(c)
    if c.logit_effects.height:
        lines += [
            "",
            "tokens it writes towards: W_U . W_down[:, n], the direct path before the final norm (definition 20)",
        ]
        lines.append(render(c.logit_effects.drop("neuron", "token_id"), "table", float_precision=3).rstrip())
    if c.sentences.height:
        lines += ["", "sentences that activate it most (rank 1, 2, ...) and least (rank -1, -2, ...) per language"]
        lines.append(
            render(
                c.sentences.select("language", "rank", "label", "z", pl.col("value").alias("raw"), shortened("text")),
                "table",
                float_precision=3,
            ).rstrip()
        )
    return "\n".join(lines) + "\n"


SPARK = "▁▂▃▄▅▆▇█"
"""Bar heights of a text histogram."""


def density_lines(c: Cards) -> list[str]:
    """Per language: the share of sentences above 0 (definition 22) and the histogram as one line of bars."""
    if not c.histogram.height:
        return []
    lo, hi = c.histogram["lo"][0], c.histogram["hi"][0]
    lines = [
        "",
        f"density (share of sentences whose pooled value is above 0) and histogram of its pooled values "
        f"({BINS} bins from {lo:.3g} to {hi:.3g}; definition 22)",
    ]
    density = dict(c.density.select("language", "density").iter_rows())
    for (language,), g in c.histogram.group_by("language", maintain_order=True):
        counts = [0] * BINS
        for b, n in g.select("bin", "n").iter_rows():
            counts[b] = n
        top = max(counts)
        bars = "".join(" " if n == 0 else SPARK[min(len(SPARK) - 1, n * len(SPARK) // (top + 1))] for n in counts)
        lines.append(f"  {language:<8} {density.get(language, 0.0):>6.1%}  |{bars}|")
    return lines


def neighbour_lines(c: Cards) -> list[str]:
    """Its ten nearest neurons by |r| across sentences and across label profiles (definition 23)."""
    if not c.neighbours.height:
        return []
    lines = ["", "nearest neurons of the layer by |r| (definition 23): neuron (r)"]
    for by, what in (("sentences", "z across sentences"), ("profiles", "label profiles")):
        g = c.neighbours.filter(pl.col("by") == by)
        if g.height:
            lines.append(f"  {what:<20} " + ", ".join(f"{o} ({r:+.2f})" for o, r in g.select("other", "r").iter_rows()))
    return lines


def _by_neuron(frame: pl.DataFrame, *columns: str) -> dict[int, list[tuple]]:
    """COLUMNS of each row of FRAME, grouped by its neuron in the frame's order (one pass, not a filter per neuron)."""
    grouped: dict[int, list[tuple]] = {}
    for neuron, *values in frame.select("neuron", *columns).iter_rows():
        grouped.setdefault(neuron, []).append(tuple(values))
    return grouped


def cards_json(cards: Cards) -> dict:
    """Every card as plain data for the report's explorer: per neuron its numbers, with sentence texts once."""
    columns = {name: [c for c in getattr(cards, name).columns if c != "neuron"] for name in PER_NEURON}
    part = {
        "profile": _by_neuron(cards.profile, "label", "language", "mean_z"),
        "classes": _by_neuron(cards.classes, *columns["classes"]),
        "significance": _by_neuron(cards.significance, *columns["significance"]),
        "ablations": _by_neuron(cards.ablations, *columns["ablations"]),
        "sentences": _by_neuron(cards.sentences, "language", "rank", "sentence_id", "label", "z", "value"),
        "density": _by_neuron(cards.density, "language", "density"),
        "histogram": _by_neuron(cards.histogram, "language", "bin", "n"),
        "range": _by_neuron(cards.histogram, "lo", "hi"),
        "neighbours": _by_neuron(cards.neighbours, "by", "other", "r"),
        "token_values": _by_neuron(cards.token_values, "sentence_id", "vector", "best"),
        "logit_effects": _by_neuron(cards.logit_effects, "direction", "token", "effect"),
    }

    def rows(name: str, neuron: int) -> list[tuple]:
        return part[name].get(neuron, [])

    out = {}
    for neuron, variance, rank, adjusted, share, length_r in cards.variance.iter_rows():
        token_rows = rows("token_values", neuron)
        out[str(neuron)] = {
            "variance": variance,
            "rank": rank,
            "length": None if share is None else {"adjusted_variance": adjusted, "share": share, "r": length_r},
            "profile": [list(r) for r in rows("profile", neuron)],
            "classes": [list(r) for r in rows("classes", neuron)],
            "significance": next((dict(zip(columns["significance"], r)) for r in rows("significance", neuron)), None),
            "ablations": [dict(zip(columns["ablations"], r)) for r in rows("ablations", neuron)],
            "sentences": [list(r) for r in rows("sentences", neuron)],
            "density": [list(r) for r in rows("density", neuron)],
            "histogram": [list(r) for r in rows("histogram", neuron)],
            "range": next(iter(rows("range", neuron)), None),
            "neighbours": [list(r) for r in rows("neighbours", neuron)],
            "token_values": {str(sid): [round(float(x), 4) for x in vec] for sid, vec, _ in token_rows},
            "token_best": {str(sid): best for sid, _, best in token_rows},
            "logit_effects": [list(r) for r in rows("logit_effects", neuron)],
        }
    texts = dict(cards.sentences.select("sentence_id", "text").unique("sentence_id").iter_rows())
    tokens = {
        str(sid): {"segments": segments(texts.get(sid) or "", tok, a, b, sp), "special": sp}
        for sid, tok, a, b, sp, _ in cards.sentence_tokens.iter_rows()
        if sid in texts
    }
    return {
        "run": cards.run,
        "layer": cards.layer,
        "n_neurons": cards.n_neurons,
        "bins": BINS,
        "neurons": out,
        "texts": {str(k): v for k, v in texts.items()},
        "tokens": tokens,
    }
