"""Steering the output language (Kojima et al. 2024, Gurgurov et al. 2024; `neurons steer`).

A causal LM generates greedily from each prompt three ways: unsteered; with language L's LAPE neurons
(`language_specific_neurons()` of an `--site ffn --pooling active` run) set, at every position, to their mean
FFN value over L's tokens in the run's data (a BOS left out), and optionally every other language's LAPE
neurons set to 0; and with random neuron sets of the same size per layer set to their own means on L. The
language of each continuation is identified with lingua (`pip install 'neurons[steer]'`) and stored; view
`steering_summary` gives the share in L per condition.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import torch
from tqdm import tqdm

from toolkit import __version__
from toolkit.capture import hooks
from toolkit.capture.datasets import Dataset
from toolkit.capture.models import LoadedModel, load_model
from toolkit.capture.tokens import batch_plan, pad, tokenize
from toolkit.causal.deactivate import DeactivateOptions, NeuronSet, check_causal_lm, control_set, lape_sets
from toolkit.errors import UserError
from toolkit.store.arrow import insert_table
from toolkit.store.warehouse import WRITER_LOCK_WAIT, Warehouse, migrate


@dataclass(frozen=True)
class SteerOptions:
    language: str
    top_rate: float = 0.01
    zero_others: bool = False
    max_new_tokens: int = 20
    controls: int = 3
    seed: int = 0
    batch_size: int = 16
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.controls < 0 or self.batch_size < 1:
            raise UserError("--max-new-tokens and --batch-size must be at least 1, --controls at least 0")


def read_prompts(path: Path) -> list[str]:
    """One prompt per non-empty line of a UTF-8 text file."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--prompts {path}: cannot read it as UTF-8 text ({exc})") from None
    prompts = [line.strip() for line in lines if line.strip()]
    if not prompts:
        raise UserError(f"--prompts {path} holds no prompt; give one per line")
    return prompts


def mean_values(loaded: LoadedModel, ffn: list, texts: list[str], batch_size: int) -> dict[int, torch.Tensor]:
    """Per FFN layer (1..n), the mean value of every neuron over all the tokens of TEXTS (a BOS left out)."""
    ids, _ = tokenize(loaded, texts, loaded.max_length)
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    sums: dict[int, torch.Tensor] = {}
    count = 0
    with torch.inference_mode(), hooks.capture({k + 1: m for k, m in enumerate(ffn)}) as captured:
        for b in batch_plan(lengths, batch_size):
            batch, mask = pad([ids[i] for i in b], pad_id)
            mask = mask.to(loaded.device)
            loaded.model(input_ids=batch.to(loaded.device), attention_mask=mask)
            keep = mask.clone()
            if loaded.skip_bos:
                keep[:, 0] = 0
            for layer, values in captured.items():
                values = hooks.per_token(values, keep)
                part = torch.where(keep.bool().unsqueeze(-1), values.double(), 0.0).sum(dim=(0, 1))
                sums[layer] = sums.get(layer, 0) + part
            count += int(keep.sum())
    return {layer: s / max(count, 1) for layer, s in sums.items()}


@contextmanager
def steered(ffn: list, chosen: NeuronSet, means: dict[int, torch.Tensor], zero: NeuronSet) -> Iterator[None]:
    """Inside the context, CHOSEN neurons hold their MEANS and ZERO neurons 0, at every position (`hooks.edit`)."""

    def setter(index: torch.Tensor, values: torch.Tensor | None):
        def fn(out: torch.Tensor) -> None:
            out[..., index.to(out.device)] = 0 if values is None else values.to(device=out.device, dtype=out.dtype)

        return fn

    with ExitStack() as stack:
        for layer, neurons in zero.items():
            stack.enter_context(hooks.edit(ffn[layer - 1], setter(torch.tensor(neurons), None)))
        for layer, neurons in chosen.items():
            index = torch.tensor(neurons)
            stack.enter_context(hooks.edit(ffn[layer - 1], setter(index, means[layer][index])))
        yield


def generate(loaded: LoadedModel, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy continuations of PROMPTS, one prompt at a time (no padding), decoded without special tokens."""
    out = []
    tok = loaded.tokenizer
    with torch.inference_mode():
        for prompt in prompts:
            ids = torch.tensor([tok(prompt)["input_ids"]], device=loaded.device)
            new = loaded.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            )[0, ids.shape[1] :]
            out.append(tok.decode(new, skip_special_tokens=True))
    return out


def identifier(codes: list[str]):
    """A lingua detector over CODES (ISO 639-1) where lingua knows them all, else over every language."""
    try:
        from lingua import IsoCode639_1, LanguageDetectorBuilder
    except ImportError:
        raise UserError("steer identifies languages with lingua: pip install 'neurons[steer]'") from None
    known = [getattr(IsoCode639_1, c.upper(), None) for c in codes]
    if all(known) and len(known) > 1:
        return LanguageDetectorBuilder.from_iso_codes_639_1(*known).build()
    return LanguageDetectorBuilder.from_all_languages().build()


def identify(detector, texts: list[str]) -> list[str | None]:
    found = detector.detect_languages_in_parallel_of(texts)
    return [lang.iso_code_639_1.name.lower() if lang is not None else None for lang in found]


@dataclass
class SteerResult:
    steer_id: int
    summary: pl.DataFrame


def steer(db, model: str, dataset: Dataset, run: str, prompts: list[str], o: SteerOptions, progress: bool = True):
    """Generate from PROMPTS unsteered, steered towards O.language and under random controls; identify and store
    every output; return the summary (view `steering_summary`)."""
    migrate(db)
    with Warehouse(db, read_only=True) as wh:
        sets = lape_sets(wh, run, DeactivateOptions(top_rate=o.top_rate))
    if o.language not in sets:
        raise UserError(
            f"language {o.language!r} has no LAPE neurons in run '{run}' (it has: {', '.join(sorted(sets))}); "
            "raise --top-rate or choose one of those"
        )
    check_causal_lm(model)
    loaded = load_model(model, o.device, causal_lm=True)
    ffn = hooks.ffn_modules(loaded.model, loaded.n_layers)
    frame = dataset.frame.filter(pl.col("language") == o.language)
    if not frame.height:
        raise UserError(f"the run's data has no {o.language} sentences to take the neurons' means from")
    means = mean_values(loaded, ffn, frame["text"].to_list(), o.batch_size)
    target = sets[o.language]
    others: NeuronSet = {}
    if o.zero_others:
        for language, chosen in sets.items():
            if language != o.language:
                for layer, ns in chosen.items():
                    others[layer] = sorted(set(others.get(layer, [])) | set(ns) - set(target.get(layer, [])))
    rng = np.random.default_rng(o.seed)
    width = hooks.ffn_width(loaded.model)
    plan = [("unsteered", 0, {}, {}), ("steered", 0, target, others)]
    plan += [("control", i + 1, control_set(target, width, rng), {}) for i in range(o.controls)]
    bar = tqdm(total=len(plan), unit="set", desc="steer", disable=not progress, file=sys.stderr)
    outputs = []
    for condition, index, chosen, zero in plan:
        with steered(ffn, chosen, means, zero):
            outputs.append((condition, index, generate(loaded, prompts, o.max_new_tokens)))
        bar.update(1)
    bar.close()
    detector = identifier(sorted(sets))
    rows = [
        (condition, index, p, prompt, text, found)
        for condition, index, texts in outputs
        for p, (prompt, text, found) in enumerate(zip(prompts, texts, identify(detector, texts)))
    ]
    n_neurons = sum(len(v) for v in target.values())
    with Warehouse(db, create=False, lock_wait=WRITER_LOCK_WAIT) as wh:
        with wh.transaction() as con:
            sid = wh.next_id("steerings", "steer_id")
            con.execute(
                "insert into steerings values (?, ?, ?, ?, ?, ?, ?, ?)",
                [sid, wh.run_id(run), model, o.language, n_neurons, json.dumps(asdict(o)), datetime.now(), __version__],
            )
            names = ["condition", "set_index", "prompt_index", "prompt", "output", "identified"]
            table = pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})
            insert_table(con, "steering_outputs", table, "steer_id", sid)
        summary = wh.sql("select * from steering_summary where steer_id = ? order by condition", [sid])
    return SteerResult(sid, summary)
