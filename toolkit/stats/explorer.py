"""The neuron explorer: everything the warehouse knows about single neurons of one run and layer, as small
Polars frames read from the views (no statistic is computed here).

A card holds the neuron's label x language profile (definition 2), its class per label (definition 6), its
between-label variance and rank (definition 3), its significance and effect size (definition 10, after
`neurons significance`), the ablations whose target set held it, and the sentences that activate it most and
least in each language (view `top_sentences`). `neurons neuron` prints one card; the report embeds them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from toolkit.defaults import THRESHOLD
from toolkit.errors import UserError
from toolkit.stats.analysis import resolve
from toolkit.store.warehouse import Warehouse, reads


@dataclass
class Cards:
    """The explorer's frames for some neurons of one run and layer; every frame has a `neuron` column."""

    run: str
    layer: int
    n_neurons: int  # neurons in the layer
    variance: pl.DataFrame  # neuron, variance, rank
    profile: pl.DataFrame  # neuron, language, label, mean_z, n_sentences
    classes: pl.DataFrame  # neuron, label, neuron_class, language
    significance: pl.DataFrame  # neuron, q_value, omega/eta squared, sensitive (empty before `neurons significance`)
    ablations: pl.DataFrame  # neuron, ablation_id, mode, positions, target_size, language, delta_macro_f1, target_rank
    sentences: pl.DataFrame  # neuron, language, rank, sentence_id, label, z, value (raw), text

    def one(self, neuron: int) -> Cards:
        """The frames of one neuron."""
        keep = pl.col("neuron") == neuron
        return Cards(
            self.run,
            self.layer,
            self.n_neurons,
            *(
                getattr(self, f).filter(keep)
                for f in ("variance", "profile", "classes", "significance", "ablations", "sentences")
            ),
        )


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


def cards_json(cards: Cards) -> dict:
    """Every card as plain data for the report's explorer: per neuron its numbers, with sentence texts once."""
    by = {
        name: {k[0]: g.drop("neuron") for k, g in getattr(cards, name).group_by("neuron")}
        for name in ("profile", "classes", "significance", "ablations", "sentences")
    }
    empty = pl.DataFrame()
    out = {}
    for neuron, variance, rank in cards.variance.iter_rows():
        profile = by["profile"].get(neuron, empty)
        out[str(neuron)] = {
            "variance": variance,
            "rank": rank,
            "profile": [list(r) for r in profile.select("label", "language", "mean_z").iter_rows()],
            "classes": [list(r) for r in by["classes"].get(neuron, empty).iter_rows()],
            "significance": next(iter(by["significance"].get(neuron, empty).to_dicts()), None),
            "ablations": by["ablations"].get(neuron, empty).to_dicts(),
            "sentences": [
                list(r)
                for r in by["sentences"]
                .get(neuron, empty)
                .select("language", "rank", "sentence_id", "label", "z", "value")
                .iter_rows()
            ],
        }
    texts = dict(cards.sentences.select("sentence_id", "text").unique("sentence_id").iter_rows())
    return {
        "run": cards.run,
        "layer": cards.layer,
        "n_neurons": cards.n_neurons,
        "neurons": out,
        "texts": {str(k): v for k, v in texts.items()},
    }
