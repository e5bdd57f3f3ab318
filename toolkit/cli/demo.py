"""`neurons demo`: the main job end to end on the bundled sample, offline, in well under two minutes.

It trains a tokenizer on the sample, builds a tiny XLM-R-architecture classifier, fine-tunes it on the
sample's train split, saves it as an ordinary checkpoint, and extracts every layer of it into
`warehouse/demo.duckdb`, tests its penultimate layer against chance, compares every layer with the model's
untrained initialisation, ablates its top-variance neurons against random controls, and writes the report. The model is tiny and illustrative: its numbers say nothing about XLM-R.
"""

from __future__ import annotations

from pathlib import Path

import click
import polars as pl

from toolkit.capture.datasets import read_dataset, sample_path
from toolkit.capture.evidence import store_tokens
from toolkit.capture.extract import ExtractOptions, extract
from toolkit.capture.finetune import train_classifier
from toolkit.capture.tinymodels import build_model, save_checkpoint, train_tokenizer
from toolkit.causal.ablate import AblateOptions, ablate, rank_in_words
from toolkit.errors import UserError
from toolkit.figures.report import build_report
from toolkit.figures.report_text import extraction_summary
from toolkit.stats.compare import compare
from toolkit.stats.compare import store as compare_store
from toolkit.stats.probe import ProbeOptions, probe
from toolkit.stats.probe import store as probe_store
from toolkit.stats.significance import SignificanceOptions, significance, store
from toolkit.store.warehouse import Warehouse

LABELS = ["neutral", "joy", "love", "anger", "fear", "sadness"]


def extract_shares(db: Path, checkpoint: Path, dataset, run: str) -> None:
    """Every layer's FFN token shares of CHECKPOINT on DATASET as run RUN: what LAPE reads."""
    ffn = extract(
        db,
        str(checkpoint),
        dataset,
        run,
        ExtractOptions(layers="all", site="ffn", pooling="active", batch_size=32),
        replace=True,
        progress=False,
    )
    click.echo(
        f"feed-forward activations (token shares, for LAPE): run '{run}', layers "
        f"{', '.join(map(str, ffn.layers))} x {ffn.hidden_size} neurons"
    )


def top_neuron(db: Path, run: str, layer: int) -> int:
    """The neuron of largest between-label variance of RUN's LAYER."""
    with Warehouse(db, read_only=True) as wh:
        return int(
            wh.scalar(
                "select neuron from between_label_variance where run = ? and layer = ? and rank = 1", [run, layer]
            )
        )


def token_summary(db: Path, run: str, layer: int | None) -> None:
    """Store token values for the report's explorer and name, for the top-variance neuron, the word piece that
    drives it most in each language's most activating sentence."""
    stored = store_tokens(db, run, layer)
    with Warehouse(db, read_only=True) as wh:
        neuron = top_neuron(db, run, stored.layer)
        peaks = wh.sql(
            """select e.language, e.token from token_evidence e
               join top_sentences t using (run, layer, neuron, sentence_id)
               where e.run = ? and e.layer = ? and e.neuron = ? and e.is_max and t.rank = 1 order by e.language""",
            [run, stored.layer, neuron],
        )
    click.echo(
        f"tokens: {stored.n_values:,} token values stored for the explorer ({stored.n_sentences} sentences rerun, "
        f"{stored.seconds:.1f} s); neuron {neuron}'s largest token in each language's top sentence: "
        + ", ".join(f"{lang} {tok!r}" for lang, tok in peaks.iter_rows())
    )


def run_demo(out: Path, epochs: int = 30, seed: int = 0) -> Path:
    """Build, train and extract the demo model; returns the warehouse path."""
    out.mkdir(parents=True, exist_ok=True)
    data = sample_path()
    everything = read_dataset(data, id_column="id", split_column="split")
    train = everything.frame.filter(everything.frame["split"] == "train")
    click.echo(f"sample: {data} ({everything.n_sentences} sentences, {train.height} for training)", err=True)

    tokenizer = train_tokenizer(everything.frame["text"].to_list(), "xlm-roberta", vocab_size=2000)
    model = build_model("xlm-roberta", tokenizer, LABELS, seed=seed, hidden=64, layers=4, heads=4)
    initial = save_checkpoint(model, tokenizer, out / "demo-init")  # before training: what the model started from
    result = train_classifier(
        model,
        tokenizer,
        train["text"].to_list(),
        train["label"].to_list(),
        epochs=epochs,
        lr=1e-3,
        batch_size=16,
        seed=seed,
    )
    checkpoint = save_checkpoint(model, tokenizer, out / "demo-model")
    click.echo(
        f"tiny classifier trained: loss {result.losses[0]:.2f} -> {result.losses[-1]:.2f}, "
        f"train accuracy {result.train_accuracy:.2f}; saved to {checkpoint}",
        err=True,
    )

    db = out / "demo.duckdb"
    summary = extract(
        db, str(checkpoint), everything, "demo", ExtractOptions(layers="all", batch_size=32), replace=True
    )
    click.echo(extraction_summary(summary))
    with Warehouse(db) as wh:
        tested = significance(wh, "demo", options=SignificanceOptions(seed=seed))
        store(wh, tested)
        counts = wh.sensitive_counts("demo", tested.layer)
    click.echo(
        f"significance: 1000 permutations, 1000 bootstraps in {tested.seconds:.1f} s; of "
        f"{counts['n_neurons']} neurons at layer {tested.layer}, {counts['q_significant']} have BH q < 0.05 "
        f"and {counts['sensitive']} also a pooled omega squared >= 0.01 (label-sensitive)"
    )
    with Warehouse(db) as wh:
        probed = probe(wh, "demo", tested.layer, ProbeOptions(top=(8,), controls=3, seed=seed))
        probe_store(wh, probed)
    best = probed.scores.filter(pl.col("train_language") == "all")
    click.echo(
        f"probe: a linear probe on layer {tested.layer}'s z-scores reads the label from held-out sentences with "
        f"accuracy {best['accuracy'].mean():.2f} (control task {best['control_accuracy'].mean():.2f}); "
        f"{probed.seconds:.1f} s"
    )
    extract(db, str(initial), everything, "demo-init", ExtractOptions(layers="all"), replace=True, progress=False)
    with Warehouse(db) as wh:
        compared = compare(wh, "demo", "demo-init")
        compare_store(wh, compared)
    same = compared.cka.filter(pl.col("layer_a") == pl.col("layer_b")).sort("layer_a")
    per_layer = ", ".join(
        f"{r['layer_a']}: {'n/a' if r['cka_debiased'] is None else format(r['cka_debiased'], '.2f')}"
        for r in same.iter_rows(named=True)
    )
    click.echo(
        f"compare: debiased CKA of each layer with the untrained initialisation's (run 'demo-init'): {per_layer}"
    )
    extract_shares(db, checkpoint, everything, "demo-ffn")
    test_split = read_dataset(data, id_column="id", split_column="split", splits=["test"])
    options = AblateOptions(tested.layer, top_variance=8, controls=10, seed=seed)
    ablation = ablate(db, str(checkpoint), test_split, "demo", options, progress=False)
    drop = ablation.summary["delta_macro_f1"].mean()
    click.echo(
        f"ablation {ablation.ablation_id}: the 8 top-variance neurons of layer {tested.layer} zeroed on the test "
        f"split: mean change in macro-F1 {drop:+.3f} (random sets of 8: "
        f"{ablation.summary['control_mean_delta_macro_f1'].mean():+.3f}); {rank_in_words(ablation.summary)}"
    )
    token_summary(db, "demo", tested.layer)
    report = build_report(db, "demo", out / "demo-report")
    click.echo(f"""
report: {report.resolve()}
  (open it in a browser: charts, tables and definitions, all offline; PNG/SVG/CSV/LaTeX beside it)""")
    click.echo(f"""
This model is tiny (4 layers x 64 neurons, trained for seconds) and only illustrates the workflow.
Next, query the warehouse (`source .venv/bin/activate` puts `neurons` on your PATH):
  neurons --db {db} runs
  neurons --db {db} analyze --run demo
  neurons --db {db} compare demo demo-init
  neurons --db {db} neuron {top_neuron(db, "demo", tested.layer)} --run demo --tokens
  neurons --db {db} query "select * from evaluation"
  neurons --db {db} query "select * from ablation_summary"
  neurons --db {db} query "select language, label, count(*) as n from sentences group by all order by all"
  neurons --db {db} query "select layer, neuron, avg(value) from activations_long where run = 'demo' group by all limit 10"
The same on a real fine-tuned checkpoint (a directory saved with save_pretrained), e.g. XLM-R base
fine-tuned on emotion data, at the paper's layer 11:
  neurons extract path/to/xlmr-emotion data.csv --run xlmr-l11 --layers 11 --split dev,test""")
    return db


def run_decoder_demo(out: Path, epochs: int = 30, seed: int = 0) -> Path:
    """The LAPE study end to end on a decoder: a tiny Llama-architecture causal LM trained for EPOCHS epochs on
    the sample's five scripts, its FFN token shares, LAPE's language-specific neurons, the deactivation test on
    the test split, and the report. Returns the warehouse path."""
    from toolkit.capture.finetune import train_language_model
    from toolkit.causal.deactivate import DeactivateOptions, deactivate, lape_sets

    out.mkdir(parents=True, exist_ok=True)
    data = sample_path()
    everything = read_dataset(data, id_column="id", split_column="split")
    train = everything.frame.filter(everything.frame["split"] == "train")["text"].to_list()
    tokenizer = train_tokenizer(everything.frame["text"].to_list(), "llama", vocab_size=2000)
    model = build_model("llama", tokenizer, None, seed=seed, hidden=64, layers=4, heads=4)
    losses = train_language_model(model, tokenizer, train, epochs=epochs, seed=seed)
    checkpoint = save_checkpoint(model, tokenizer, out / "demo-decoder")
    click.echo(
        f"tiny Llama-architecture LM trained for {len(losses)} epochs on {len(train)} sentences: next-token loss "
        f"{losses[0]:.2f} -> {losses[-1]:.2f}; saved to {checkpoint}",
        err=True,
    )
    db = out / "demo.duckdb"
    extract_shares(db, checkpoint, everything, "decoder-ffn")
    test_split = read_dataset(data, id_column="id", split_column="split", splits=["test"])
    options = DeactivateOptions(top_rate=0.05, controls=3, seed=seed)  # 5 % of a tiny model's 512 FFN neurons
    with Warehouse(db, read_only=True) as wh:
        try:
            lape_sets(wh, "decoder-ffn", options)
        except UserError:  # the demo has no --top-rate to raise: what helps is training
            trained = f"{epochs} epoch{'s' * (epochs != 1)}"
            raise UserError(
                f"after {trained} the tiny LM's FFN does not yet tell its languages apart: LAPE finds no "
                "language-specific neurons at top rate 0.05; train it longer (--epochs 30, the default, finds them)"
            ) from None
    result = deactivate(db, str(checkpoint), test_split, "decoder-ffn", options, progress=False)
    m = result.matrix
    own = m.filter(pl.col("deactivated_language") == pl.col("evaluated_language")).sort("evaluated_language")
    held_out = m.group_by("evaluated_language").agg(pl.col("baseline_nll").first()).sort("evaluated_language")
    click.echo("held-out next-token NLL per language: " + ", ".join(f"{k} {v:.2f}" for k, v in held_out.iter_rows()))
    per_language = ", ".join(  # per language: one language must not carry an average
        f"{k} {d:+.3f} (random {c:+.3f})"
        for k, d, c in own.select("evaluated_language", "delta", "control_delta").iter_rows()
    )
    click.echo(
        f"LAPE deactivation {result.deactivation_id} (top_rate 0.05) on the test split, change in each language's "
        f"NLL when its own neurons are zeroed: {per_language}; every cell in view deactivation_matrix"
    )
    token_summary(db, "decoder-ffn", None)
    report = build_report(db, "decoder-ffn", out / "demo-decoder-report")
    click.echo(f"""
report: {report.resolve()}
This model is tiny and trained for seconds: it illustrates the workflow, not what LLMs do. The same on a real
causal LM (a directory saved with save_pretrained) and a few thousand sentences per language:
  neurons extract path/to/llama data.csv --run llama-ffn --site ffn --pooling active --layers all
  neurons ablate path/to/llama data.csv --run llama-ffn --lape
  neurons report --run llama-ffn""")
    return db
