"""Commands that compute the study's findings from a run: analyze, significance, probe, compare."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import polars as pl

from toolkit.cli.base import (
    SEED,
    Context,
    abs_option,
    at_least,
    comma_list,
    default,
    effect_size,
    finite,
    json_option,
    layer_option,
    pass_ctx,
    probability,
    quiet_option,
    run_option,
    threshold_option,
)
from toolkit.errors import UserError
from toolkit.stats.options import ProbeOptions, SignificanceOptions


def progress_bar(desc: str, unit: str, quiet: bool, total: int | None = None):
    """A progress bar on stderr (none with --quiet)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=quiet, file=sys.stderr)


@click.command()
@run_option("Run to analyse.")
@layer_option()
@click.option(
    "--sweep", is_flag=True, help="The layer sweep: one row per stored layer instead of one layer's findings."
)
@click.option(
    "--layers",
    "layers_alias",
    type=click.Choice(["all"]),
    default=None,
    hidden=True,
    help="Deprecated spelling of --sweep.",
)
@threshold_option()
@abs_option("Classify on |mean z| instead of mean z.")
@click.option(
    "--top",
    type=int,
    default=10,
    show_default=True,
    callback=at_least(1),
    help="How many top-variance neurons to list.",
)
@json_option()
@pass_ctx
def analyze(
    ctx: Context,
    run: str,
    layer: int | None,
    sweep: bool,
    layers_alias: str | None,
    threshold: float,
    absolute: bool,
    top: int,
    as_json: bool,
) -> None:
    """The paper's findings for one run and layer: top-variance neurons, language-pair consistency,
    neuron classes per label and monolingual neurons per language. With --sweep, the layer sweep."""
    from toolkit.stats.analysis import EVALUATION_COLUMNS, caveats, criteria_headline, layer_sweep
    from toolkit.stats.analysis import analyze as run_analyze
    from toolkit.store.query import render, to_json
    from toolkit.store.warehouse import Warehouse

    with Warehouse(ctx.db, read_only=True) as wh:
        if layers_alias:
            click.echo("neurons: note: `analyze --layers all` is now `analyze --sweep`", err=True)
        if sweep or layers_alias:
            table = layer_sweep(wh, run, threshold, absolute)
            click.echo(render(table, "json" if as_json else "table", float_precision=3), nl=False)
            return
        f = run_analyze(wh, run, layer, threshold, absolute, top)
        notes = caveats(wh, f.run, f.layer, threshold, absolute)
        agreement = criteria_headline(wh, f.run, f.layer)
        accuracy = wh.sql(
            f"select {EVALUATION_COLUMNS} from evaluation where run = ? order by language",
            [f.run],
        )
    if as_json:
        click.echo(
            to_json(
                {**f.as_dict(), "evaluation": accuracy.to_dicts(), "caveats": notes, "agreement": agreement.to_dicts()}
            )
        )
        return
    rule = "|P|" if absolute else "P"
    sections = [
        (
            f"Top {top} neurons by between-label variance (Section 2.3"
            + ("; length_share and length_r: definition 25)" if "length_share" in f.top_variance.columns else ")"),
            f.top_variance,
        ),
        (
            "Cross-lingual consistency per language pair, mean over labels (Section 3.2"
            + (
                "; at equal length: definition 25)"
                if "mean_spearman_at_equal_length" in f.language_pairs.columns
                else ")"
            ),
            f.language_pairs,
        ),
        (f"Neuron classes per label, share of the layer's neurons ({rule} > {threshold}; Section 3.3)", f.class_shares),
        (f"Monolingual neurons per language ({rule} > {threshold}; Section 4)", f.monolingual),
    ]
    if agreement.height:
        sections.append(
            (
                "Agreement of neuron criteria: Jaccard of their top-10 and top-50 sets, Spearman of their "
                "rankings (view criteria_agreement; probe after `neurons probe`)",
                agreement,
            )
        )
    if accuracy.height:
        sections.insert(
            0,
            (
                "Model accuracy per language, each metric against its own chance (accuracy: 95 % binomial bound "
                "of guessing; macro-F1: permutation null, p; at_chance: macro-F1 not above chance)",
                accuracy,
            ),
        )
    click.echo(f"run '{f.run}', layer {f.layer}")
    for note in notes:
        click.echo(f"note: {note}")
    for title, df in sections:
        click.echo(f"\n{title}\n" + render(df, "table", float_precision=3), nl=False)


@click.command()
@run_option("Run to test.")
@layer_option()
@click.option(
    "--permutations",
    type=int,
    default=default(SignificanceOptions, "permutations"),
    show_default=True,
    help="Label permutations for the nulls.",
)
@click.option(
    "--bootstraps",
    type=int,
    default=default(SignificanceOptions, "bootstraps"),
    show_default=True,
    help="Bootstrap resamples for the intervals.",
)
@click.option(
    "--seed",
    type=SEED,
    default=default(SignificanceOptions, "seed"),
    show_default=True,
    help="Random seed (same seed, same results).",
)
@threshold_option("Threshold of the neuron classes.")
@abs_option()
@click.option(
    "--alpha",
    type=float,
    default=default(SignificanceOptions, "alpha"),
    show_default=True,
    callback=probability,
    help="q-value cut for label-sensitive neurons.",
)
@click.option(
    "--min-effect",
    type=float,
    default=default(SignificanceOptions, "min_effect"),
    show_default=True,
    callback=effect_size,
    help="Omega squared a label-sensitive neuron needs besides q < alpha (0.01: a small effect; about 0 under noise).",
)
@json_option()
@quiet_option
@pass_ctx
def significance(ctx: Context, run: str, layer: int | None, as_json: bool, quiet: bool, **o) -> None:
    """Test the findings against chance: permutation nulls of the class counts and of each neuron's
    between-label variance (with Benjamini-Hochberg q-values), bootstrap intervals of Spearman's rho,
    and ANOVA across labels. Results are stored in the warehouse (views class_significance,
    neuron_significance, correlation_intervals, anova_significance, sensitive_neurons)."""
    from toolkit.stats.analysis import carried_by
    from toolkit.stats.significance import significance as run_significance
    from toolkit.stats.significance import store
    from toolkit.store.query import render, to_json
    from toolkit.store.warehouse import read_then_write

    options = SignificanceOptions(**o)

    def compute(wh):
        wh.run(run).per_sentence("significance")
        with progress_bar("significance", "resample", quiet, options.permutations + options.bootstraps) as bar:
            return run_significance(wh, run, layer, options, progress=bar.update)

    def keep(wh, result):
        store(wh, result)
        per_language = wh.language_sensitive_counts(result.run, result.layer)
        return {
            **wh.sensitive_counts(result.run, result.layer),
            "by_language": carried_by(per_language),
            "per_language": per_language.to_dicts(),
            "pairs": wh.sql(
                "select language_a, language_b, spearman, corrected, low, high, bias, min_cell "
                "from correlation_intervals where run = ? and layer = ? and label is null order by all",
                [result.run, result.layer],
            ),
        }

    result, counts = read_then_write(ctx.db, compute, keep)
    if as_json:
        click.echo(
            to_json(
                {
                    "run": result.run,
                    "layer": result.layer,
                    **result.settings,
                    "seconds": result.seconds,
                    "q_significant_neurons": counts["q_significant"],
                    "sensitive_neurons": counts["sensitive"],
                    "sensitive_per_language": counts["per_language"],
                    "counts": result.counts.to_dicts(),
                    "correlation": counts["pairs"].to_dicts(),
                }
            )
        )
        return
    permutations, alpha = options.permutations, options.alpha
    click.echo(
        f"run '{result.run}', layer {result.layer}: {permutations} permutations, {options.bootstraps} bootstraps, "
        f"seed {options.seed} ({result.seconds:.1f} s)"
    )
    click.echo(
        f"\nLabel-sensitive neurons (between-label variance) of {counts['n_neurons']}: "
        f"{counts['q_significant']} with BH q < {alpha}; {counts['sensitive']} with q < {alpha} and pooled "
        f"omega squared >= {options.min_effect} (view sensitive_neurons). The smallest p-value {permutations} "
        f"permutations can give is {1 / (permutations + 1):.4f}.\nPer language (each language's ANOVA, BH over "
        f"its neurons, omega squared >= {options.min_effect}; view language_sensitivity): {counts['by_language']}."
    )
    click.echo(
        "\nClass counts against the permutation null (labels shuffled within language)\n"
        + render(result.counts, "table", float_precision=3),
        nl=False,
    )
    click.echo(
        "\nMean Spearman per language pair with basic bootstrap 95 % intervals (spearman: the estimate, attenuated "
        "by noise; corrected = spearman - bias, the bias-corrected estimate the interval is built around; bias = "
        "bootstrap mean - estimate; min_cell = smallest cell, coverage is nominal from about 20 sentences)\n"
        + render(counts["pairs"], "table", float_precision=3),
        nl=False,
    )


@click.command()
@run_option("Run to probe.")
@layer_option()
@click.option("--train-languages", default=None, help="Train on these languages, comma-separated (default: all).")
@click.option("--test-languages", default=None, help="Score on these languages, comma-separated (default: all).")
@click.option(
    "--l1",
    type=float,
    default=default(ProbeOptions, "l1"),
    show_default=True,
    callback=finite,
    help="L1 penalty (elastic net).",
)
@click.option(
    "--l2",
    type=float,
    default=default(ProbeOptions, "l2"),
    show_default=True,
    callback=finite,
    help="L2 penalty (elastic net).",
)
@click.option(
    "--top",
    default=",".join(map(str, default(ProbeOptions, "top"))),
    show_default=True,
    help="k values: probes on the top-k neurons only.",
)
@click.option(
    "--controls",
    type=int,
    default=default(ProbeOptions, "controls"),
    show_default=True,
    callback=at_least(0),
    help="Random k-sets per k for the top-k comparison.",
)
@click.option("--seed", type=SEED, default=default(ProbeOptions, "seed"), show_default=True)
@json_option()
@quiet_option
@pass_ctx
def probe(
    ctx: Context,
    run: str,
    layer: int | None,
    train_languages: str | None,
    test_languages: str | None,
    top: str,
    as_json: bool,
    quiet: bool,
    **o,
) -> None:
    """Linear probes (elastic-net logistic regression on the layer's z-scores) predicting the label: accuracy and
    macro-F1 per train x test language with a control task's selectivity, neurons ranked by weight mass, and
    probes on the top-k neurons against random k-sets. Stored in the warehouse (views probe_scores,
    probe_rankings, probe_topk, criteria_agreement)."""
    from toolkit.stats.probe import probe as run_probe
    from toolkit.stats.probe import store
    from toolkit.store.query import render, to_json
    from toolkit.store.warehouse import Warehouse, read_then_write

    try:
        ks = tuple(int(x) for x in top.split(",") if x.strip())
    except ValueError:
        raise UserError(f"--top {top!r}: give comma-separated numbers, e.g. 10,50,100") from None
    options = ProbeOptions(comma_list(train_languages), comma_list(test_languages), top=ks, **o)

    def compute(wh):
        wh.run(run).per_sentence("probe")
        with progress_bar("probe", "fit", quiet) as bar:
            return run_probe(wh, run, layer, options, progress=bar.update)

    result, probe_id = read_then_write(ctx.db, compute, store)
    with Warehouse(ctx.db, read_only=True) as wh:  # as the views define them (selectivity, p-value, informative)
        scores = wh.sql(
            "select * exclude (run, layer, probe_id) from probe_scores where probe_id = ? "
            "order by train_language, test_language",
            [probe_id],
        )
        topk = wh.sql(
            "select * exclude (run, layer, probe_id) from probe_topk where probe_id = ? order by k", [probe_id]
        )
    if as_json:
        click.echo(
            to_json(
                {
                    "probe_id": probe_id,
                    "run": result.run,
                    "layer": result.layer,
                    "scores": scores.to_dicts(),
                    "topk": topk.to_dicts(),
                }
            )
        )
        return
    click.echo(f"probe {probe_id}: run '{result.run}', layer {result.layer} ({result.seconds:.1f} s)")
    click.echo(
        "\nAccuracy and macro-F1 per train x test language (held-out sentences; selectivity = accuracy - "
        "control task; majority = always the most frequent training label)\n"
        + render(scores, "table", float_precision=3),
        nl=False,
    )
    if topk.height:
        click.echo(
            "\nProbes on the top-k neurons (by weight mass) against random k-sets (p_value: share of random sets "
            "scoring at least as well)\n"
            + render(
                topk.drop("full_accuracy", "majority_accuracy", "n_test", "informative"), "table", float_precision=3
            ),
            nl=False,
        )
        click.echo(probe_note(topk.row(0, named=True), len(result.weights.filter(pl.col("train_language") == "all"))))


def probe_note(row: dict, n_neurons: int) -> str:
    """One sentence on whether the all-language probe learnt anything, and so whether its ranking means anything."""
    full, majority = row["full_accuracy"], row["majority_accuracy"]
    if row["informative"]:
        return (
            f"The probe on all {n_neurons} neurons scores {full:.3f} on these held-out sentences, above always "
            f"answering the most frequent label ({majority:.3f}) by more than chance: its ranking is evidence."
        )
    return (
        f"Note: the probe on all {n_neurons} neurons scores {full:.3f} on these held-out sentences, not above always "
        f"answering the most frequent label ({majority:.3f}) by more than chance: it may have fit noise, so its weight "
        "ranking may be noise, and its top-k sets score like random ones (above or below them by chance). Raise "
        "--l1/--l2, give it more sentences, or read the other criteria."
    )


@click.command()
@click.argument("run_a")
@click.argument("run_b")
@threshold_option("Activity threshold on mean z for the neuron classes compared.")
@abs_option("Classify on |mean z|.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also draw the CKA heatmaps into this file (.png, .svg, .pdf or .html).",
)
@json_option()
@quiet_option
@pass_ctx
def compare(
    ctx: Context, run_a: str, run_b: str, threshold: float, absolute: bool, out: Path | None, as_json: bool, quiet: bool
) -> None:
    """Compare two runs on the sentences both hold (matched by text, else by the data's id): linear CKA, plain
    and debiased, between every pair of their layers; and for two runs of one architecture (base against
    fine-tuned), how each neuron changed: the correlation of its label profiles, its variance rank, its classes.
    Stored (view run_comparison, macro neuron_changes)."""
    from toolkit.stats.compare import compare as run_compare
    from toolkit.stats.compare import shared_sentences, store
    from toolkit.store.query import render, to_json
    from toolkit.store.warehouse import Warehouse, read_then_write

    if out is not None:
        from toolkit.figures.charts import FORMATS

        if out.suffix.lower() not in FORMATS:
            raise UserError(f"--out {out}: use one of {', '.join(FORMATS)}")

    def compute(wh):
        layers = wh.run(run_a).per_sentence("compare").layers
        wh.run(run_b).per_sentence("compare")
        shared = shared_sentences(wh, run_a, run_b)  # refusals before the progress bar
        with progress_bar("compare", "layer", quiet, len(layers)) as bar:
            return run_compare(wh, run_a, run_b, progress=bar.update, shared=shared)

    result, comparison_id = read_then_write(ctx.db, compute, store)
    with Warehouse(ctx.db, read_only=True) as wh:
        changes = wh.sql(
            "select * from neuron_change_summary(?, ?, threshold := ?, absolute := ?) order by layer",
            [run_a, run_b, threshold, absolute],
        )
        if out is not None:
            from toolkit.figures.charts import save
            from toolkit.figures.comparison import cka_heatmaps

            save(cka_heatmaps(wh, run_a, run_b), out)
    if as_json:
        record = {"comparison_id": comparison_id, "run_a": run_a, "run_b": run_b, "matched_by": result.matched_by}
        record |= {"n_shared": result.n_shared, "cka": result.cka.to_dicts(), "neurons": changes.to_dicts()}
        click.echo(to_json(record))
        return
    click.echo(
        f"comparison {comparison_id}: '{run_a}' against '{run_b}' on {result.n_shared} shared sentences (matched "
        f"by {result.matched_by}; {result.seconds:.1f} s)"
    )
    for column, what in (
        ("cka_debiased", "debiased (about 0 for unrelated representations)"),
        ("cka", "plain (biased upwards when neurons are many for the sentences)"),
    ):
        wide = result.cka.pivot(on="layer_b", index="layer_a", values=column).rename(
            lambda c: f"{run_b} {c}" if c != "layer_a" else f"{run_a} layer"
        )
        click.echo(f"\nLinear CKA, {what}\n" + render(wide, "table", float_precision=3), nl=False)
    if changes.height:
        click.echo(
            "\nNeurons of the same layer and index in both runs: median correlation of their label profiles, "
            "neurons whose class changed for a label, and neurons whose variance rank moved by over 10 % of the "
            "layer (per neuron: select * from neuron_changes('A', 'B'))\n"
            + render(changes, "table", float_precision=3),
            nl=False,
        )
    if out is not None:
        click.echo(f"wrote {out}")


COMMANDS = [analyze, significance, probe, compare]
