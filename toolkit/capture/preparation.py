"""What every extraction target shares before and around the model's forward passes: the model loaded and the
data tokenized and checked (`prepare`), the settings a run records and `--resume` compares, the pooling a run
resolves to, the chunk plan (whole batches per commit), the run record and the summary. Per-sentence
extraction (`extract`), corpus counts (`aggregate`) and lake shards (`toolkit.scale.shards`) build on these.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch
from tqdm import tqdm

from toolkit.capture import hooks
from toolkit.capture.datasets import Dataset
from toolkit.capture.models import (
    LoadedModel,
    has_classifier,
    input_limit,
    load_config,
    load_model,
    load_tokenizer,
    parse_layers,
)
from toolkit.capture.options import ExtractOptions
from toolkit.capture.tokens import check_unknown, tokenization, tokenize, unknown_shares
from toolkit.errors import UserError
from toolkit.store.runs import frame_counts
from toolkit.store.runs import run_record as make_run_record
from toolkit.store.warehouse import WRITER_LOCK_WAIT, Warehouse


@dataclass
class ExtractSummary:
    run: str
    db: Path
    model: str
    n_sentences: int
    n_done_before: int
    n_truncated: int
    layers: list[int]
    hidden_size: int
    seconds: float
    predictions: bool
    languages: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    unknown: dict[str, float] = field(default_factory=dict)  # share of unknown tokens per language
    fitness: pl.DataFrame | None = None  # the run's `tokenizer_fitness` rows (Warehouse.tokenizer_fitness)
    aggregated: bool = False  # --aggregate: corpus counts, nothing per sentence
    n_windows: int = 0  # --window: windows run
    n_chunks_before: int = 0  # --aggregate --resume: chunks committed before
    writer_wait: float = 0.0  # seconds the model waited for the writer (a full queue of chunks)
    commit_seconds: float = 0.0  # seconds the writer spent committing, alongside the model
    n_commits: int = 0

    @property
    def n_values(self) -> int:
        return self.n_sentences * len(self.layers) * self.hidden_size

    @property
    def sentences_per_second(self) -> float:
        return (self.n_sentences - self.n_done_before) / self.seconds if self.seconds > 0 else float("nan")


def resolve_pooling(model: str, opts: ExtractOptions) -> ExtractOptions:
    """OPTS with pooling 'auto' made concrete from MODEL's config (no weights): cls for an encoder, the last token
    for a decoder, its sentence representation. Runs store the concrete pooling."""
    if opts.pooling != "auto":
        return opts
    config, _ = load_config(model)
    decoder = getattr(hooks.FAMILIES.get(config.model_type), "decoder", False)
    return replace(opts, pooling="last" if decoder else "cls")


def check_pooling(loaded: LoadedModel, pooling: str, aggregate: bool = False) -> None:
    """A decoder has no [CLS] token, and an encoder's last token is its [SEP]: both readings are refused; so is
    --aggregate on an encoder (LAPE's corpus counts are a decoder's)."""
    if aggregate and not loaded.decoder:
        raise UserError(
            f"--aggregate counts fired tokens over a decoder's corpus, as LAPE does; {loaded.model_type} is an "
            "encoder: use --site ffn --pooling active (token shares per sentence)"
        )
    if loaded.decoder and pooling == "cls":
        raise UserError(
            f"--pooling cls: a decoder ({loaded.model_type}) has no [CLS] token; use --pooling last (its sentence "
            "representation), mean or max"
        )
    if not loaded.decoder and pooling == "last":
        raise UserError(
            f"--pooling last: an encoder's ({loaded.model_type}) last token is its closing special token; use cls, "
            "mean or max"
        )


def pooled_mask(loaded: LoadedModel, mask: torch.Tensor) -> torch.Tensor:
    """The tokens pooled: the attention MASK less a decoder's BOS (an outlier every sentence shares)."""
    if not loaded.skip_bos:
        return mask
    mask = mask.clone()
    mask[:, 0] = 0
    return mask


def _settings(
    dataset: Dataset, reference: str, layers: list[int], opts: ExtractOptions, max_length: int, predictions: bool
) -> dict:
    """Everything that determines the stored numbers; `--resume` requires it unchanged."""
    return {
        "model": reference,
        "data_file": str(dataset.path),
        "data_sha256": dataset.sha256,
        **dataset.options,
        "layers": layers,
        "site": opts.site,
        "pooling": opts.pooling,
        "batch_size": opts.batch_size,
        "max_length": max_length,
        "dtype": opts.dtype,
        "predictions": predictions,
        **({"aggregate": True, "window": opts.window} if opts.aggregate else {}),
    }


def planned_settings(model: str, dataset: Dataset, opts: ExtractOptions) -> dict:
    """The settings (`_settings`) an extraction of DATASET by MODEL with OPTS would record, from the model's config
    and tokenizer alone (no weights): what a finished lake shard compares before it says there is nothing to do."""
    config, reference, tokenizer = load_tokenizer(model)
    opts = resolve_pooling(model, opts)
    layers = parse_layers(opts.layers, int(config.num_hidden_layers), first=1 if opts.site == "ffn" else 0)
    limit = input_limit(config, tokenizer)
    predictions = opts.predictions and has_classifier(config)
    return _settings(dataset, reference, layers, opts, min(opts.max_length or limit, limit), predictions)


@dataclass
class Prepared:
    """A loaded model and a tokenized dataset, checked and ready to run: what every extraction target shares."""

    loaded: LoadedModel
    layers: list[int]
    width: int  # neurons per layer
    settings: dict  # everything that determines the stored numbers
    token_ids: list[list[int]]
    cut: np.ndarray  # sentences truncated at max_length
    lengths: np.ndarray  # tokens per sentence, after truncation
    unknown: dict[str, float]  # share of unknown tokens per language
    tokenization: pl.DataFrame  # per language: the counts fertility is computed from (`tokenization` table)

    @property
    def want_logits(self) -> bool:
        return self.loaded.class_names is not None


def prepare(model: str, dataset: Dataset, opts: ExtractOptions, allow_unknown: bool) -> Prepared:
    """Load MODEL and tokenize DATASET for it, with every check that needs no output (layers, tokenizer fit)."""
    config, _ = load_config(model)
    layers = parse_layers(opts.layers, int(config.num_hidden_layers), first=1 if opts.site == "ffn" else 0)
    loaded = load_model(model, opts.device, opts.dtype, classifier=opts.predictions, device_map=opts.device_map)
    max_length = min(opts.max_length or loaded.max_length, loaded.max_length)
    check_pooling(loaded, opts.pooling, opts.aggregate)
    if opts.site == "ffn":
        hooks.ffn_modules(loaded.model, loaded.n_layers)  # a family without a known FFN site is refused here
    width = hooks.ffn_width(loaded.model) if opts.site == "ffn" else loaded.hidden_size
    settings = _settings(dataset, loaded.reference, layers, opts, max_length, loaded.class_names is not None)
    frame = dataset.frame
    windows = opts.window is not None  # whole texts without special tokens, packed into windows later
    if windows and opts.window > loaded.max_length:
        raise UserError(f"--window {opts.window} is longer than the model's input limit ({loaded.max_length} tokens)")
    texts = frame["text"].to_list()
    token_ids, cut = tokenize(loaded, texts, sys.maxsize if windows else max_length, special=not windows)
    counts = tokenization(loaded.tokenizer, texts, token_ids, cut, frame["language"].to_list())
    unknown = unknown_shares(counts)
    check_unknown(unknown, allow_unknown)
    lengths = np.fromiter((len(x) for x in token_ids), dtype=np.int64, count=len(token_ids))
    lengths -= int(loaded.skip_bos and not windows)  # the tokens pooled and counted: a decoder's BOS is not one
    empty = np.flatnonzero(lengths < 1)
    if empty.size and not windows:
        raise UserError(
            f"{empty.size} sentence(s) have no tokens for this tokenizer (first: data row {empty[0] + 1}, "
            f"{frame['text'][int(empty[0])][:40]!r}); remove them, or use a tokenizer that reads the language"
        )
    return Prepared(loaded, layers, width, settings, token_ids, cut, lengths, unknown, counts)


def plan_chunks(batches: list[np.ndarray], commit_every: int) -> list[list[np.ndarray]]:
    """Whole BATCHES grouped greedily, in order, into chunks of at least COMMIT_EVERY sentences (the last may be
    smaller): the one rule by which the warehouse and the lake cut a job into commits."""
    groups: list[list[np.ndarray]] = [[]]
    size = 0
    for b in batches:
        if size >= commit_every:
            groups.append([])
            size = 0
        groups[-1].append(b)
        size += len(b)
    return [g for g in groups if g]


def progress_bar(total: int, initial: int, desc: str, progress: bool) -> tqdm:
    """The extraction progress bar (sentences), on stderr."""
    return tqdm(
        total=total,
        initial=initial,
        unit="sent",
        desc=desc,
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )


def run_record(prep: Prepared, dataset: Dataset, run: str, opts: ExtractOptions) -> dict:
    """The `runs` row of an extraction (without run_id), status 'incomplete'."""
    return make_run_record(
        run,
        "extract",
        data_file=str(dataset.path),
        data_sha256=dataset.sha256,
        layers=prep.layers,
        hidden_size=prep.width,
        counts=frame_counts(dataset.frame),
        settings=prep.settings,
        site=opts.site,
        pooling=opts.pooling,
        model=prep.loaded.reference,
        model_type=prep.loaded.model_type,
        class_names=prep.loaded.class_names,
    )


def check_resume(existing: dict, settings: dict) -> None:
    stored = {"site": "residual", **json.loads(existing["settings"])}  # runs made before --site were residual
    changed = [k for k in settings if stored.get(k) != settings[k]]
    if changed:
        diffs = "; ".join(f"{k}: {stored.get(k)!r} then, {settings[k]!r} now" for k in changed)
        raise UserError(
            f"--resume needs the settings the run was started with ({diffs}); rerun with those, or use --replace"
        )


@contextmanager
def chunk_commits(db_path: Path, run_id: int, created: bool, bar: tqdm) -> Iterator[None]:
    """Around a job's chunk commits: bad input found half-way (a UserError) leaves no trace of a run this call
    CREATED, and the progress BAR is closed whatever happens."""
    try:
        yield
    except UserError:
        if created:
            with Warehouse(db_path, create=False, lock_wait=WRITER_LOCK_WAIT) as wh, wh.transaction():
                wh.delete_run(run_id)
        raise
    finally:
        bar.close()
