"""The causal command: ablate."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.causal.options import AblateOptions
from toolkit.cli.base import (
    SEED,
    Context,
    data_options,
    default,
    device_option,
    json_option,
    pass_ctx,
    quiet_option,
    run_option,
)


@click.command()
@click.argument("model", required=False)
@click.argument("data", type=click.Path(path_type=Path), required=False)
@run_option("Run whose layer, neurons and means are used.")
@click.option(
    "--layer",
    type=int,
    default=None,
    help="Ablate at hidden_states[LAYER] (the output of block LAYER); not with --lape.",
)
@click.option(
    "--lape",
    is_flag=True,
    help="The LAPE causal test on a decoder: zero each language's language-specific neurons (run: --site ffn "
    "--pooling active) at every position and measure every language's next-token NLL (view deactivation_matrix).",
)
@click.option("--top-rate", type=float, default=0.01, show_default=True, help="--lape: LAPE's top_rate.")
@data_options
@click.option("--neurons", default=None, help="Target neurons, comma-separated.")
@click.option(
    "--query", default=None, help="Read-only SQL returning a neuron column, e.g. polyglot neurons for a label."
)
@click.option("--top-variance", type=int, default=None, help="The K neurons of highest between-label variance.")
@click.option("--mode", type=click.Choice(["zero", "mean"]), default=default(AblateOptions, "mode"), show_default=True)
@click.option(
    "--mean-scope",
    type=click.Choice(["language", "pooled"]),
    default=default(AblateOptions, "mean_scope"),
    show_default=True,
    help="mode mean: each sentence's language mean, or the mean over all the run's sentences.",
)
@click.option(
    "--positions", type=click.Choice(["cls", "all"]), default=default(AblateOptions, "positions"), show_default=True
)
@click.option(
    "--controls",
    type=int,
    default=default(AblateOptions, "controls"),
    show_default=True,
    help="Random control sets of the same size.",
)
@click.option("--seed", type=SEED, default=default(AblateOptions, "seed"), show_default=True)
@click.option("--batch-size", type=int, default=default(AblateOptions, "batch_size"), show_default=True)
@click.option("--max-length", type=int, default=None)
@device_option
@click.option(
    "--data-override",
    is_flag=True,
    help="Accept DATA whose sentences differ from the run's (texts, languages, labels).",
)
@json_option()
@quiet_option
@pass_ctx
def ablate(ctx: Context, model: str | None, data: Path | None, run: str, spec, as_json: bool, quiet: bool, **o) -> None:
    """Ablate a neuron set inside MODEL at one layer, re-predict DATA, and compare per language with the
    unablated model and with random control sets of the same size. MODEL and DATA default to the run's own
    (DATA with the run's columns and splits unless --split/--limit say otherwise). Results: views
    ablation_summary, ablation_scores and ablation_recall."""
    from toolkit.causal.ablate import ablate as run_ablate
    from toolkit.causal.ablate import rank_in_words, run_inputs
    from toolkit.store.query import render, to_json

    lape, top_rate = o.pop("lape"), o.pop("top_rate")
    if lape:
        return _deactivate(ctx, model, data, run, spec, as_json, quiet, top_rate, o)
    if o["layer"] is None:
        raise click.UsageError("--layer is required (or --lape for the LAPE test)")
    options = AblateOptions(**o)
    model, dataset = run_inputs(ctx.db, run, model, data, spec)
    result = run_ablate(ctx.db, model, dataset, run, options, progress=not quiet)
    for w in result.warnings:
        click.echo(f"neurons: warning: {w}", err=True)
    if as_json:
        click.echo(
            to_json(
                {
                    "ablation_id": result.ablation_id,
                    "summary": result.summary.to_dicts(),
                    "recall": result.recall.to_dicts(),
                }
            )
        )
        return
    cols = [
        "language",
        "n_sentences",
        "baseline_macro_f1",
        "target_macro_f1",
        "delta_macro_f1",
        "control_mean_delta_macro_f1",
        "baseline_accuracy",
        "target_accuracy",
        "delta_accuracy",
        "target_rank",
        "n_controls",
        "baseline_at_chance",
    ]
    click.echo(
        f"ablation {result.ablation_id}: macro-F1 and accuracy per language, target set against {options.controls} "
        "random controls (rank 1 = the largest drop in macro-F1)\n"
        + render(result.summary.select(cols), "table", float_precision=3),
        nl=False,
    )
    click.echo(rank_in_words(result.summary))
    worst = (
        result.recall.sort("delta_recall")
        .head(10)
        .select("language", "label", "baseline_recall", "target_recall", "delta_recall", "control_mean_delta_recall")
    )
    click.echo("\nLargest recall drops under the target set\n" + render(worst, "table", float_precision=3), nl=False)


def _deactivate(
    ctx: Context, model, data, run: str, spec, as_json: bool, quiet: bool, top_rate: float, o: dict
) -> None:
    from toolkit.causal.ablate import run_inputs
    from toolkit.causal.deactivate import DeactivateOptions, deactivate
    from toolkit.store.query import render, to_json

    targeted = [k for k in ("layer", "neurons", "query", "top_variance") if o[k] is not None]
    if targeted:
        raise click.UsageError(f"--lape chooses the neurons itself; drop --{targeted[0].replace('_', '-')}")
    keep = ("controls", "seed", "batch_size", "max_length", "device")
    options = DeactivateOptions(top_rate=top_rate, **{k: o[k] for k in keep if o[k] is not None})
    model, dataset = run_inputs(ctx.db, run, model, data, spec)
    result = deactivate(ctx.db, model, dataset, run, options, progress=not quiet)
    if as_json:
        click.echo(to_json({"deactivation_id": result.deactivation_id, "matrix": result.matrix.to_dicts()}))
        return
    cols = ["deactivated_language", "evaluated_language", "n_neurons", "baseline_nll", "nll", "delta", "control_delta"]
    click.echo(
        f"deactivation {result.deactivation_id}: mean next-token NLL per evaluated language with each language's "
        f"LAPE neurons zeroed, against the unablated model and {options.controls} random sets of the same sizes\n"
        + render(result.matrix.select(cols), "table", float_precision=3),
        nl=False,
    )


@click.command()
@click.argument("model", required=False)
@run_option("Run (--site ffn --pooling active) whose LAPE neurons steer.")
@click.option("--language", required=True, help="The language to steer towards (as the run names it, ISO 639-1).")
@click.option(
    "--prompts", type=click.Path(path_type=Path), required=True, help="A UTF-8 text file, one prompt per line."
)
@click.option("--top-rate", type=float, default=0.01, show_default=True, help="LAPE's top_rate.")
@click.option("--zero-others", is_flag=True, help="Also set the other languages' LAPE neurons to 0.")
@click.option("--max-new-tokens", type=int, default=20, show_default=True)
@click.option("--controls", type=int, default=3, show_default=True, help="Random sets of the same size per layer.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@device_option
@json_option()
@quiet_option
@pass_ctx
def steer(ctx: Context, model: str | None, run: str, prompts: Path, as_json: bool, quiet: bool, **o) -> None:
    """Generate from each prompt with the run's LAPE neurons of --language set to their mean activation on that
    language's sentences (MODEL: the run's causal LM), unsteered, and with random sets; identify each output's
    language (lingua) and report the share in the language. Results: views steering_summary, steering_outputs."""
    from toolkit.capture.options import DataSpec
    from toolkit.causal.ablate import run_inputs
    from toolkit.causal.steer import SteerOptions, read_prompts
    from toolkit.causal.steer import steer as run_steer
    from toolkit.store.query import render, to_json

    options = SteerOptions(**o)
    texts = read_prompts(prompts)
    model, dataset = run_inputs(ctx.db, run, model, None, DataSpec())
    result = run_steer(ctx.db, model, dataset, run, texts, options, progress=not quiet)
    if as_json:
        click.echo(to_json({"steer_id": result.steer_id, "summary": result.summary.to_dicts()}))
        return
    click.echo(
        f"steering {result.steer_id}: share of {len(texts)} outputs identified as {options.language}\n"
        + render(result.summary.select("condition", "n_sets", "n_outputs", "share_in_language"), float_precision=3),
        nl=False,
    )


COMMANDS = [ablate, steer]
