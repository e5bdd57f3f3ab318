"""Corpus counts for LAPE (`neurons extract --site ffn --aggregate [--window N]`): per language, FFN layer and
neuron, the number of tokens on which the neuron fired (> 0), and each language's token count, as Tang et al.'s
`activation.py` keeps them (`over_zero`, `n`; docs/definitions.md definition 12). Nothing per sentence is
stored, so a corpus of 10^8 tokens per language costs languages x layers x neurons rows.

Batches hold one language each, so a batch's counts are one reduction on the device (`fired`). Sentences are
run one by one (padded, a decoder's BOS left out, as per-sentence extraction counts them) or, with `--window
N`, each language's text is packed as the paper did: the texts' tokens without special tokens, an EOS between
texts when the tokenizer has one, cut into windows of N tokens, the remainder (< N tokens) dropped; every
position of a window counts. Whole batches are grouped into chunks (`plan_chunks`); each chunk adds its counts
and records itself in one transaction, so a chunk counts exactly once and `--resume` skips the committed ones.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from toolkit.capture import hooks
from toolkit.capture.datasets import Dataset
from toolkit.capture.options import ExtractOptions
from toolkit.capture.preparation import (
    ExtractSummary,
    Prepared,
    check_resume,
    chunk_commits,
    plan_chunks,
    pooled_mask,
    prepare,
    progress_bar,
    run_record,
)
from toolkit.capture.tokens import batch_plan, pad
from toolkit.capture.writer import READER_WINDOW, WriteBehind
from toolkit.errors import UserError
from toolkit.store.arrow import insert_table, neuron_table, registered
from toolkit.store.warehouse import WRITER_LOCK_WAIT, Warehouse, commits


@dataclass(frozen=True)
class Batch:
    """Token sequences of one language run together: ROWS of the data (sentences) or, with windows, the windows'
    positions in the language's packed text."""

    language: str
    sequences: list[list[int]]
    n_rows: int  # data rows read (a window batch reads its rows once, with its first window; 0 otherwise)

    def __len__(self) -> int:
        return len(self.sequences)


def sentence_batches(prep: Prepared, languages: np.ndarray, batch_size: int) -> list[Batch]:
    """Each language's sentences, in length-sorted batches (`batch_plan`), languages in sorted order."""
    out = []
    for language in sorted(set(languages.tolist())):
        rows = np.flatnonzero(languages == language)
        for b in batch_plan(prep.lengths[rows], batch_size):
            out.append(Batch(language, [prep.token_ids[r] for r in rows[b]], len(b)))
    return out


def window_batches(
    prep: Prepared, languages: np.ndarray, window: int, batch_size: int, shard: tuple[int, int] = (0, 1)
) -> list[Batch]:
    """Each language's text packed into windows of WINDOW tokens (texts in data order, EOS between texts when the
    tokenizer has one, the remainder dropped), in batches of BATCH_SIZE windows. SHARD (K, N): the windows whose
    position modulo N is K, so N shards count exactly the windows of one run. A language with less than one
    window of text is refused."""
    k, n_shards = shard
    eos = prep.loaded.tokenizer.eos_token_id
    out = []
    for language in sorted(set(languages.tolist())):
        rows = np.flatnonzero(languages == language)
        parts = [np.asarray(prep.token_ids[r] + ([eos] if eos is not None else []), dtype=np.int64) for r in rows]
        text = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        n = len(text) // window
        if n == 0:
            raise UserError(
                f"language {language!r} has {len(text)} tokens, less than one --window of {window}; "
                "lower --window or add text"
            )
        windows = text[: n * window].reshape(n, window)[k::n_shards].tolist()  # window 0 (the rows) in shard 0
        for i in range(0, len(windows), batch_size):
            out.append(Batch(language, windows[i : i + batch_size], len(rows) if i == 0 and k == 0 else 0))
    return out


def plan_batches(
    prep: Prepared, dataset: Dataset, opts: ExtractOptions, shard: tuple[int, int] = (0, 1)
) -> list[Batch]:
    """The batches of an aggregate extraction of DATASET (prepared as PREP): windows with --window (SHARD's share
    of them), else the sentences (a shard's DATASET holds its rows already)."""
    languages = dataset.frame["language"].to_numpy().astype(str)
    if opts.window is not None:
        return window_batches(prep, languages, opts.window, opts.batch_size, shard)
    return sentence_batches(prep, languages, opts.batch_size)


def fired(captured: dict[int, torch.Tensor], layers: list[int], keep: torch.Tensor) -> torch.Tensor:
    """[len(layers), neurons] int64: over the KEEP positions ([batch, seq] bool) of a batch, how many tokens each
    FFN neuron fired on (activation > 0). One reduction per layer on the device, as a product of the position
    mask with the fired indicators (float32 counts are exact below 2^24 tokens a batch; three times faster on a
    CPU than a masked boolean sum)."""
    weights = keep.reshape(1, -1).to(torch.float32)
    out = []
    for k in layers:
        values = hooks.per_token(captured[k], keep)
        out.append(weights @ (values > 0).reshape(weights.shape[1], -1).to(torch.float32))
    return torch.cat(out).round().to(torch.int64)


@dataclass
class ChunkCounts:
    """A chunk's counts per language: fired [layer, neuron], tokens, rows and windows."""

    fired: dict[str, np.ndarray]
    tokens: dict[str, int]
    rows: dict[str, int]
    windows: dict[str, int]

    def table(self, layers: list[int]) -> pa.Table:
        """Long rows (language, layer, neuron, fired) of every language of the chunk (numpy, no loop over values)."""
        parts = []
        for language, counts in self.fired.items():
            n_layers, width = counts.shape
            parts.append(
                pa.table(
                    {
                        "language": pa.array([language] * (n_layers * width), pa.string()),
                        "layer": np.repeat(np.asarray(layers, dtype=np.int16), width),
                        "neuron": np.tile(np.arange(width, dtype=np.int32), n_layers),
                        "fired": counts.reshape(-1).astype(np.int64),
                    }
                )
            )
        return pa.concat_tables(parts)


def count_chunks(prep: Prepared, groups: list[list[Batch]], windows: bool, bar) -> Iterator[ChunkCounts]:
    """Run each chunk of GROUPS through the model under `torch.inference_mode` (blocks above the deepest layer
    skipped) and yield its counts. Sentences: padded, counted over the attention mask less a decoder's BOS;
    windows: every position."""
    loaded, layers = prep.loaded, prep.layers
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    ffn = hooks.ffn_modules(loaded.model, loaded.n_layers)
    with (
        torch.inference_mode(),
        hooks.truncated(loaded.model, loaded.n_layers, max(layers)),
        hooks.capture({k: ffn[k - 1] for k in layers}) as captured,
    ):
        for group in groups:
            totals: dict[str, torch.Tensor] = {}
            counts = ChunkCounts({}, {}, {}, {})
            for batch in group:
                ids, mask = pad(batch.sequences, pad_id)
                keep = (mask if windows else pooled_mask(loaded, mask)).bool()  # on the host: no device sync
                lang = batch.language
                counts.tokens[lang] = counts.tokens.get(lang, 0) + int(keep.sum())
                loaded.model(input_ids=ids.to(loaded.device), attention_mask=mask.to(loaded.device))
                n = fired(captured, layers, keep.to(loaded.device))  # one reduction per layer; read once a chunk
                totals[lang] = totals[lang] + n if lang in totals else n
                counts.rows[lang] = counts.rows.get(lang, 0) + batch.n_rows
                counts.windows[lang] = counts.windows.get(lang, 0) + (len(batch) if windows else 0)
                bar.update(len(batch))
            counts.fired = {lang: t.cpu().numpy() for lang, t in totals.items()}
            yield counts


def _commit(wh: Warehouse, run_id: int, chunk: int, layers: list[int], counts: ChunkCounts) -> None:
    """Add a chunk's counts to the run's totals and record the chunk, in the caller's transaction."""
    with registered(wh.con, chunk_counts=counts.table(layers)) as con:
        con.execute(
            "update fired_tokens as f set fired = f.fired + c.fired from chunk_counts as c "
            "where f.run_id = ? and f.language = c.language and f.layer = c.layer and f.neuron = c.neuron",
            [run_id],
        )
    for language, tokens in counts.tokens.items():
        wh.con.execute(
            "update language_tokens set n_tokens = n_tokens + ?, n_sentences = n_sentences + ?, "
            "n_windows = n_windows + ? where run_id = ? and language = ?",
            [tokens, counts.rows[language], counts.windows[language], run_id, language],
        )
    wh.con.execute(
        "insert into aggregate_chunks values (?, ?, ?, ?, ?)",
        [run_id, chunk, sum(counts.rows.values()), sum(counts.tokens.values()), datetime.now()],
    )


def _create(wh: Warehouse, run: str, replace: bool, prep: Prepared, dataset: Dataset, opts: ExtractOptions) -> int:
    """Make the run with zero counts for every language, layer and neuron; returns its id."""
    languages = sorted(set(dataset.frame["language"].to_list()))
    zeros = ChunkCounts({lang: np.zeros((len(prep.layers), prep.width), np.int64) for lang in languages}, {}, {}, {})
    with wh.new_run(run, replace) as (con, run_id):
        wh.insert_run({"run_id": run_id, **run_record(prep, dataset, run, opts), "aggregated": True})
        wh.insert_tokenization(run_id, prep.tokenization)
        insert_table(con, "layer_neurons", neuron_table(prep.layers, prep.width), "run_id", run_id)
        insert_table(con, "fired_tokens", zeros.table(prep.layers), "run_id", run_id)
        tokens = pa.table({"language": pa.array(languages, pa.string())})
        with registered(con, new_languages=tokens):
            con.execute("insert into language_tokens select ?, language, 0, 0, 0 from new_languages", [run_id])
    return run_id


def extract_aggregate(
    db_path: Path,
    model: str,
    dataset: Dataset,
    run: str,
    opts: ExtractOptions,
    existing: dict | None,
    replace: bool,
    progress: bool,
    allow_unknown: bool,
) -> ExtractSummary:
    """`extract --aggregate` with the run claimed and the existing run (to resume, or None) checked."""
    prep = prepare(model, dataset, opts, allow_unknown)
    if existing is not None:
        check_resume(existing, prep.settings)
    batches = plan_batches(prep, dataset, opts)
    windows = opts.window is not None
    groups = plan_chunks(batches, opts.commit_every)
    with Warehouse(db_path) as wh:
        if existing is not None:
            run_id = int(existing["run_id"])
            done = set(wh.sql("select chunk from aggregate_chunks where run_id = ?", [run_id])["chunk"].to_list())
        else:
            run_id, done = _create(wh, run, replace, prep, dataset, opts), set()
    todo = [(c, g) for c, g in enumerate(groups, start=1) if c not in done]
    total = sum(len(b) for b in batches)
    start = time.perf_counter()
    bar = progress_bar(total, total - sum(len(b) for _, g in todo for b in g), f"aggregate {run}", progress)
    bar.unit = "window" if windows else "sent"
    with chunk_commits(db_path, run_id, existing is None, bar), commits(db_path) as reopen:

        def commit(item: tuple[int, int, ChunkCounts]) -> None:  # in the writer thread
            chunk, size, counts = item
            with reopen() as wh, wh.transaction():
                _commit(wh, run_id, chunk, prep.layers, counts)
            saved[0] += size
            bar.set_postfix_str(f"saved {saved[0]}/{total}", refresh=False)

        saved = [total - sum(len(b) for _, g in todo for b in g)]
        with WriteBehind(commit, pause=READER_WINDOW) as writer:
            for (c, g), counts in zip(todo, count_chunks(prep, [g for _, g in todo], windows, bar)):
                writer.put((c, sum(len(b) for b in g), counts))
    with Warehouse(db_path, create=False, lock_wait=WRITER_LOCK_WAIT) as wh, wh.transaction():
        wh.con.execute(
            "update runs set status = 'complete', finished_at = ?, n_truncated = ? where run_id = ?",
            [datetime.now(), int(prep.cut.sum()), run_id],
        )
        fitness = wh.tokenizer_fitness(run)
    frame = dataset.frame
    return ExtractSummary(
        run=run,
        db=db_path,
        model=prep.loaded.reference,
        n_sentences=frame.height,
        n_done_before=frame.height if not todo else 0,
        n_truncated=int(prep.cut.sum()),
        layers=prep.layers,
        hidden_size=prep.width,
        seconds=time.perf_counter() - start,
        predictions=False,
        languages=dict(frame["language"].value_counts(sort=True).iter_rows()),
        labels={},
        unknown=prep.unknown,
        fitness=fitness,
        aggregated=True,
        n_windows=sum(len(b) for b in batches) if windows else 0,
        n_chunks_before=len(groups) - len(todo),
    )
