"""The paper's findings on one screen, read from the SQL views in `sql/views/010_statistics.sql`.

Nothing is computed here: the numbers come from the views (through `Warehouse` accessors), which read
the per-run `moments` cache that `Warehouse.materialize` fills when a run completes.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from toolkit.defaults import CLASSES, THRESHOLD, UNKNOWN_LIMIT
from toolkit.store.runs import default_layer  # noqa: F401 - re-exported for library callers
from toolkit.store.warehouse import Warehouse, reads


@dataclass
class RunLayer:
    run: str
    layer: int


EVALUATION_COLUMNS = (
    "language, n_sentences, accuracy, accuracy_chance_high, accuracy_at_chance, macro_f1, macro_f1_null_high, "
    "macro_f1_p, at_chance"
)
"""The columns of view `evaluation` that `analyze` and the report show: each metric beside its own chance test."""


def carried_by(counts: pl.DataFrame) -> str:
    """'en 283, nl 3, ar 0' from per-language sensitive counts (`Warehouse.language_sensitive_counts`): the
    languages that carry a pooled count."""
    return ", ".join(f"{r['language']} {r['n_sensitive']}" for r in counts.iter_rows(named=True)) or "none tested"


def resolve(wh: Warehouse, run: str, layer: int | None) -> RunLayer:
    """Check RUN is complete and LAYER is stored in it (default: the penultimate stored layer)."""
    return RunLayer(run, wh.run(run).per_sentence("this statistic").layer(layer))


def top_variance_neurons(wh: Warehouse, run: str, layer: int, k: int) -> pl.DataFrame:
    """The K neurons of highest between-label variance (definition 3): rank, neuron, variance, best first; with the
    share of it that is sentence length and their correlation with it (definition 25) where the run has token
    counts."""
    top = wh.sql(
        "select rank, neuron, variance from between_label_variance where run = ? and layer = ? and rank <= ? "
        "order by rank",
        [run, layer, k],
    )
    length = wh.held("length_confound", run, layer, "neuron")
    if not length.height:
        return top
    return top.join(length.select("neuron", "length_share", "length_r"), on="neuron", how="left", maintain_order="left")


def language_pairs(wh: Warehouse, run: str, layer: int) -> pl.DataFrame:
    """Definition 5's summary per language pair (view `language_pair_summary`), with the mean Spearman at equal
    sentence length (definition 25, `length_pair_summary`) where the run has token counts."""
    pairs = wh.language_pair_summary(run, layer).drop("run", "layer")
    at_equal_length = wh.held("length_pair_summary", run, layer, "language_a, language_b")
    if not at_equal_length.height:
        return pairs
    at_equal_length = at_equal_length.select("language_a", "language_b", "mean_spearman_at_equal_length")
    return pairs.join(at_equal_length, on=["language_a", "language_b"], how="left", maintain_order="left")


@dataclass
class Findings:
    """The paper's findings for one run and layer, each a small DataFrame."""

    run: str
    layer: int
    threshold: float
    absolute: bool
    top_variance: pl.DataFrame  # between_label_variance, best first
    language_pairs: pl.DataFrame  # language_pair_summary
    class_shares: pl.DataFrame  # one row per label, a column per class with its share
    monolingual: pl.DataFrame  # monolingual_counts

    def as_dict(self) -> dict:
        return {
            "run": self.run,
            "layer": self.layer,
            "threshold": self.threshold,
            "absolute": self.absolute,
            **{
                k: getattr(self, k).to_dicts()
                for k in ("top_variance", "language_pairs", "class_shares", "monolingual")
            },
        }


@reads
def analyze(
    wh: Warehouse,
    run: str,
    layer: int | None = None,
    threshold: float = THRESHOLD,
    absolute: bool = False,
    top: int = 10,
) -> Findings:
    """Top between-label-variance neurons, language-pair consistency, class shares and monolingual counts."""
    rl = resolve(wh, run, layer)
    top_variance = top_variance_neurons(wh, rl.run, rl.layer, top)
    pairs = language_pairs(wh, rl.run, rl.layer)
    counts = wh.class_counts(rl.run, rl.layer, threshold, absolute)
    shares = (
        counts.pivot(on="neuron_class", index="label", values="share").select("label", *CLASSES).sort("label")
        if counts.height
        else pl.DataFrame(schema={"label": pl.String, **{c: pl.Float64 for c in CLASSES}})
    )
    mono = wh.monolingual_counts(rl.run, rl.layer, threshold, absolute).drop("run", "layer")
    return Findings(rl.run, rl.layer, threshold, absolute, top_variance, pairs, shares, mono)


@reads
def criteria_headline(wh: Warehouse, run: str, layer: int) -> pl.DataFrame:
    """Per pair of neuron criteria: Jaccard of their top-10 and top-50 sets and Spearman of their rankings, and
    whether the pair agrees by construction (view `criteria_agreement`; the probe joins in after `neurons probe`)."""
    return wh.sql(
        """select criterion_a, criterion_b, max(jaccard) filter (where k = 10) as jaccard_top10,
                  max(jaccard) filter (where k = 50) as jaccard_top50,
                  max(spearman) filter (where k is null) as rank_spearman,
                  bool_or(by_construction) as by_construction
           from criteria_agreement where run = ? and layer = ? group by criterion_a, criterion_b order by all""",
        [run, layer],
    )


@reads
def layer_sweep(wh: Warehouse, run: str, threshold: float = THRESHOLD, absolute: bool = False) -> pl.DataFrame:
    """One row per stored layer (macro `summarize_layers`), with each language pair's mean Spearman as a column."""
    wh.run_id(run)
    summary = wh.sql(
        "select * exclude (run) from summarize_layers(?, absolute := ?) where run = ? order by layer",
        [threshold, absolute, run],
    )
    pairs = wh.sql(
        "select layer, language_a || '-' || language_b as pair, mean_spearman from language_pair_summary "
        "where run = ? order by layer, pair",
        [run],
    )
    if pairs.height:
        wide = pairs.pivot(on="pair", index="layer", values="mean_spearman")
        summary = summary.join(
            wide.rename({c: f"rho_{c}" for c in wide.columns if c != "layer"}), on="layer", how="left"
        )
    return summary


@reads
def caveats(wh: Warehouse, run: str, layer: int, threshold: float = THRESHOLD, absolute: bool = False) -> list[str]:
    """What the run's figures can and cannot claim, in sentences: languages whose model is at chance (view
    `evaluation`), languages the tokenizer cannot spell or serves poorly (`tokenizer_fitness`), label-sensitive
    neurons by q alone and by q plus effect size (`neuron_significance`), languages whose classes at THRESHOLD are
    mostly chance (`profile_chance`), top neurons whose label differences are mostly sentence length
    (`length_confound`) and language pairs whose agreement is partly length (`length_pair_summary`), ablations
    run where the model is at chance (`ablation_summary`), a probe that learnt nothing (`probe_topk`), and label x
    pair correlations too noisy to interpret (`crosslingual_ceiling`)."""
    notes = []
    chance = wh.sql(
        "select language, macro_f1, macro_f1_null_high, macro_f1_p from evaluation where run = ? and at_chance "
        "order by language",
        [run],
    )
    for language, f1, high, p in chance.iter_rows():
        notes.append(
            f"The model is at chance in {language}: macro-F1 {f1:.3f} does not beat predictions that ignore the "
            f"input (permutation null: 95 % of it up to {high:.3f}, p = {p:.3f}), so the {language} neurons "
            "describe a model that has not learnt the task there; read its profiles, correlations and classes "
            "with that in mind."
        )
    fitness = wh.tokenizer_fitness(run)
    unreadable = fitness.filter(pl.col("unknown_share") > UNKNOWN_LIMIT).sort("unknown_share", descending=True)
    if unreadable.height:
        each = ", ".join(f"{r['unknown_share']:.1%} of {r['language']}'s" for r in unreadable.iter_rows(named=True))
        notes.append(
            f"The tokenizer cannot spell {', '.join(unreadable['language'])}: the unknown token is {each} tokens, "
            f"above the {UNKNOWN_LIMIT:.0%} extraction allows without --allow-unk (view "
            "tokenizer_fitness). The model read those sentences with holes in them, so their profiles describe "
            "what little it saw."
        )
    poor = fitness.filter("underserved")
    if poor.height:
        best = fitness.filter(pl.col("language") == pl.col("reference_language")).row(0, named=True)
        each = ", ".join(f"{r['language']} {r['fertility_ratio']:.2f}x" for r in poor.iter_rows(named=True))
        notes.append(
            f"The tokenizer serves {', '.join(poor['language'])} poorly: per word they get over {best['limit']:g} "
            f"times the tokens {best['language']} gets ({best['fertility']:.2f} tokens per word; {each}; view "
            "tokenizer_fitness). A model reads such a language in small pieces, so a neuron that separates its labels "
            "may be reading spelling, and a difference from the other languages may come from the tokenizer."
        )
    if wh.scalar("select count(*) from neuron_significance where run = ? and layer = ?", [run, layer]):
        c = wh.sensitive_counts(run, layer)
        setting = wh.sql(
            "select alpha, min_effect from neuron_significance where run = ? and layer = ? limit 1", [run, layer]
        ).row(0)
        by_language = carried_by(wh.language_sensitive_counts(run, layer))
        notes.append(
            f"Label sensitivity: {c['q_significant']} of {c['n_neurons']} neurons have BH q < {setting[0]}; "
            f"{c['sensitive']} also reach a pooled {c['effect'].replace('_', ' ')} of {setting[1]} (the "
            f"label-sensitive neurons). Per language (each language's own test): {by_language}. With many "
            "sentences a tiny effect is significant, so q alone says nothing about size."
        )
    for note in (
        chance_note(wh, run, layer, threshold, absolute),
        length_note(wh, run, layer),
        length_pairs_note(wh, run, layer),
    ):
        if note:
            notes.append(note)
    constant, n = wh.sql(
        "select count(*) filter (where constant), count(*) from between_label_variance where run = ? and layer = ?",
        [run, layer],
    ).row(0)
    if constant:
        what = (
            f"Layer {layer} is constant: every one of its {n} neurons has one value for all the sentences of each "
            "language (an embedding layer's [CLS] vector is), so it says nothing about labels; its neurons are not "
            "ranked, and the layer has no findings to read"
            if constant == n
            else f"{constant} of the {n} neurons are constant in every language and are not ranked"
        )
        notes.append(what + ".")
    if wh.scalar(
        "select count(*) from criteria_agreement where run = ? and layer = ? and by_construction", [run, layer]
    ):
        notes.append(
            "Between-label variance and eta squared rank the neurons identically by construction here (every "
            "language x label cell holds as many sentences), so their agreement is no finding."
        )
    for ablation_id, languages in wh.sql(
        "select ablation_id, string_agg(language, ', ' order by language) from ablation_summary "
        "where run = ? and baseline_at_chance group by ablation_id order by ablation_id",
        [run],
    ).iter_rows():
        notes.append(
            f"Ablation {ablation_id} ran where the model is at chance in {languages}: its accuracy on those sentences "
            "is within the 95 % bound of guessing (view ablation_summary, baseline_at_chance), so no drop can show "
            "there, and the ablation says nothing about the neurons in those languages."
        )
    probe = wh.sql(
        "select full_accuracy, majority_accuracy from probe_topk where run = ? and layer = ? and not informative "
        "limit 1",
        [run, layer],
    )
    if probe.height:
        full, majority = probe.row(0)
        notes.append(
            f"The stored probe does not beat always answering the most frequent label by more than chance ({full:.3f} "
            f"against {majority:.3f} on its held-out sentences): its weight ranking may be noise, so its top-k test "
            "and its agreement with the other criteria say nothing (view probe_topk)."
        )
    ceilings = wh.crosslingual_ceiling(run, layer)
    noisy = int((~ceilings["interpretable"]).sum())
    if noisy:
        notes.append(
            f"{noisy} of {ceilings.height} label x language-pair correlations have a profile with split-half "
            "reliability below 0.3: a low rho there may be noise rather than disagreement between languages "
            "(view crosslingual_ceiling)."
        )
    return notes


def chance_note(wh: Warehouse, run: str, layer: int, threshold: float, absolute: bool) -> str | None:
    """The languages whose profiles pass the class threshold hardly more often than noise would (definition 24,
    view `profile_chance`), with their monolingual counts and, where `neurons significance` tested them at this
    threshold, the permutation test's verdict; None where every language clears chance."""
    chance = wh.sql(
        "select language, n_sentences, min_cell, max_noise_sd, n_profiles, n_past, n_chance "
        "from profile_chance(?, absolute := ?) "
        "where run = ? and layer = ? and mostly_chance order by language",
        [threshold, absolute, run, layer],
    )
    if not chance.height:
        return None
    rule = f"{'|P|' if absolute else 'P'} > {threshold:g}"
    noisiest = chance.sort("max_noise_sd", descending=True).row(0, named=True)
    names = ", ".join(chance["language"])
    counts = ", ".join(
        f"{r['language']} {r['n_past']:,} against {r['n_chance']:,.0f} of {r['n_profiles']:,}"
        for r in chance.iter_rows(named=True)
    )
    mono = wh.monolingual_counts(run, layer, threshold, absolute).join(chance.select("language"), on="language")
    tested = wh.sql(
        "select language, observed, null_mean, p_value from class_significance where run = ? and layer = ? "
        "and label is null and threshold = ? and absolute = ? order by language",
        [run, layer, threshold, absolute],
    ).join(chance.select("language"), on="language")
    note = (
        f"Neuron classes in {names} may be chance: a label profile of few sentences is noisy (with no label effect "
        f"at all, its standard deviation reaches {noisiest['max_noise_sd']:.2f} in {noisiest['language']}'s smallest "
        f"cell, {noisiest['min_cell']} of its {noisiest['n_sentences']} sentences), so many profiles pass {rule} by "
        f"chance alone. Profiles past it, observed against expected by chance: {counts} (view profile_chance). "
    )
    if tested.height:
        verdicts = ", ".join(
            f"{r['language']} {r['observed']} against {r['null_mean']:.0f} expected, p = {r['p_value']:.3f}"
            for r in tested.iter_rows(named=True)
        )
        return note + f"The permutation test of the monolingual counts: {verdicts} (view class_significance)."
    each = ", ".join(f"{r['language']} {r['n_neurons']}" for r in mono.sort("language").iter_rows(named=True))
    command = "neurons significance" + (f" --threshold {threshold:g}" if threshold != THRESHOLD else "")
    return note + (
        f"Their monolingual counts ({each}) say nothing until `{command}{' --abs' * absolute}` tests them against "
        "chance (view class_significance)."
    )


LENGTH_TOP = 10
"""The top-variance neurons whose length share the length note checks (analyze's default --top)."""


def length_note(wh: Warehouse, run: str, layer: int) -> str | None:
    """The top-variance neurons of which half or more of the between-label variance is sentence length (definition
    25, view `length_confound`), with how much the labels differ in length per language; None where none is."""
    driven = (
        wh.held("length_confound", run, layer, "neuron")
        .filter((pl.col("rank") <= LENGTH_TOP) & pl.col("length_driven"))
        .sort("rank")
        .select("neuron", "length_share")
    )
    if not driven.height:
        return None
    lengths = wh.sql(
        "select language, any_value(eta_squared) as eta_squared from label_lengths where run = ? group by language "
        "order by eta_squared desc, language",
        [run],
    )
    each = ", ".join(f"{n} ({share:.0%})" for n, share in driven.iter_rows())
    by_language = ", ".join(f"{language} {eta:.3f}" for language, eta in lengths.iter_rows())
    return (
        f"{driven.height} of the {LENGTH_TOP} top-variance neurons may track sentence length rather than the label: "
        f"once length (log tokens) is regressed out within each language, they lose half or more of their "
        f"between-label variance: {each} of it is length (view length_confound). Labels differ in length (share of "
        f"the variance of log tokens between labels: {by_language}; view label_lengths)."
    )


def length_pairs_note(wh: Warehouse, run: str, layer: int) -> str | None:
    """The language pairs a fifth or more of whose mean Spearman is gone once the profiles are compared at equal
    sentence length (definition 25, view `length_pair_summary`); None where no pair's is."""
    carried = (
        wh.held("length_pair_summary", run, layer, "language_a, language_b")
        .filter("length_carried")
        .sort("mean_spearman", descending=True)
        .select("language_a", "language_b", "mean_spearman", "mean_spearman_at_equal_length")
    )
    if not carried.height:
        return None
    each = ", ".join(f"{a}–{b} {rho:.2f} → {adjusted:.2f}" for a, b, rho, adjusted in carried.iter_rows())
    return (
        f"Part of the cross-lingual agreement is sentence length: at equal length the mean Spearman falls for {each} "
        "(view length_pair_summary). Labels differ in length alike in these languages, so neurons that follow length "
        "agree across them for that reason alone; profile_correlation(at_equal_length := true) gives each label's rho."
    )
