"""Causal tests: ablate chosen neurons inside the model and measure what its predictions lose.

The paper's Discussion asks whether polyglot neurons are "not only correlated with, but also necessary
for" emotion prediction. A forward hook on the output of block L (hidden_states[L]; 0 = the embeddings)
overwrites the chosen neurons at the [CLS] position (or every position) with zero or with their mean
activation from the run (per language or pooled); the data is re-predicted under the target set, under
random control sets of the same size from the same layer, and with nothing ablated. Every prediction is
stored, and the scores come from the SQL views in `sql/views/030_evaluation.sql`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import polars as pl
import pyarrow as pa
import torch
from torch import nn
from tqdm import tqdm

from toolkit import __version__
from toolkit.capture import hooks
from toolkit.capture.datasets import Dataset, read_dataset
from toolkit.capture.models import LoadedModel, load_model
from toolkit.capture.options import DataSpec
from toolkit.capture.tokens import batch_plan, pad, tokenize
from toolkit.causal.options import AblateOptions  # noqa: F401 - re-exported for library callers
from toolkit.causal.replay import Replay, lower_modules
from toolkit.errors import UserError
from toolkit.stats.analysis import top_variance_neurons
from toolkit.store.arrow import insert_table
from toolkit.store.query import execute_read_only
from toolkit.store.warehouse import WRITER_LOCK_WAIT, Warehouse, migrate


@contextmanager
def ablated(module: nn.Module, neurons: list[int], positions: str, values: dict) -> Iterator[None]:
    """Overwrite NEURONS of MODULE's output at the [CLS] position or all positions with values["current"]
    (a tensor, one value per neuron) for every forward pass inside the context (`hooks.edit`)."""
    index = torch.tensor(neurons, dtype=torch.long)

    def overwrite(hidden: torch.Tensor) -> None:
        if len(neurons):
            v = values["current"].to(device=hidden.device, dtype=hidden.dtype)
            where = (slice(None), 0 if positions == "cls" else slice(None), index.to(hidden.device))
            hidden[where] = v

    with hooks.edit(module, overwrite):
        yield


@dataclass
class Prepared:
    """Tokenized data in batches that each hold one language (so per-language means apply)."""

    batches: list[np.ndarray]
    batch_language: list[str]
    token_ids: list[list[int]]


def prepare(loaded: LoadedModel, dataset: Dataset, batch_size: int, max_length: int | None) -> Prepared:
    frame = dataset.frame
    ids, _ = tokenize(loaded, frame["text"].to_list(), min(max_length or loaded.max_length, loaded.max_length))
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    languages = frame["language"].to_numpy()
    batches, batch_language = [], []
    for language in sorted(set(languages.tolist())):
        rows = np.flatnonzero(languages == language)
        for b in batch_plan(lengths[rows], batch_size):
            batches.append(rows[b])
            batch_language.append(language)
    return Prepared(batches, batch_language, ids)


def predict(
    loaded: LoadedModel,
    prep: Prepared,
    module: nn.Module | None = None,
    neurons: list[int] | None = None,
    positions: str = "cls",
    means: dict[str, torch.Tensor] | None = None,
    bar=None,
) -> np.ndarray:
    """Predicted class ids of every sentence, with NEURONS ablated at MODULE (nothing when NEURONS is None)."""
    return predict_sets(loaded, prep, module, [neurons or []], positions, [means], bar, replay=None)[0]


def predict_sets(
    loaded: LoadedModel,
    prep: Prepared,
    module: nn.Module | None,
    sets: list[list[int]],
    positions: str,
    means: list[dict[str, torch.Tensor] | None],
    bar=None,
    replay: Replay | None = None,
) -> list[np.ndarray]:
    """Predicted class ids of every sentence under each of SETS ablated at MODULE (MEANS: per set, the values
    per language for mean ablation, or None for zero). Batch by batch: with REPLAY, the first set's pass
    records the blocks below the layer and every other set's pass replays them (the first set must be the
    empty one, whose pass is the plain model's)."""
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    out = [np.empty(len(prep.token_ids), dtype=np.int64) for _ in sets]
    values = {"current": torch.zeros(0)}
    made = []  # (set, rows, predicted ids still on the device): read back once, after the last batch
    with torch.inference_mode():
        for rows, language in zip(prep.batches, prep.batch_language):
            ids, mask = pad([prep.token_ids[r] for r in rows], pad_id)
            ids, mask = ids.to(loaded.device), mask.to(loaded.device)
            for k, (chosen, chosen_means) in enumerate(zip(sets, means)):
                values["current"] = chosen_means[language] if chosen_means is not None else torch.zeros(len(chosen))
                stage = nullcontext() if replay is None else replay.recording() if k == 0 else replay.replaying()
                edit = ablated(module, chosen, positions, values) if chosen else nullcontext()
                with stage, edit:
                    logits = loaded.model(input_ids=ids, attention_mask=mask).logits
                made.append((k, rows, logits.argmax(-1)))
                if bar is not None:
                    bar.update(len(rows))
        for k, rows, predicted in made:  # the first waits for the device, the rest are copies
            out[k][rows] = predicted.cpu().numpy()
    return out


def choose_neurons(
    wh: Warehouse, run: str, layer: int, hidden: int, neurons: str | None, query: str | None, top_variance: int | None
) -> tuple[list[int], str]:
    """The target set from one of --neurons, --query, --top-variance (AblateOptions checks that exactly one is
    given); checked against the layer."""
    if neurons is not None:
        try:
            chosen = [int(x) for x in neurons.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"--neurons {neurons!r}: give comma-separated neuron numbers, e.g. 12,40,311") from None
        selection = f"--neurons {neurons}"
        if not chosen:
            raise UserError("--neurons names no neuron; give comma-separated neuron numbers, e.g. 12,40,311")
    elif query is not None:
        df = execute_read_only(wh.con, query)
        if "neuron" not in df.columns:
            raise UserError(
                f"--query must return a column named neuron (it returned: {', '.join(df.columns) or 'nothing'})"
            )
        column = df["neuron"].drop_nulls()
        if not column.dtype.is_integer():
            raise UserError(
                f"--query returned neuron as {column.dtype}, not whole numbers; cast it (neuron::INTEGER) or fix "
                "the query"
            )
        chosen = [int(x) for x in column.to_list()]
        selection = f"--query {query}"
    else:
        if top_variance < 1:
            raise UserError("--top-variance must be at least 1")
        chosen = top_variance_neurons(wh, run, layer, top_variance)["neuron"].to_list()
        selection = f"--top-variance {top_variance}"
    if not chosen:
        raise UserError(f"{selection} chose no neuron; an ablation needs at least one")
    bad = sorted({n for n in chosen if not 0 <= n < hidden})
    if bad:
        raise UserError(f"neuron(s) {', '.join(map(str, bad[:5]))} out of range for layer {layer} (0..{hidden - 1})")
    return sorted(set(chosen)), selection


def control_sets(target: list[int], hidden: int, n: int, seed: int) -> list[list[int]]:
    """N random sets of len(TARGET) neurons from the same layer, disjoint from the target (seeded)."""
    pool = np.setdiff1d(np.arange(hidden), target)
    if len(target) > len(pool):
        raise UserError(f"the target set has {len(target)} of {hidden} neurons: too few others for control sets")
    rng = np.random.default_rng(seed)
    return [sorted(rng.choice(pool, size=len(target), replace=False).tolist()) for _ in range(n)]


@dataclass
class AblationResult:
    ablation_id: int
    summary: pl.DataFrame  # ablation_summary rows, one per language
    recall: pl.DataFrame  # ablation_recall rows
    warnings: list[str]


def run_inputs(db, run: str, model: str | None, data, spec: DataSpec) -> tuple[str, Dataset]:
    """MODEL and the data to ablate: the given ones, else the run's own model and data file. The run's own data
    is read as the run read it: its columns (unless SPEC names other columns) and its splits (unless SPEC names
    splits or a limit). Ablation writes to the warehouse, so an older one is migrated here first."""
    with Warehouse(db, create=False) as wh:
        row = wh.run(run).row
    if model is None:
        if not row["model"]:
            raise UserError(f"run '{run}' was imported (neurons load), so it names no model; pass MODEL")
        model = row["model"]
    if data is not None:
        return model, read_dataset(data, spec)
    stored = DataSpec.from_stored(json.loads(row["settings"]))
    columns = {c: getattr(stored if spec.default_columns() else spec, c) for c in DataSpec.COLUMNS}
    splits = spec.splits or (stored.splits if not spec.limit else None)
    return model, read_dataset(row["data_file"], DataSpec(**columns, splits=splits, limit=spec.limit))


def check_sentences(wh: Warehouse, run: str, dataset: Dataset) -> None:
    """Refuse DATASET unless each of its sentences is one of RUN's (same id, text, language and label): the
    run's neurons and means describe those sentences (--data-override accepts others)."""
    stored = wh.sql(
        "select sentence_id, text, language, label from sentences s join runs r using (run_id) where r.name = ?", [run]
    )
    mine = dataset.frame.select("sentence_id", "text", "language", "label")
    differ = mine.join(stored, on=["sentence_id", "text", "language", "label"], how="anti")
    if differ.height:
        first = differ.row(0, named=True)
        raise UserError(
            f"{dataset.path.name}: {differ.height} of {mine.height} sentences differ from run '{run}' (e.g. data row "
            f"{first['sentence_id'] + 1}: {first['text'][:40]!r}); ablate the run's own data, or pass --data-override"
        )


def rank_in_words(summary: pl.DataFrame) -> str:
    """Where the target set's drop in macro-F1 ranks among the random controls, per language, in a sentence; first,
    the languages where the unablated model is at chance on these sentences (view `ablation_summary`,
    `baseline_at_chance`), where no drop can show."""
    at_chance = summary.filter("baseline_at_chance").sort("language") if "baseline_at_chance" in summary.columns else []
    warning = (
        f"the model is at chance on these sentences in {', '.join(at_chance['language'])} (its accuracy is within "
        "the 95 % bound of guessing), so no drop can show there; "
        if len(at_chance)
        else ""
    )
    if not summary.height or int(summary["n_controls"].max() or 0) == 0:
        return warning + "no random control sets: nothing to rank the target set against"
    n = int(summary["n_controls"].max()) + 1
    firsts = summary.filter(pl.col("target_rank") == 1)["language"].to_list()
    parts = [
        f"the target set's drop in macro-F1 is the largest of {n} sets (the target and {n - 1} random ones) in "
        f"{len(firsts)} of {summary.height} languages" + (f" ({', '.join(firsts)})" if firsts else "")
    ]
    others = summary.filter(pl.col("target_rank") > 1).sort("language")
    if others.height:
        parts.append(
            "elsewhere it ranks "
            + ", ".join(f"{r} of {n} in {lang}" for lang, r in others.select("language", "target_rank").iter_rows())
        )
    chance = 1 / n
    parts.append(f"a random set would be the largest with probability 1/{n} = {chance:.2f} per language")
    return warning + "; ".join(parts) + "."


@dataclass
class Plan:
    """What an ablation runs, checked against the run and the model before any forward pass."""

    loaded: LoadedModel
    selection: str  # how the target set was chosen
    sets: list[tuple[str, list[int]]]  # (kind, neurons): baseline, target, controls
    means: dict[str, torch.Tensor] | None  # per language of the data, every neuron's mean (mode mean)
    warnings: list[str]


def _check_model(run: str, meta: dict, loaded: LoadedModel, dataset: Dataset, layer: int, model: str) -> list[str]:
    """Refuse a model that cannot be ablated with RUN's neurons; the warnings worth a line."""
    if loaded.class_names is None:
        raise UserError(f"model {model} has no classification head; ablation needs a sequence classifier")
    if not 0 <= layer <= loaded.n_layers:
        raise UserError(f"layer {layer} is out of range for this model (0..{loaded.n_layers})")
    if meta["hidden_size"] != loaded.hidden_size:
        raise UserError(
            f"run '{run}' has {meta['hidden_size']} neurons per layer but the model has "
            f"{loaded.hidden_size}; use the run extracted from this model"
        )
    unknown = sorted(set(dataset.frame["label"].unique().to_list()) - set(loaded.class_names))
    if unknown:
        raise UserError(
            f"label(s) {', '.join(unknown)} in {dataset.path.name} are unknown to the model "
            f"(its id2label: {', '.join(loaded.class_names)}); relabel the data or filter it"
        )
    if meta["model"] and meta["model"] != loaded.reference:
        return [
            f"run '{run}' was extracted from {meta['model']}, not {loaded.reference}: "
            "its neurons and means may not describe this model"
        ]
    return []


def _means(wh: Warehouse, run: str, layer: int, dataset: Dataset, hidden: int, scope: str) -> dict[str, torch.Tensor]:
    """Every neuron's stored mean for each language of DATASET: its own language's, or the pooled one."""
    table = wh.sql(
        "select language, neuron, mean from activation_means where run = ? and layer = ? "
        "order by language nulls first, neuron",
        [run, layer],
    )
    languages = set(dataset.frame["language"].unique().to_list())
    stored = set(table["language"].drop_nulls().to_list())
    if scope == "language" and not languages <= stored:
        raise UserError(
            f"language(s) {', '.join(sorted(languages - stored))} have no stored means in run "
            f"'{run}'; use --mean-scope pooled"
        )
    if table.filter(pl.col("language").is_null()).height != hidden:
        raise UserError(
            f"run '{run}' does not store all {hidden} neurons of layer {layer}; "
            "mean ablation needs every neuron's mean (use --mode zero)"
        )
    by_language = {
        k[0]: torch.tensor(g.sort("neuron")["mean"].to_numpy(), dtype=torch.float32)
        for k, g in table.group_by("language")
    }
    return {lang: (by_language[lang] if scope == "language" else by_language[None]) for lang in languages}


def plan(wh: Warehouse, model: str, dataset: Dataset, run: str, o: AblateOptions) -> Plan:
    """Check RUN, DATASET and MODEL against each other and choose the target and control sets (user SQL runs in
    the read-only warehouse's sandbox)."""
    meta = wh.run(run).per_sentence("ablate (without --lape)").row
    if meta.get("site") == "ffn":
        raise UserError(
            f"run '{run}' holds feed-forward activations (--site ffn); ablation works on the hidden "
            "states: ablate a run extracted with --site residual"
        )
    if not o.data_override:
        check_sentences(wh, run, dataset)
    if o.layer not in meta["layers"]:
        raise UserError(
            f"run '{run}' has no layer {o.layer} (stored: {', '.join(map(str, meta['layers']))}); "
            "ablate a layer the run holds"
        )
    loaded = load_model(model, o.device)
    warnings = _check_model(run, meta, loaded, dataset, o.layer, model)
    target, selection = choose_neurons(wh, run, o.layer, loaded.hidden_size, o.neurons, o.query, o.top_variance)
    sets = [("baseline", []), ("target", target)] + [
        ("control", c) for c in control_sets(target, loaded.hidden_size, o.controls, o.seed)
    ]
    means = _means(wh, run, o.layer, dataset, loaded.hidden_size, o.mean_scope) if o.mode == "mean" else None
    return Plan(loaded, selection, sets, means, warnings)


def _store(wh: Warehouse, run: str, dataset: Dataset, o: AblateOptions, p: Plan, predictions: list[np.ndarray]) -> int:
    """The ablation, its sets and every prediction, in one transaction; returns the ablation's id."""
    loaded, frame, sets = p.loaded, dataset.frame, p.sets
    mean_scope = o.mean_scope if o.mode == "mean" else None
    settings = {
        "model": loaded.reference,
        "data_file": str(dataset.path),
        **dataset.options,
        **asdict(o),
        "mean_scope": mean_scope,
        "selection": p.selection,
    }
    names = np.asarray(loaded.class_names, dtype=object)
    run_id = wh.run_id(run)
    with wh.transaction() as con:
        ablation_id = wh.next_id("ablations", "ablation_id")
        con.execute(
            "insert into ablations values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                ablation_id,
                run_id,
                loaded.reference,
                str(dataset.path),
                o.layer,
                o.mode,
                mean_scope,
                o.positions,
                p.selection,
                o.controls,
                o.seed,
                frame.height,
                json.dumps(settings),
                datetime.now(),
                __version__,
            ],
        )
        con.executemany(
            "insert into ablation_sets values (?, ?, ?, ?)",
            [[ablation_id, i, kind, chosen] for i, (kind, chosen) in enumerate(sets)],
        )
        rows = pa.table(
            {
                "set_index": np.repeat(np.arange(len(sets), dtype=np.int32), frame.height),
                "sentence_id": np.tile(frame["sentence_id"].to_numpy(), len(sets)),
                "language": np.tile(frame["language"].to_numpy(), len(sets)),
                "gold": np.tile(frame["label"].to_numpy(), len(sets)),
                "predicted": names[np.concatenate(predictions)].astype(str),
            }
        )
        insert_table(con, "ablation_predictions", rows, "ablation_id", ablation_id)
    return ablation_id


def ablate(db, model: str, dataset: Dataset, run: str, options: AblateOptions, progress: bool = True) -> AblationResult:
    """Ablate a neuron set of RUN's layer inside MODEL, re-predict DATASET, store and score every set. The
    warehouse is read (read-only) to plan, not held while the model runs, and written once at the end."""
    o = options
    migrate(db)  # a writing command: migrate an older warehouse first (library callers too)
    with Warehouse(db, read_only=True) as wh:
        p = plan(wh, model, dataset, run, o)
    prep = prepare(p.loaded, dataset, o.batch_size, o.max_length)
    module = hooks.hidden_state_module(p.loaded.model, p.loaded.n_layers, o.layer)
    total = len(p.sets) * dataset.n_sentences
    bar = tqdm(total=total, unit="sent", desc="ablate", disable=not progress, file=sys.stderr)
    chosen = [c for _, c in p.sets]  # the baseline (no neuron) first: its pass records the blocks below
    means = [{lang: m[c] for lang, m in p.means.items()} if p.means is not None else None for c in chosen]
    replay = Replay(lower_modules(p.loaded.model, p.loaded.n_layers, o.layer)) if o.reuse else None
    predictions = predict_sets(p.loaded, prep, module, chosen, o.positions, means, bar, replay)
    bar.close()
    with Warehouse(db, create=False, lock_wait=WRITER_LOCK_WAIT) as wh:
        ablation_id = _store(wh, run, dataset, o, p, predictions)
        summary = wh.sql("select * from ablation_summary where ablation_id = ? order by language", [ablation_id])
        recall = wh.sql("select * from ablation_recall where ablation_id = ? order by language, label", [ablation_id])
    return AblationResult(ablation_id, summary, recall, p.warnings)
