"""Extraction: run an encoder over a dataset and store pooled activations of chosen layers in the warehouse.

Paper Section 2.2 ("Neuron Activation Extraction"): [CLS] (or mean-pooled) hidden states of the chosen
layers, stored with each sentence's language and label. Batched with attention masks, sentences sorted
by length to cut padding, under `torch.inference_mode`, and blocks above the deepest requested layer are
not run unless the classification head's predictions are wanted.

The batch plan is a pure function of the data and the settings, and each chunk of whole batches is
committed in one transaction together with its sentences; so `--resume` skips exactly the committed
batches and the finished run equals an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from toolkit.capture import hooks
from toolkit.capture.aggregate import extract_aggregate
from toolkit.capture.datasets import Dataset
from toolkit.capture.models import LoadedModel
from toolkit.capture.options import ExtractOptions
from toolkit.capture.preparation import (  # noqa: F401 - re-exported for library callers
    ExtractSummary,
    Prepared,
    check_resume,
    chunk_commits,
    plan_chunks,
    planned_settings,
    pooled_mask,
    prepare,
    progress_bar,
    resolve_pooling,
    run_record,
)
from toolkit.capture.tokens import batch_plan, pad
from toolkit.capture.writer import READER_WINDOW, WriteBehind
from toolkit.errors import UserError
from toolkit.store.arrow import activation_table, insert_run_rows, insert_table, neuron_table
from toolkit.store.claims import claim
from toolkit.store.warehouse import WRITER_LOCK_WAIT, Warehouse, check_db_path, commits, default_db, validate_run_name


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """[batch, seq, hidden] -> [batch, hidden] over each sentence's pooled tokens (MASK: 1 for a token, 0 for
    padding and an excluded BOS): the first token (cls), the last (last), the mean, the maximum, or (active) the
    share of tokens whose value is > 0. Masked positions are never read, so a padded row's NaN (a fully masked
    attention row) cannot leak."""
    if pooling == "cls":
        return hidden[:, 0, :].float()
    keep = mask.bool().unsqueeze(-1)
    if pooling == "last":
        last = (mask * torch.arange(mask.shape[1], device=mask.device)).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last].float()
    if pooling == "max":
        return torch.where(keep, hidden.float(), float("-inf")).amax(dim=1)
    values = (hidden > 0).to(torch.float32) if pooling == "active" else hidden.float()
    total = torch.where(keep, values, 0.0).sum(dim=1)
    return total / mask.sum(dim=1, keepdim=True).clamp_min(1).to(torch.float32)


def forward_batch(
    loaded: LoadedModel,
    ids: torch.Tensor,
    mask: torch.Tensor,
    layers: list[int],
    pooling: str,
    want_logits: bool,
    captured: dict[int, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pooled activations [batch, len(layers), hidden] as float32 and class probabilities if wanted, both still on
    the model's device (no synchronisation here). With CAPTURED (filled by `hooks.capture` during the forward
    pass) the FFN activations are pooled instead of the hidden states."""
    ids, mask = ids.to(loaded.device, non_blocking=True), mask.to(loaded.device, non_blocking=True)
    out = loaded.model(input_ids=ids, attention_mask=mask, output_hidden_states=captured is None)
    source = captured if captured is not None else out.hidden_states
    tokens = pooled_mask(loaded, mask)
    pooled = torch.stack(  # with --device-map the layers may live on several devices: pooled where each is
        [pool(hooks.per_token(source[k], mask), tokens.to(source[k].device), pooling).to(ids.device) for k in layers],
        dim=1,
    )
    probs = torch.softmax(out.logits.float(), dim=-1).to(ids.device) if want_logits else None
    return pooled, probs


class HostCopies:
    """Device-to-host copies of one chunk's batches without a synchronisation per batch: on a GPU each batch's
    result is copied into pinned host memory asynchronously, and `numpy` waits once, when the chunk is whole, so
    the device keeps computing while results travel. On a CPU the tensors are already host memory."""

    def __init__(self, device: torch.device):
        self._device = device
        self._async = device.type == "cuda"

    def add(self, t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None or not self._async:
            return t
        host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        host.copy_(t, non_blocking=True)
        return host

    def numpy(self, tensors: list[torch.Tensor | None]) -> list[np.ndarray | None]:
        """TENSORS (from `add`) as numpy arrays, after one wait for every copy queued so far."""
        if self._async:
            torch.cuda.current_stream(self._device).synchronize()
        return [None if t is None else t.numpy() for t in tensors]


Pending = list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]
"""Whole batches of one chunk: (row positions, activations [batch, layer, neuron], class probabilities)."""


def chunks(
    prep: Prepared, sentence_ids: np.ndarray, groups: list[list[np.ndarray]], opts: ExtractOptions, bar: tqdm
) -> Iterator[Pending]:
    """Run each chunk of GROUPS (`plan_chunks`: batches of row positions of the prepared dataset) through the model
    under `torch.inference_mode`, yielding it whole once its last batch is done. Blocks above the deepest layer
    are skipped unless the head's predictions are wanted; non-finite values are refused."""
    loaded, layers = prep.loaded, prep.layers
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    block_keep = loaded.n_layers if prep.want_logits else max(layers)
    capture = nullcontext(None)
    if opts.site == "ffn":
        ffn = hooks.ffn_modules(loaded.model, loaded.n_layers)
        capture = hooks.capture({k: ffn[k - 1] for k in layers})
    with torch.inference_mode(), hooks.truncated(loaded.model, loaded.n_layers, block_keep), capture as captured:
        copies = HostCopies(loaded.device)
        for group in groups:
            made = []
            for rows in group:
                ids, mask = pad([prep.token_ids[r] for r in rows], pad_id)
                values, probs = forward_batch(loaded, ids, mask, layers, opts.pooling, prep.want_logits, captured)
                made.append((rows, copies.add(values), copies.add(probs)))
                bar.update(len(rows))
            flat = copies.numpy([t for _, v, p in made for t in (v, p)])  # one wait per chunk
            pending: Pending = [(rows, flat[2 * i], flat[2 * i + 1]) for i, (rows, _, _) in enumerate(made)]
            for rows, values, _ in pending:
                _check_finite(values, sentence_ids, rows, layers, opts.dtype)
            yield pending


DATA_COLUMNS = ("sentence_id", "source_id", "text", "language", "label", "split")
"""The columns of `sentences` that come from the data file as they are."""


def sentence_rows(prep: Prepared, frame, pending: Pending) -> pa.Table:
    """The `sentences` rows of a chunk: the data's columns, token counts, truncation and the head's predictions."""
    rows = np.concatenate([p[0] for p in pending])
    chunk = frame[rows]
    cols = {
        **{c: chunk[c].to_arrow() for c in DATA_COLUMNS},
        "n_tokens": pa.array(prep.lengths[rows].astype(np.int32)),
        "truncated": pa.array(prep.cut[rows]),
    }
    class_names = prep.loaded.class_names
    if class_names is not None:
        probs = np.concatenate([p[2] for p in pending]).astype(np.float32)
        cols["predicted_label"] = pa.array(np.asarray(class_names, dtype=object)[probs.argmax(axis=1)])
        cols["probabilities"] = pa.ListArray.from_arrays(
            pa.array(np.arange(0, probs.size + 1, probs.shape[1], dtype=np.int32)), pa.array(probs.reshape(-1))
        )
    else:
        cols["predicted_label"] = pa.nulls(len(rows), pa.string())
        cols["probabilities"] = pa.nulls(len(rows), pa.list_(pa.float32()))
    return pa.table(cols)


def extract(
    db: str | Path | None,
    model: str,
    dataset: Dataset,
    run: str,
    options: ExtractOptions | None = None,
    resume: bool = False,
    replace: bool = False,
    progress: bool = True,
    allow_unknown: bool = False,
) -> ExtractSummary:
    """Extract MODEL's activations on DATASET into run RUN of warehouse DB; returns a summary.

    The warehouse is opened for writing only to create the run and to commit each chunk, so other processes
    can read it (`neurons runs` shows the committed sentences) while the model runs; the run itself is claimed
    for the whole job, so no second writer (`--resume`, `--replace`, `delete`) can touch it. Everything that can be
    checked (settings, model, tokenizer, unknown tokens) is checked before the warehouse is touched."""
    opts = resolve_pooling(model, options or ExtractOptions())
    validate_run_name(run)
    if resume and replace:
        raise UserError("--resume and --replace exclude each other; pick one")
    db_path = Path(db) if db is not None else default_db()
    check_db_path(db_path, create=True)
    with claim(db_path, run):  # one writer per run, from the first check to the last commit
        return _extract(db_path, model, dataset, run, opts, resume, replace, progress, allow_unknown)


def _extract(
    db_path: Path,
    model: str,
    dataset: Dataset,
    run: str,
    opts: ExtractOptions,
    resume: bool,
    replace: bool,
    progress: bool,
    allow_unknown: bool,
) -> ExtractSummary:
    """`extract` with the run claimed."""
    existing = None
    if db_path.exists():
        with Warehouse(db_path) as wh:
            existing = wh.run_row(run)
            if existing is not None and not resume:
                wh.check_new_run(run, replace)
    if existing is not None and resume and existing["status"] == "complete":
        raise UserError(f"run '{run}' is already complete; nothing to resume (use --replace to redo it)")
    if existing is None and resume:
        raise UserError(f"run '{run}' does not exist in {db_path}; nothing to resume (drop --resume to start it)")
    if opts.aggregate:
        resumed = existing if resume else None
        return extract_aggregate(db_path, model, dataset, run, opts, resumed, replace, progress, allow_unknown)

    prep = prepare(model, dataset, opts, allow_unknown)
    layers, settings = prep.layers, prep.settings
    if existing is not None and resume:
        check_resume(existing, settings)
    frame = dataset.frame
    plan = batch_plan(prep.lengths, opts.batch_size)
    sentence_ids = frame["sentence_id"].to_numpy()

    with Warehouse(db_path) as wh:
        if existing is not None and resume:
            run_id = int(existing["run_id"])
            done = set(wh.sql("select sentence_id from sentences where run_id = ?", [run_id])["sentence_id"].to_list())
        else:
            done = set()
            with wh.new_run(run, replace) as (con, run_id):  # checked again: another process may have made it
                wh.insert_run({"run_id": run_id, **run_record(prep, dataset, run, opts)})
                wh.insert_tokenization(run_id, prep.tokenization)
                insert_table(con, "layer_neurons", neuron_table(layers, prep.width), "run_id", run_id)
    created = not (existing is not None and resume)
    todo = [(i, b) for i, b in enumerate(plan) if not done.issuperset(sentence_ids[b].tolist())]
    n_done_before = len(done)

    start = time.perf_counter()
    bar = progress_bar(frame.height, n_done_before, f"extract {run}", progress)
    groups = plan_chunks([b for _, b in todo], opts.commit_every)
    with chunk_commits(db_path, run_id, created, bar), commits(db_path) as reopen:

        def commit(pending: Pending) -> None:  # in the writer thread, while the model computes the next chunk
            rows = np.concatenate([p[0] for p in pending])
            acts = activation_table(sentence_ids[rows], layers, np.concatenate([p[1] for p in pending]))
            with reopen() as wh, wh.transaction() as con:
                insert_run_rows(con, run_id, sentence_rows(prep, frame, pending), acts)
            saved[0] += len(rows)
            bar.set_postfix_str(f"saved {saved[0]}/{frame.height}", refresh=False)

        saved = [n_done_before]
        with WriteBehind(commit, pause=READER_WINDOW) as writer:
            for pending in chunks(prep, sentence_ids, groups, opts, bar):
                writer.put(pending)
    with Warehouse(db_path, create=False, lock_wait=WRITER_LOCK_WAIT) as wh, wh.transaction():
        wh.con.execute(
            "update runs set status = 'complete', finished_at = ?, "
            "n_truncated = (select count(*) from sentences where run_id = ? and truncated) where run_id = ?",
            [datetime.now(), run_id, run_id],
        )
        wh.materialize(run_id)
        fitness = wh.tokenizer_fitness(run)
    seconds = time.perf_counter() - start
    return ExtractSummary(
        run=run,
        db=db_path,
        model=prep.loaded.reference,
        n_sentences=frame.height,
        n_done_before=n_done_before,
        n_truncated=int(prep.cut.sum()),
        layers=layers,
        hidden_size=prep.width,
        seconds=seconds,
        predictions=prep.want_logits,
        languages=dict(frame["language"].value_counts(sort=True).iter_rows()),
        labels=dict(frame["label"].value_counts(sort=True).iter_rows()),
        unknown=prep.unknown,
        fitness=fitness,
        writer_wait=writer.waited,
        commit_seconds=writer.committing,
        n_commits=writer.n_commits,
    )


def _check_finite(
    values: np.ndarray, sentence_ids: np.ndarray, rows: np.ndarray, layers: list[int], dtype: str
) -> None:
    """Refuse activations that are not finite (float16 overflow, a broken checkpoint): they would poison every
    statistic of the layer."""
    bad = ~np.isfinite(values)
    if bad.any():
        r, li, _ = np.argwhere(bad)[0]
        sid = int(sentence_ids[rows[r]])
        hint = "; try --dtype bfloat16 or float32" if dtype == "float16" else "; check the checkpoint"
        raise UserError(
            f"the model produced a non-finite activation (inf or nan) for sentence {sid} (data row "
            f"{sid + 1}) at layer {layers[li]}{hint}"
        )
