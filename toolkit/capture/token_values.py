"""Token-level evidence for single neurons (docs/definitions.md, definition 21): the run's model is run again on
a few of its sentences and each token's value of the chosen neurons is kept, so a card can show which words
drive a neuron instead of leaving the reader to guess from whole sentences.

The sentences are tokenized exactly as the run's extraction tokenized them (same tokenizer, special tokens and
max length), the values read at the run's site (the hidden unit of `hidden_states[L]`, or the FFN value after
the nonlinearity), and each sentence's value is pooled again from its tokens with the run's pooling: a pooled
value that does not equal the stored one means the checkpoint is no longer the one the run was made from.
Only the needed sentences are run, length-sorted in batches, with the blocks above the layer skipped.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from toolkit.capture import hooks
from toolkit.capture.extract import pool
from toolkit.capture.models import LoadedModel, load_config, load_model
from toolkit.capture.preparation import pooled_mask, progress_bar
from toolkit.capture.tokens import batch_plan, pad, tokenize
from toolkit.errors import UserError
from toolkit.store.runs import Run

BATCH = 32
"""Sentences per forward pass."""


@dataclass
class SentenceTokens:
    """One sentence as the model read it: its pieces, where each lies in the text (None for a special token or a
    tokenizer without offsets), which the run's pooling reads, and the chosen neurons' value at every token."""

    sentence_id: int
    tokens: list[str]
    starts: list[int | None]
    ends: list[int | None]
    special: list[bool]
    pooled_tokens: list[bool]
    neurons: list[int]
    values: np.ndarray  # [len(neurons), len(tokens)] float32
    pooled: np.ndarray  # [len(neurons)]: the values pooled again with the run's pooling


def language_model(ref: str | None) -> bool:
    """Whether checkpoint REF is a causal language model with its head (whose unembedding logit effects read),
    from its config alone; False where it cannot be read (loading it says why)."""
    try:
        config, _ = load_config(ref) if ref else (None, None)
    except UserError:
        return False
    names = getattr(config, "architectures", None) or []
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in names)


def run_model(
    run: Run, model: str | None = None, device: str = "auto", causal_lm: bool = False, device_map: str | None = None
) -> LoadedModel:
    """The model RUN was extracted from (or MODEL, a copy of it elsewhere), loaded as the run loaded it (its
    dtype), with its language-modelling head when CAUSAL_LM, on DEVICE or spread by DEVICE_MAP; a run without a
    model, or whose model is not there any more, is refused in one line."""
    ref = model or run.model
    if not ref:
        raise UserError(f"run '{run.name}' records no model (imported from a table?); pass --model CHECKPOINT")
    try:
        dtype = run.settings.get("dtype", "float32")
        return load_model(ref, device, dtype, classifier=False, causal_lm=causal_lm, device_map=device_map)
    except UserError as exc:
        if model:
            raise
        raise UserError(
            f"run '{run.name}' was extracted from {ref}, which cannot be loaded now ({exc}); pass --model with "
            "the checkpoint's new place"
        ) from None


def _offsets(loaded: LoadedModel, texts: list[str], ids: list[list[int]], max_length: int):
    """Per text, the character span of each token (None for a special token), or None per text where the
    tokenizer gives no offsets (a slow tokenizer) or they do not line up with the ids."""
    tok = loaded.tokenizer
    if not getattr(tok, "is_fast", False):
        return [None] * len(texts)
    enc = tok(
        texts,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        verbose=False,
    )
    out = []
    for seq, got, spans, special in zip(ids, enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]):
        if list(got) != list(seq):
            out.append(None)
            continue
        out.append([None if s else (int(a), int(b)) for (a, b), s in zip(spans, special)])
    return out


def token_values(
    loaded: LoadedModel,
    run: Run,
    layer: int,
    sentences: dict[int, tuple[str, list[int]]],
    batch_size: int = BATCH,
    progress: bool = False,
) -> list[SentenceTokens]:
    """For each sentence id of SENTENCES (text, neurons wanted), every token's value of those neurons at LAYER of
    RUN's site, and the values pooled again with RUN's pooling; in the order of SENTENCES (a progress bar on
    stderr with PROGRESS)."""
    if run.aggregated:
        raise UserError(f"run '{run.name}' holds corpus counts, not sentences; token values need a per-sentence run")
    settings = run.settings
    max_length = min(int(settings.get("max_length") or loaded.max_length), loaded.max_length)
    site, pooling = run.site, run.pooling or "cls"
    width = hooks.ffn_width(loaded.model) if site == "ffn" else loaded.hidden_size
    if width != run.hidden_size:
        raise UserError(
            f"run '{run.name}' has {run.hidden_size} neurons per layer at its site but this model has {width}; "
            "pass the checkpoint the run was extracted from"
        )
    ids_order = list(sentences)
    texts = [sentences[i][0] for i in ids_order]
    token_ids, _ = tokenize(loaded, texts, max_length)
    spans = _offsets(loaded, texts, token_ids, max_length)
    lengths = np.array([len(x) for x in token_ids])
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    if site == "ffn":
        capture = hooks.capture({layer: hooks.ffn_modules(loaded.model, loaded.n_layers)[layer - 1]})
    else:
        capture = nullcontext(None)
    special = set(loaded.tokenizer.all_special_ids) - {getattr(loaded.tokenizer, "unk_token_id", None)}  # <unk> is text
    out: dict[int, SentenceTokens] = {}
    truncated = hooks.truncated(loaded.model, loaded.n_layers, layer)
    bar = progress_bar(len(ids_order), 0, f"tokens {run.name}", progress)
    with torch.inference_mode(), truncated, capture as captured, bar:
        for rows in batch_plan(lengths, batch_size):
            ids, mask = pad([token_ids[r] for r in rows], pad_id)
            ids, mask = ids.to(loaded.device), mask.to(loaded.device)
            result = loaded.model(input_ids=ids, attention_mask=mask, output_hidden_states=site != "ffn")
            values = (hooks.per_token(captured[layer], mask) if site == "ffn" else result.hidden_states[layer]).float()
            keep = pooled_mask(loaded, mask).to(values.device)  # with a device map the layer may live elsewhere
            # only the neurons this batch's sentences want leave the device (not a 7B model's 11,008 per token)
            wanted = sorted({n for r in rows for n in sentences[ids_order[r]][1]})
            column = {n: j for j, n in enumerate(wanted)}
            index = torch.tensor(wanted, dtype=torch.long, device=values.device)
            pooled = pool(values.index_select(-1, index), keep, pooling).cpu().numpy()
            values, keep = values.index_select(-1, index).cpu().numpy(), keep.cpu().numpy().astype(bool)
            for b, r in enumerate(rows):
                sid, n = ids_order[r], int(lengths[r])
                neurons = list(sentences[sid][1])
                cols = [column[k] for k in neurons]
                where = spans[r] or [None] * n
                out[sid] = SentenceTokens(
                    sentence_id=sid,
                    tokens=[str(p) for p in loaded.tokenizer.convert_ids_to_tokens(token_ids[r])],
                    starts=[w[0] if w else None for w in where],
                    ends=[w[1] if w else None for w in where],
                    special=[i in special for i in token_ids[r]],
                    pooled_tokens=_read(keep[b, :n], pooling),
                    neurons=neurons,
                    values=values[b, :n][:, cols].T.astype(np.float32),
                    pooled=pooled[b, cols].astype(np.float32),
                )
            bar.update(len(rows))
    return [out[i] for i in ids_order]


def _read(mask: np.ndarray, pooling: str) -> list[bool]:
    """Which of a sentence's tokens its pooled value reads: the first (cls), the last pooled one (last), or every
    pooled one (mean, max, active)."""
    if pooling == "cls":
        return [i == 0 for i in range(mask.size)]
    if pooling == "last":
        last = int(np.flatnonzero(mask)[-1])
        return [i == last for i in range(mask.size)]
    return mask.tolist()
