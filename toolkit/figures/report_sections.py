"""The report's tables beyond the paper's findings: how well the tokenizer serves each language, how the model
was fine-tuned, the probe's cross-lingual transfer and top-k test, and LAPE's language-specific neurons per layer
and language. Each reads the view it names (or the fine-tuning record); none computes a statistic itself."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from toolkit.defaults import FINETUNE_RECORD
from toolkit.store.warehouse import Warehouse


@dataclass
class Table:
    key: str
    title: str
    view: str
    frame: pl.DataFrame
    per_layer: bool = True  # False: the table does not depend on the layer (model accuracy, ablations)


def shown_path(path: str, redact: bool) -> str:
    """PATH as a report shows it: whole, or (REDACT) its last component, so a shared report does not reveal the
    author's folders."""
    return Path(path.rstrip("/")).name or path if redact else path


def method_tables(wh: Warehouse, run: str, layer: int, redact: bool = False) -> list[Table]:
    """Every table of this module that the run has data for (REDACT: paths by their last component)."""
    return [
        *_tokenizer(wh, run),
        *_finetune(wh, run, redact),
        *_probe(wh, run, layer),
        *_lape(wh, run),
        *_compared(wh, run),
    ]


def _tokenizer(wh: Warehouse, run: str) -> list[Table]:
    fitness = wh.tokenizer_fitness(run)
    if not fitness.height:
        return []
    title = (
        "Tokenizer fitness per language: the share of unknown tokens, and fertility (tokens per word of the texts "
        f"not cut) against the best-served language's; underserved above {fitness['limit'][0]:g} times it"
    )
    columns = ["language", "n_texts", "unknown_share", "fertility", "fertility_ratio", "tokens_per_char"]
    frame = fitness.select(*columns, "unspaced", "underserved")
    return [Table("tokenizer", title, "tokenizer_fitness", frame, per_layer=False)]


def finetune_record(wh: Warehouse, model: str | None) -> dict | None:
    """How MODEL was fine-tuned: its latest record in the warehouse (`neurons finetune --db`), else the record saved
    in the checkpoint folder (neurons-finetune.json); None for a model this toolkit did not fine-tune."""
    if not model:
        return None
    folder = Path(model).expanduser()
    stored = wh.sql(
        "select record from finetunes where checkpoint = ? order by finetune_id desc limit 1",
        [str(folder.resolve()) if folder.exists() else model],
    )
    if stored.height:
        return json.loads(stored["record"][0])
    saved = folder / FINETUNE_RECORD
    try:
        return json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else None
    except (OSError, ValueError):
        return None


def _finetune(wh: Warehouse, run: str, redact: bool) -> list[Table]:
    record = finetune_record(wh, wh.run(run).model)
    if record is None:
        return []
    o = record.get("options", {})
    last = (record.get("history") or [{}])[-1]
    scores = ", ".join(
        f"{s['language']} {s['macro_f1']:.3f}" for s in last.get("scores") or [] if s.get("macro_f1") is not None
    )
    rows = [
        ("base model", shown_path(str(record.get("base_model", "")), redact)),
        ("trained on", f"{record.get('n_train')} sentences in {', '.join(record.get('train_languages', []))}"),
        ("labels", ", ".join(record.get("labels", []))),
        ("head", record.get("head")),
        ("epochs, learning rate, batch size", f"{o.get('epochs')}, {o.get('lr')}, {o.get('batch_size')}"),
        ("max length, seed", f"{o.get('max_length')}, {o.get('seed')}"),
        ("training accuracy", record.get("train_accuracy")),
        ("last epoch's loss", last.get("loss")),
        (
            f"held-out macro-F1 after the last epoch ({record.get('n_held_out', 0)} sentences)",
            scores or "none held out",
        ),
        ("data", shown_path(str((record.get("data") or {}).get("data_file") or ""), redact)),
    ]
    frame = pl.DataFrame(
        {"setting": [k for k, _ in rows], "value": ["" if v is None else str(v) for _, v in rows]}, strict=False
    )
    return [Table("finetune", "How the model was fine-tuned (its record)", "finetune_epochs", frame, per_layer=False)]


def _probe(wh: Warehouse, run: str, layer: int) -> list[Table]:
    scores = wh.sql(
        "select train_language, test_language, accuracy, majority_accuracy, selectivity from probe_scores "
        "where run = ? and layer = ? order by train_language = 'all' desc, train_language, test_language",
        [run, layer],
    )
    if not scores.height:
        return []
    order = scores["train_language"].unique(maintain_order=True).to_list()
    transfer = scores.pivot(on="test_language", index="train_language", values="accuracy").sort(
        pl.col("train_language").replace_strict({n: i for i, n in enumerate(order)})
    )
    tables = [
        Table(
            "probe-transfer",
            "Probe transfer: accuracy on each test language's held-out sentences (columns) of the probe trained on "
            "each train language (rows; all = every train language)",
            "probe_scores",
            transfer,
        ),
        Table(
            "probe-scores",
            "Probe accuracy, always answering the most frequent training label (majority), and selectivity "
            "(accuracy minus the control task's)",
            "probe_scores",
            scores,
        ),
    ]
    topk = wh.sql(
        "select k, accuracy, control_mean, control_min, control_max, n_controls, p_value, full_accuracy, "
        "majority_accuracy, informative from probe_topk where run = ? and layer = ? order by k",
        [run, layer],
    )
    if topk.height:
        tables.append(
            Table(
                "probe-topk",
                "Probes on the top-k neurons by weight mass against random k-sets (p: share of random sets "
                "scoring at least as well; informative: the probe on every neuron beats the majority label by more "
                "than chance, so its ranking is evidence)",
                "probe_topk",
                topk,
            )
        )
    return tables


def _lape(wh: Warehouse, run: str) -> list[Table]:
    if not wh.scalar("select count(*) from activation_probability where run = ?", [run]):
        return []
    counts = wh.sql(
        "select layer, language, count(*) as n from language_specific_neurons() where run = ? group by all "
        "order by layer, language",
        [run],
    )
    if not counts.height:
        return []
    wide = counts.pivot(on="language", index="layer", values="n").fill_null(0).sort("layer")
    title = (
        "LAPE language-specific neurons per layer and language (the authors' defaults: top 1 % by entropy, "
        "model-wide cuts; a neuron specific to two languages counts in both)"
    )
    return [Table("lape", title, "language_specific_neurons", wide, per_layer=False)]


def _compared(wh: Warehouse, run: str) -> list[Table]:
    """Per stored comparison that involves RUN (`neurons compare`), its debiased CKA between layers."""
    pairs = wh.sql(
        "select distinct run_a, run_b, n_shared from run_comparison where run_a = ? or run_b = ? order by all",
        [run, run],
    )
    tables = []
    for i, (a, b, n) in enumerate(pairs.iter_rows(), start=1):
        cka = wh.sql(
            "select layer_a, layer_b, cka_debiased from run_comparison where run_a = ? and run_b = ? order by all",
            [a, b],
        )
        wide = cka.pivot(on="layer_b", index="layer_a", values="cka_debiased")
        wide = wide.rename({c: f"{b} layer {c}" if c != "layer_a" else f"{a} layer" for c in wide.columns})
        title = (
            f"Compared with {b if a == run else a}: debiased linear CKA between the layers of {a} (rows) and {b} "
            f"(columns) on {n} shared sentences (about 0 for unrelated representations; plain CKA in the view)"
        )
        tables.append(Table(f"compared-{i}", title, "run_comparison", wide, per_layer=False))
    return tables
