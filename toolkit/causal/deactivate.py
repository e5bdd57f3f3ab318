"""The LAPE causal test (Tang et al. 2024, Section 3; `neurons ablate MODEL DATA --run R --lape`).

Each language's language-specific neurons (`language_specific_neurons()` of an `--site ffn --pooling active`
run, sql/views/016_lape.sql) are set to zero at every position of a causal LM, through forward hooks on the
FFN values they were found in (`hooks.ffn_modules`), and every language's mean next-token NLL is measured on
DATA: the summed NLL of every predicted token over their number, a BOS given as context. The same is done with
nothing deactivated and with random neuron sets of the same size in each layer (seeded). The paper's finding is
that deactivating a language's own neurons raises its own NLL far more than other languages' and than random
sets; view `deactivation_matrix` (sql/views/032_deactivation.sql) says whether a model shows it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import polars as pl
import pyarrow as pa
import torch
import torch.nn.functional as F
from tqdm import tqdm

from toolkit import __version__
from toolkit.capture import hooks
from toolkit.capture.datasets import Dataset
from toolkit.capture.models import LoadedModel, load_config, load_model
from toolkit.capture.tokens import batch_plan, pad, tokenize
from toolkit.errors import UserError
from toolkit.store.arrow import insert_table
from toolkit.store.warehouse import WRITER_LOCK_WAIT, Warehouse, migrate


@dataclass(frozen=True)
class DeactivateOptions:
    """The LAPE parameters (named as in the authors' code) and how to run; stored whole with the test."""

    top_rate: float = 0.01
    filter_rate: float = 0.95
    activation_bar_ratio: float = 0.95
    controls: int = 3
    seed: int = 0
    batch_size: int = 16
    max_length: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("top_rate", "filter_rate", "activation_bar_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserError(f"--{name.replace('_', '-')} must be between 0 and 1")
        if self.controls < 0 or self.batch_size < 1:
            raise UserError("--controls must be at least 0 and --batch-size at least 1")


NeuronSet = dict[int, list[int]]
"""FFN layer (1..n) -> neuron ids."""


def lape_sets(wh: Warehouse, run: str, o: DeactivateOptions) -> dict[str, NeuronSet]:
    """Each language's LAPE neurons of RUN, by layer."""
    meta = wh.run(run).row
    if meta["site"] != "ffn" or meta["pooling"] != "active":
        raise UserError(
            f"run '{run}' holds {meta['site']} values pooled with {meta['pooling']}; LAPE reads FFN token shares: "
            "extract one with --site ffn --pooling active --layers all"
        )
    rows = wh.sql(
        "select language, layer, neuron from language_specific_neurons(top_rate := ?, filter_rate := ?, "
        "activation_bar_ratio := ?) where run = ? order by language, layer, neuron",
        [o.top_rate, o.filter_rate, o.activation_bar_ratio, run],
    )
    if not rows.height:
        raise UserError(f"run '{run}' has no language-specific neurons at these LAPE settings; raise --top-rate")
    sets: dict[str, NeuronSet] = {}
    for language, layer, neuron in rows.iter_rows():
        sets.setdefault(language, {}).setdefault(int(layer), []).append(int(neuron))
    return sets


def control_set(target: NeuronSet, width: int, rng: np.random.Generator) -> NeuronSet:
    """Random neurons, as many in each layer as TARGET has there."""
    return {layer: sorted(rng.choice(width, size=len(ns), replace=False).tolist()) for layer, ns in target.items()}


def language_nll(loaded: LoadedModel, ids: list[list[int]], rows_by_language: dict[str, np.ndarray], batch_size: int):
    """Per language, (summed next-token NLL, predicted tokens) over its sentences: each position predicts the next
    token of its own sentence; padding is never predicted nor attended to."""
    out = {}
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    for language, rows in rows_by_language.items():
        total, count = 0.0, 0
        for b in batch_plan(lengths[rows], batch_size):
            batch, mask = pad([ids[i] for i in rows[b]], pad_id)
            batch, mask = batch.to(loaded.device), mask.to(loaded.device)
            logits = loaded.model(input_ids=batch, attention_mask=mask).logits[:, :-1].float()
            target, keep = batch[:, 1:], mask[:, 1:].bool()
            nll = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            total += float(nll[keep].double().sum())
            count += int(keep.sum())
        out[language] = (total, count)
    return out


def check_causal_lm(model: str) -> None:
    """Refuse a checkpoint without a language-modelling head (next-token logits are what these tests read)."""
    config, _ = load_config(model)
    if not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in (config.architectures or [])):
        raise UserError(
            f"model {model} is not a causal LM ({', '.join(config.architectures or ['?'])}); pass the language "
            "model the run was extracted from"
        )


@dataclass
class DeactivationResult:
    deactivation_id: int
    matrix: pl.DataFrame


def deactivate(
    db, model: str, dataset: Dataset, run: str, options: DeactivateOptions | None = None, progress: bool = True
) -> DeactivationResult:
    """Deactivate each language's LAPE neurons of RUN inside MODEL (a causal LM) and measure every language's mean
    next-token NLL on DATASET, against the unablated model and random controls; stored, read back from the view
    `deactivation_matrix`."""
    o = options or DeactivateOptions()
    migrate(db)
    with Warehouse(db, read_only=True) as wh:
        sets = lape_sets(wh, run, o)
    check_causal_lm(model)
    loaded = load_model(model, o.device, causal_lm=True)
    ffn = hooks.ffn_modules(loaded.model, loaded.n_layers)
    width = hooks.ffn_width(loaded.model)
    ids, _ = tokenize(
        loaded, dataset.frame["text"].to_list(), min(o.max_length or loaded.max_length, loaded.max_length)
    )
    if any(len(x) < 2 for x in ids):
        raise UserError("every sentence needs at least two tokens (one predicted from another); remove the others")
    languages = dataset.frame["language"].to_numpy()
    by_language = {lang: np.flatnonzero(languages == lang) for lang in sorted(set(languages))}
    rng = np.random.default_rng(o.seed)
    plan: list[tuple[str, str | None, NeuronSet]] = [("baseline", None, {})]
    for language, target in sets.items():
        plan.append(("language", language, target))
        plan += [("control", language, control_set(target, width, rng)) for _ in range(o.controls)]
    results = []
    bar = tqdm(total=len(plan), unit="set", desc="deactivate", disable=not progress, file=sys.stderr)
    with torch.inference_mode():
        for _kind, _language, chosen in plan:
            with zeroed(ffn, chosen):
                results.append(language_nll(loaded, ids, by_language, o.batch_size))
            bar.update(1)
    bar.close()
    with Warehouse(db, create=False, lock_wait=WRITER_LOCK_WAIT) as wh:
        with wh.transaction() as con:
            did = wh.next_id("deactivations", "deactivation_id")
            con.execute(
                "insert into deactivations values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [did, wh.run_id(run), model, str(dataset.path), dataset.n_sentences, o.controls, o.seed,
                 json.dumps(asdict(o)), datetime.now(), __version__],
            )  # fmt: skip
            flat = [sorted((layer, n) for layer, ns in chosen.items() for n in ns) for _, _, chosen in plan]
            insert_table(
                con,
                "deactivation_sets",
                pa.table(
                    {
                        "set_index": pa.array(range(len(plan)), pa.int32()),
                        "kind": [k for k, _, _ in plan],
                        "language": pa.array([lang for _, lang, _ in plan], pa.string()),
                        "layers": pa.array([[layer for layer, _ in f] for f in flat], pa.list_(pa.uint8())),
                        "neurons": pa.array([[n for _, n in f] for f in flat], pa.list_(pa.uint16())),
                    }
                ),
                "deactivation_id",
                did,
            )
            nll = [(i, lang, s, c) for i, r in enumerate(results) for lang, (s, c) in r.items()]
            insert_table(
                con,
                "deactivation_nll",
                pa.table(
                    {
                        "set_index": pa.array([i for i, *_ in nll], pa.int32()),
                        "language": [lang for _, lang, _, _ in nll],
                        "nll_sum": pa.array([s for *_, s, _ in nll], pa.float64()),
                        "n_tokens": pa.array([c for *_, c in nll], pa.int64()),
                    }
                ),
                "deactivation_id",
                did,
            )
        matrix = wh.sql(
            "select * from deactivation_matrix where deactivation_id = ? order by deactivated_language, "
            "evaluated_language",
            [did],
        )
    return DeactivationResult(did, matrix)


@contextmanager
def zeroed(ffn: list, chosen: NeuronSet) -> Iterator[None]:
    """Inside the context, the CHOSEN neurons of each FFN layer's value are 0 at every position (`hooks.edit`)."""
    with ExitStack() as stack:
        for layer, neurons in chosen.items():
            index = torch.tensor(neurons, dtype=torch.long)
            stack.enter_context(
                hooks.edit(ffn[layer - 1], lambda out, index=index: out.index_fill_(-1, index.to(out.device), 0))
            )
        yield
