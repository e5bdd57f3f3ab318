"""Commands that make runs and checkpoints: extract, load, finetune, demo."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.capture.options import POOLINGS, ExtractOptions, FinetuneOptions
from toolkit.cli.base import (
    SEED,
    Context,
    comma_list,
    data_options,
    default,
    device_map_option,
    device_option,
    out_option,
    pass_ctx,
    quiet_option,
    run_option,
)
from toolkit.errors import UserError

SITE_HELP = "residual: the hidden states; ffn: the feed-forward activations after the nonlinearity (blocks 1..n)."


def site_option(help_text: str, default: str = "residual"):
    return click.option(
        "--site", type=click.Choice(["residual", "ffn"]), default=default, show_default=True, help=help_text
    )


def pooling_option(help_text: str, default: str | None):
    return click.option(
        "--pooling",
        type=click.Choice([p for p in POOLINGS if default or p != "auto"]),  # a load names what it holds
        default=default,
        show_default=bool(default),
        help=help_text,
    )


def allow_unk_option(what: str):
    return click.option(
        "--allow-unk",
        is_flag=True,
        help=f"{what} even when the tokenizer maps over 5 % of a language's tokens to the unknown token.",
    )


@click.command()
@click.argument("model")
@click.argument("data", type=click.Path(path_type=Path))
@run_option("Name of the run to create.")
@data_options
@click.option(
    "--layers",
    default=default(ExtractOptions, "layers"),
    show_default=True,
    help="hidden_states indices: 11 | 6,11 | -2 (penultimate) | all. 0 is the embedding output.",
)
@pooling_option(
    "auto: cls for an encoder, last for a decoder. First token ([CLS]/<s>, encoders), last token (decoders), the "
    "mean or maximum over the sentence's tokens, or (ffn) the share of tokens active (> 0). A decoder's BOS is "
    "left out of mean, max, active and n_tokens.",
    default(ExtractOptions, "pooling"),
)
@site_option(SITE_HELP, default(ExtractOptions, "site"))
@click.option("--batch-size", type=int, default=default(ExtractOptions, "batch_size"), show_default=True)
@click.option("--max-length", type=int, default=None, help="Truncate longer inputs (default: the model's limit).")
@device_option
@device_map_option
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16", "bfloat16"]),
    default=default(ExtractOptions, "dtype"),
    show_default=True,
    help="Model weights' dtype; activations are stored as float32.",
)
@click.option(
    "--no-predictions",
    is_flag=True,
    help="Skip the classification head: no predicted labels, and no compute above the deepest layer.",
)
@click.option(
    "--commit-every",
    type=int,
    default=default(ExtractOptions, "commit_every"),
    show_default=True,
    help="Sentences per committed chunk (what an interruption can lose at most).",
)
@click.option(
    "--aggregate",
    is_flag=True,
    help="With --site ffn on a decoder: store only, per language, layer and neuron, the tokens on which the neuron "
    "fired, and each language's token count (LAPE's counts; for corpora too large to keep per sentence).",
)
@click.option(
    "--window",
    type=int,
    default=None,
    metavar="N",
    help="With --aggregate: pack each language's text into N-token windows, as LAPE did (4096), instead of "
    "running sentences one by one.",
)
@allow_unk_option("Extract")
@click.option("--resume", is_flag=True, help="Continue an interrupted run with the same settings.")
@click.option("--replace", is_flag=True, help="Redo the run from scratch if it exists.")
@click.option(
    "--lake",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Write to the Delta Lake in this folder instead of the warehouse (with --shard; see `neurons lake`).",
)
@click.option(
    "--shard",
    default=None,
    metavar="K/N",
    help="With --lake: extract shard K (0-based) of N; rerunning a committed shard is a no-op.",
)
@quiet_option
@pass_ctx
def extract(ctx: Context, model: str, data: Path, run: str, spec, **o) -> None:
    """Extract pooled activations of MODEL (checkpoint directory or hub id) on DATA into a run.

    DATA is CSV, TSV, JSONL or Parquet with text, language and label columns. With --lake DIR --shard K/N the
    run is one of N shards written to a Delta Lake, for clusters (README, "Beyond one machine").
    """
    from toolkit.capture.datasets import read_dataset
    from toolkit.capture.extract import extract as run_extract
    from toolkit.figures.report_text import extraction_summary

    lake, shard, resume, replace = o["lake"], o["shard"], o["resume"], o["replace"]
    if (lake is None) != (shard is None):
        raise UserError("--lake and --shard go together: --lake DIR --shard K/N (use --shard 0/1 for one process)")
    if lake is not None and (resume or replace):
        raise UserError("a lake shard resumes by itself (rerun the same command); drop --resume/--replace")
    dataset = read_dataset(data, spec)
    options = ExtractOptions(
        layers=o["layers"],
        pooling=o["pooling"],
        site=o["site"],
        batch_size=o["batch_size"],
        max_length=o["max_length"],
        device=o["device"],
        device_map=o["device_map"],
        dtype=o["dtype"],
        predictions=not o["no_predictions"],
        commit_every=o["commit_every"],
        aggregate=o["aggregate"],
        window=o["window"],
    )
    progress, allow_unk = not o["quiet"], o["allow_unk"]
    if lake is not None:
        from toolkit.scale.lake import parse_shard
        from toolkit.scale.shards import extract_shard

        click.echo(extract_shard(lake, model, dataset, run, parse_shard(shard), options, progress, allow_unk).text())
        return
    summary = run_extract(
        ctx.db, model, dataset, run, options, resume=resume, replace=replace, progress=progress, allow_unknown=allow_unk
    )
    click.echo(extraction_summary(summary))


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@run_option("Name of the run to create.")
@click.option("--replace", is_flag=True, help="Replace the run if it exists.")
@site_option("What the values are: hidden states or feed-forward activations.")
@pooling_option("How they were pooled (active: token shares, with an n_tokens column; LAPE reads these).", None)
@click.option(
    "--memory",
    default=None,
    metavar="SIZE",
    help="For a folder or Delta table: DuckDB's memory limit during the import (e.g. 4GB; beyond it, it spills to disk).",
)
@pass_ctx
def load(ctx: Context, file: Path, run: str, replace: bool, site: str, pooling: str | None, memory: str | None) -> None:
    """Import a long-format table of activations made elsewhere: a Parquet, CSV, TSV or JSONL file, or a folder
    of Parquet files or a Delta table (imported one layer at a time, in bounded memory).

    Columns: sentence_id, language, label, layer, neuron, value; text and n_tokens optional.
    """
    if file.is_dir():
        from toolkit.capture.bulk_load import load_folder

        summary = load_folder(ctx.db, file, run, replace=replace, site=site, pooling=pooling, memory_limit=memory)
    else:
        from toolkit.capture.load import load_long

        summary = load_long(ctx.db, file, run, replace=replace, site=site, pooling=pooling)
    click.echo(
        f"loaded run '{run}' into {ctx.db}: {summary['n_sentences']} sentences, layers {summary['layers']}, "
        f"{summary['hidden_size']} neurons, {summary['n_values']:,} values"
    )


@click.command()
@click.argument("base")
@click.argument("data", type=click.Path(path_type=Path))
@out_option("Checkpoint folder to write.", folder=True)
@data_options
@click.option("--train-languages", default=None, help="Train on these languages only, comma-separated (e.g. en).")
@click.option(
    "--head",
    type=click.Choice(["linear", "default"]),
    default=default(FinetuneOptions, "head"),
    show_default=True,
    help="linear: one linear layer over [CLS], as in the paper; default: the architecture's head.",
)
@click.option("--epochs", type=int, default=default(FinetuneOptions, "epochs"), show_default=True)
@click.option("--lr", type=float, default=default(FinetuneOptions, "lr"), show_default=True)
@click.option("--batch-size", type=int, default=default(FinetuneOptions, "batch_size"), show_default=True)
@click.option("--max-length", type=int, default=default(FinetuneOptions, "max_length"), show_default=True)
@click.option("--seed", type=SEED, default=default(FinetuneOptions, "seed"), show_default=True)
@device_option
@allow_unk_option("Train")
@click.option(
    "--eval-split",
    default=None,
    help="Score the sentences of this split (all languages) after each epoch: accuracy and macro-F1 per language.",
)
@quiet_option
@click.pass_context
def finetune(click_ctx: click.Context, base: str, data: Path, out: Path, spec, **o) -> None:
    """Fine-tune checkpoint BASE on DATA with cross-entropy over its labels; save a classifier checkpoint
    (with id2label and a record of how it was made, neurons-finetune.json) that `extract` and `ablate`
    accept. E.g. --train-languages en --split train --eval-split test. With --db the record is also stored
    in that warehouse (view finetunes), which is created when it does not exist yet (a fine-tune comes before any
    extraction)."""
    from toolkit.capture.finetune import finetune as run_finetune
    from toolkit.capture.finetune import store_record, training_data
    from toolkit.store.output import check_output_dir
    from toolkit.store.warehouse import WRITER_LOCK_WAIT, Warehouse, check_db_path

    check_output_dir(out, "checkpoint")
    options = FinetuneOptions(
        o["head"], o["epochs"], o["lr"], o["batch_size"], o["max_length"], o["seed"], o["device"], o["allow_unk"]
    )
    db = click_ctx.find_root().params.get("db")
    if db is not None:  # checked before training: an existing file must be a warehouse, a new one creatable
        check_db_path(Path(db), create=True)
        if Path(db).exists():
            Warehouse(db, create=False).close()
    data_in = training_data(data, spec, comma_list(o["train_languages"]), o["eval_split"])
    done = run_finetune(base, data_in.train, out, options, data_in.held_out, data_in.source, progress=not o["quiet"])
    if db is not None:
        with Warehouse(db, lock_wait=WRITER_LOCK_WAIT) as wh:
            finetune_id = store_record(wh, out, done.record)
        click.echo(f"record stored in {db} (finetunes, id {finetune_id})")
    r = done.result
    held = ""
    if r.history and "scores" in r.history[-1]:
        held = "; held-out macro-F1 " + ", ".join(
            f"{s['language']} {s['macro_f1']:.3f}" for s in r.history[-1]["scores"]
        )
    click.echo(
        f"fine-tuned on {data_in.train.height} sentences ({o['head']} head): loss {r.losses[0]:.3f} -> "
        f"{r.losses[-1]:.3f}, training accuracy {r.train_accuracy:.3f}{held}; saved to {out} "
        "(record: neurons-finetune.json)"
    )


@click.command()
@out_option(
    "Folder for the demo model and warehouse.",
    folder=True,
    required=False,
    default=Path("warehouse"),
    show_default=True,
)
@click.option(
    "--epochs",
    type=click.IntRange(1, 1000),
    default=30,
    show_default=True,
    help="Training epochs of the tiny model (classifier or, with --decoder, language model).",
)
@click.option(
    "--decoder",
    is_flag=True,
    help="Instead: train a tiny Llama-architecture LM and run the LAPE study end to end.",
)
def demo(out: Path, epochs: int, decoder: bool) -> None:
    """Train a tiny XLM-R classifier on the bundled sample and extract it (illustrative only); with --decoder,
    a tiny causal LM and the LAPE study."""
    from toolkit.cli.demo import run_decoder_demo, run_demo

    if decoder:
        run_decoder_demo(out, epochs=epochs)
    else:
        run_demo(out, epochs=epochs)


COMMANDS = [extract, load, finetune, demo]
