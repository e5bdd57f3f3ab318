"""Commands that explain single neurons: `neuron` prints one neuron's card, `tokens` stores token evidence for
every neuron of a layer so the report's explorer can show it offline."""

from __future__ import annotations

import sys

import click

from toolkit.cli.base import (
    Context,
    abs_option,
    at_least,
    device_map_option,
    device_option,
    json_option,
    layer_option,
    pass_ctx,
    quiet_option,
    run_option,
    threshold_option,
)
from toolkit.errors import UserError


@click.command()
@click.argument("neuron", type=int)
@run_option("Run to look in.")
@layer_option()
@click.option(
    "--sentences",
    type=int,
    default=5,
    show_default=True,
    callback=at_least(0),
    help="Most and least activating sentences shown per language.",
)
@threshold_option("Threshold of the neuron classes.")
@abs_option()
@click.option(
    "--logits",
    is_flag=True,
    help="For a decoder's FFN run: the tokens the neuron promotes and suppresses (W_U . W_down[:, n]); loads the model.",
)
@click.option(
    "--tokens",
    is_flag=True,
    help="Rerun the run's model on the neuron's top sentences per language (and one per bin of its range) and show "
    "each token's value, the largest marked; loads the model.",
)
@click.option(
    "--bins",
    type=int,
    default=5,
    show_default=True,
    callback=at_least(0),
    help="--tokens: equal-count bins of the neuron's values per language, one example sentence each (0: none).",
)
@click.option("--model", default=None, help="--tokens/--logits: the checkpoint, when not where the run was made from.")
@device_option
@device_map_option
@json_option("JSON instead of text.")
@pass_ctx
def neuron(
    ctx: Context,
    neuron: int,
    run: str,
    layer: int | None,
    sentences: int,
    threshold: float,
    absolute: bool,
    logits: bool,
    tokens: bool,
    bins: int,
    model: str | None,
    device: str,
    device_map: str | None,
    as_json: bool,
) -> None:
    """One neuron's card: its label x language profile, class per label, variance rank, significance, density
    and histogram per language, nearest neurons, ablations that held it, and the sentences that activate it most
    and least in each language; with --tokens, each token's value on its top sentences (the model rerun); with
    --logits, the tokens a decoder's FFN neuron writes towards. A model that cannot be loaded leaves the rest of
    the card printed and says why in one line."""
    from toolkit.stats.explorer import card_text, cards_json, neuron_cards
    from toolkit.store.query import render, to_json
    from toolkit.store.warehouse import Warehouse

    with Warehouse(ctx.db, read_only=True) as wh:
        cards = neuron_cards(wh, run, layer, [neuron], sentences, threshold, absolute)
        found = wh.run(run)
        if logits and found.site != "ffn":
            raise UserError(
                f"--logits reads FFN neurons; run '{run}' holds the residual stream (extract with --site ffn)"
            )
        wanted = None
        if tokens:
            from toolkit.capture.evidence import evidence_sentences

            wanted = evidence_sentences(wh, run, cards.layer, [neuron], max(sentences, 1), bins)
    record = cards_json(cards) if as_json else None
    text = None if as_json else card_text(cards, neuron, render)
    try:
        if logits:
            from toolkit.capture.logit_effects import logit_effects
            from toolkit.capture.token_values import run_model

            effects = logit_effects(run_model(found, model, device, True, device_map), cards.layer, [neuron])
            if as_json:
                record["logit_effects"] = effects.drop("neuron").to_dicts()
            else:
                text += (
                    "\ntokens it writes towards: W_U . W_down[:, n], the direct path before the final norm "
                    "(definition 20)\n" + render(effects.drop("neuron", "token_id"), "table", float_precision=3)
                )
        if tokens:
            from toolkit.capture.evidence import read_tokens
            from toolkit.capture.token_values import run_model
            from toolkit.stats.highlight import evidence_rows, evidence_text

            loaded = run_model(found, model, device, device_map=device_map)
            rows = evidence_rows(wanted, read_tokens(loaded, found, cards.layer, wanted), neuron)
            if as_json:
                record["tokens"] = rows
            else:
                site = "FFN value" if found.site == "ffn" else "hidden unit"
                text += evidence_text(
                    rows,
                    f"token values ({site} {neuron} at layer {cards.layer}, the run's model rerun; pooling "
                    f"{found.pooling}; definition 21)",
                    colour=sys.stdout.isatty(),
                )
    finally:  # whatever could not be added, the rest of the card is printed
        click.echo(to_json(record) if as_json else text, nl=not text)


@click.command()
@run_option("Run whose neurons to explain.")
@layer_option()
@click.option(
    "--sentences",
    type=int,
    default=3,
    show_default=True,
    callback=at_least(1),
    help="Top sentences per language and neuron whose token values are stored.",
)
@click.option("--model", default=None, help="The checkpoint, when not where the run was made from.")
@device_option
@device_map_option
@quiet_option
@pass_ctx
def tokens(
    ctx: Context,
    run: str,
    layer: int | None,
    sentences: int,
    model: str | None,
    device: str,
    device_map: str | None,
    quiet: bool,
) -> None:
    """Store token values for every neuron of a layer (its top sentences per language, the run's model rerun),
    and for a decoder's FFN run the tokens each neuron writes towards, so `neurons report` shows highlighted
    tokens in its explorer without the model."""
    from toolkit.capture.evidence import store_tokens

    s = store_tokens(ctx.db, run, layer, sentences, model, device, device_map, progress=not quiet)
    effects = "; logit effects of every neuron" if s.logit_effects else ""
    click.echo(
        f"stored {s.n_values:,} token values of {s.n_neurons} neurons at layer {s.layer} of run '{s.run}' "
        f"({s.n_sentences} sentences rerun{effects}) in {s.seconds:.1f} s; `neurons report --run {s.run}` shows them"
    )


COMMANDS = [neuron, tokens]
