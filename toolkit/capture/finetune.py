"""Fine-tuning a sequence classifier with cross-entropy over the dataset's labels (paper Section 2.1).

`--head default` trains the architecture's own classification head. `--head linear` trains the paper's
head, a single linear layer over the [CLS] vector of the last layer; to save it as an ordinary Hugging
Face checkpoint that any tool loads with `from_pretrained`, the linear map W x + b is folded into the
architecture's head (dense -> tanh -> projection, for XLM-R/RoBERTa and BERT) as
(1/eps) tanh(eps (W x + b)), which equals W x + b to within eps^2 |Wx + b|^3 / 3 (eps = 1e-4: below
float32 resolution for any sensible logit).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn
from tqdm import tqdm

from toolkit import __version__
from toolkit.capture import hooks
from toolkit.capture.datasets import read_dataset
from toolkit.capture.options import (
    DataSpec,
    FinetuneOptions,  # noqa: F401 - re-exported for library callers
)
from toolkit.defaults import FINETUNE_RECORD
from toolkit.errors import UserError
from toolkit.store.query import json_value

EPS = 1e-4


@dataclass
class TrainResult:
    losses: list[float]  # mean training loss per epoch
    train_accuracy: float  # accuracy on the training sentences after the last epoch
    history: list[dict] = field(default_factory=list)  # per epoch: loss and, with held-out data, scores per language


class LinearHead(nn.Module):
    """logits = W h[CLS] + b over the encoder's last hidden state: the paper's classifier."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.linear = nn.Linear(model.config.hidden_size, model.config.num_labels)

    def forward(self, input_ids, attention_mask):
        hidden = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.linear(hidden[:, 0])


def logits_of(model: nn.Module, input_ids, attention_mask) -> torch.Tensor:
    if isinstance(model, LinearHead):
        return model(input_ids, attention_mask)
    return model(input_ids=input_ids, attention_mask=attention_mask).logits


def train_classifier(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    labels: list[str],
    epochs: int = 3,
    lr: float = 2e-5,
    batch_size: int = 16,
    max_length: int = 128,
    seed: int = 0,
    progress: bool = True,
    device: str = "cpu",
    evaluate=None,
) -> TrainResult:
    """Train MODEL (a classifier, or a LinearHead around one) in place with cross-entropy on TEXTS and gold
    LABELS (names from config.label2id); each batch is padded to its own longest sentence. Deterministic for
    SEED on CPU. The progress bar counts batches (loss so far and time left); EVALUATE(predict), when given,
    is called after each epoch with a function mapping texts to predicted label names, and returns rows of
    held-out scores kept in the result's history."""
    from toolkit.capture.tokens import pad

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    config = model.model.config if isinstance(model, LinearHead) else model.config
    y = torch.tensor([config.label2id[l] for l in labels])
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def logits(rows) -> torch.Tensor:
        input_ids, mask = pad([ids[int(r)] for r in rows], pad_id)
        return logits_of(model, input_ids.to(device), mask.to(device))

    names = [config.id2label[i] for i in range(len(config.id2label))]

    def predict(new_texts: list[str]) -> list[str]:
        new_ids = tokenizer(new_texts, truncation=True, max_length=max_length)["input_ids"]
        out = []
        with torch.inference_mode():
            for i in range(0, len(new_ids), 64):
                batch, mask = pad(new_ids[i : i + 64], pad_id)
                out += logits_of(model, batch.to(device), mask.to(device)).argmax(-1).cpu().tolist()
        return [names[k] for k in out]

    model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    losses: list[float] = []
    history: list[dict] = []
    n_batches = -(-len(texts) // batch_size)
    bar = tqdm(
        total=epochs * n_batches,
        desc="fine-tune",
        unit="batch",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(texts))
        total, seen = 0.0, 0
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            loss = loss_fn(logits(rows), y[rows].to(device))
            if not torch.isfinite(loss):
                raise UserError(
                    f"training diverged (loss {loss.item()} in epoch {epoch}); nothing was saved: lower --lr "
                    f"(it is {optimiser.param_groups[0]['lr']:g})"
                )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(rows)
            seen += len(rows)
            bar.update(1)
            bar.set_postfix_str(f"epoch {epoch}/{epochs}, loss {total / seen:.3f}", refresh=False)
        losses.append(total / len(texts))
        if not all(bool(torch.isfinite(w).all()) for w in model.parameters()):
            raise UserError(
                f"training diverged (weights not finite after epoch {epoch}); nothing was saved: lower --lr "
                f"(it is {optimiser.param_groups[0]['lr']:g})"
            )
        entry = {"epoch": epoch, "loss": losses[-1]}
        if evaluate is not None:
            model.eval()
            entry["scores"] = evaluate(predict)
            mean_f1 = sum(r["macro_f1"] for r in entry["scores"]) / max(len(entry["scores"]), 1)
            bar.write(
                f"epoch {epoch}: loss {losses[-1]:.3f}, held-out macro-F1 "
                + ", ".join(f"{r['language']} {r['macro_f1']:.3f}" for r in entry["scores"])
                + f" (mean {mean_f1:.3f})"
            )
        history.append(entry)
    bar.close()
    model.eval()
    with torch.inference_mode():
        pred = torch.cat([logits(range(i, min(i + 64, len(texts)))).argmax(-1).cpu() for i in range(0, len(texts), 64)])
    model.to("cpu")
    return TrainResult(losses=losses, train_accuracy=float((pred == y).float().mean()), history=history)


def linear_head_families() -> str:
    """The families whose head a linear head can be folded into (`hooks.FAMILIES`), for messages."""
    return ", ".join(sorted(k for k, f in hooks.FAMILIES.items() if f.head))


def fold_linear_head(head: LinearHead) -> nn.Module:
    """The wrapped classifier with its own head set to compute HEAD's linear map (see the module docstring)."""
    model = head.model
    w, b = head.linear.weight.detach(), head.linear.bias.detach()
    n_labels, hidden = w.shape
    found = hooks.head_modules(model)
    if found is None:
        raise UserError(
            f"--head linear is available for {linear_head_families()}, not {model.config.model_type}; "
            "use --head default"
        )
    dense, proj = found
    with torch.no_grad():
        dense.weight.zero_()
        dense.bias.zero_()
        dense.weight[:n_labels] = EPS * w
        dense.bias[:n_labels] = EPS * b
        proj.weight.zero_()
        proj.bias.zero_()
        proj.weight[:, :n_labels] = torch.eye(n_labels) / EPS
    return model


@dataclass
class Finetuned:
    result: TrainResult
    record: dict  # what FINETUNE_RECORD holds


def finetune(
    base: str,
    train: pl.DataFrame,
    out: str | Path,
    options: FinetuneOptions | None = None,
    held_out: pl.DataFrame | None = None,
    source: dict | None = None,
    progress: bool = True,
) -> Finetuned:
    """Fine-tune checkpoint BASE on TRAIN (text, language, label) and save a classifier checkpoint (with
    id2label) and its record to OUT; HELD_OUT sentences, when given, are scored per language after each epoch.

    OUT is checked for writability before training, and the checkpoint is written to a temporary folder that
    replaces OUT only when complete. SOURCE (data file, its sha256, the options it was read with) goes into
    the record."""
    o = options or FinetuneOptions()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from toolkit.capture.models import load_config, loading, pick_device, quiet_transformers
    from toolkit.capture.tokens import check_unknown, tokenization, unknown_shares
    from toolkit.store.evaluation import score
    from toolkit.store.output import atomic_dir, check_output_dir

    check_output_dir(out, "checkpoint")
    texts, labels = train["text"].to_list(), train["label"].to_list()
    config, reference = load_config(base)
    names = sorted(set(labels))
    if len(names) < 2:
        raise UserError(f"the training data has a single label ({names[0]}); fine-tuning needs at least two")
    if o.head == "linear" and not (config.model_type in hooks.FAMILIES and hooks.FAMILIES[config.model_type].head):
        raise UserError(
            f"--head linear is available for {linear_head_families()}, not {config.model_type}; use --head default"
        )
    if held_out is not None:
        unknown = sorted(set(held_out["label"].unique().to_list()) - set(names))
        if unknown:
            raise UserError(
                f"held-out label(s) {', '.join(unknown)} never occur in the training sentences; "
                "the classifier could not predict them"
            )
    quiet_transformers()
    torch.manual_seed(o.seed)
    with loading(base):
        tokenizer = AutoTokenizer.from_pretrained(reference)
        model = AutoModelForSequenceClassification.from_pretrained(
            reference,
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)},
            ignore_mismatched_sizes=True,
        )
    ids = tokenizer(texts, truncation=True, max_length=o.max_length)["input_ids"]
    cut = np.zeros(len(ids), dtype=bool)  # only the unknown share is read here
    counts = tokenization(tokenizer, texts, ids, cut, train["language"].to_list())
    check_unknown(unknown_shares(counts), o.allow_unknown)

    def evaluate(predict) -> list[dict]:
        predicted = predict(held_out["text"].to_list())
        return score(held_out["language"].to_list(), held_out["label"].to_list(), predicted).to_dicts()

    trainable = LinearHead(model) if o.head == "linear" else model
    result = train_classifier(
        trainable,
        tokenizer,
        texts,
        labels,
        o.epochs,
        o.lr,
        o.batch_size,
        o.max_length,
        o.seed,
        progress,
        str(pick_device(o.device)),
        evaluate=evaluate if held_out is not None and held_out.height else None,
    )
    if o.head == "linear":
        model = fold_linear_head(trainable)
    model.config.architectures = [type(model).__name__]
    record = {
        "base_model": reference,
        "data": source or {},
        "options": asdict(o),
        "n_train": len(texts),
        "train_languages": sorted(set(train["language"].to_list())),
        "n_held_out": 0 if held_out is None else held_out.height,
        "labels": names,
        "head": head_note(o.head, config.model_type),
        "history": result.history,
        "train_accuracy": result.train_accuracy,
        "created_at": datetime.now().isoformat(timespec="seconds"),
        "toolkit_version": __version__,
    }
    with atomic_dir(out, "checkpoint") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / FINETUNE_RECORD).write_text(
            json.dumps(json_value(record), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return Finetuned(result, record)


def head_note(head: str, model_type: str) -> str:
    """What the saved classification head is, in words (BERT's pooler is repurposed by --head linear)."""
    if head == "default":
        return HEAD_NOTES["default"]
    return HEAD_NOTES.get(f"linear-{model_type}", HEAD_NOTES["linear"])


HEAD_NOTES = {
    "default": "the architecture's own classification head, trained",
    "linear": "one linear layer over [CLS], folded into the architecture's head as (1/eps) tanh(eps (W x + b))",
    "linear-bert": "one linear layer over [CLS], folded into BERT's head through its pooler: the pooler's dense "
    "layer now carries the linear map, so pooler_output is not the pretrained pooler's output",
}


def store_record(wh, checkpoint: str | Path, record: dict) -> int:
    """Insert a fine-tuning RECORD into the warehouse's `finetunes` table; returns its id."""
    with wh.transaction() as con:
        finetune_id = wh.next_id("finetunes", "finetune_id")
        data = record.get("data", {})
        con.execute(
            "insert into finetunes values (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                finetune_id,
                str(Path(checkpoint).resolve()),
                record["base_model"],
                data.get("data_file"),
                data.get("data_sha256"),
                json.dumps(json_value(record)),
                datetime.now(),
                __version__,
            ],
        )
    return finetune_id


@dataclass
class TrainingData:
    """The sentences to train on, the held-out ones to score after each epoch, and what the record says of them."""

    train: pl.DataFrame
    held_out: pl.DataFrame | None
    source: dict


def training_data(
    data: str | Path, spec: DataSpec, train_languages: tuple[str, ...] | None = None, eval_split: str | None = None
) -> TrainingData:
    """Read DATA as SPEC says, keep TRAIN_LANGUAGES (all when None), and read EVAL_SPLIT's sentences (every
    language) as the held-out set, refused when it shares a sentence with the training set."""
    dataset = read_dataset(data, spec)
    frame = dataset.frame
    if train_languages:
        frame = frame.filter(frame["language"].is_in(list(train_languages)))
        if not frame.height:
            raise UserError(
                f"no sentences in {', '.join(train_languages)} (languages: "
                f"{', '.join(sorted(dataset.frame['language'].unique().to_list()))})"
            )
    held_out = None
    if eval_split:
        held_out = read_dataset(data, spec, split_column=spec.split_column or "split", splits=(eval_split,), limit=None)
        held_out = held_out.frame
        overlap = held_out.join(frame, on="sentence_id", how="semi").height
        if overlap:
            raise UserError(
                f"--eval-split {eval_split} shares {overlap} sentence(s) with the training sentences; "
                "choose --split and --eval-split so that they do not overlap"
            )
    source = {
        "data_file": str(dataset.path),
        "data_sha256": dataset.sha256,
        **dataset.options,
        "train_languages": ",".join(train_languages) if train_languages else None,
        "eval_split": eval_split,
    }
    return TrainingData(frame, held_out, source)


def train_language_model(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 16,
    max_length: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train MODEL (a causal LM) in place on next-token prediction over TEXTS for EPOCHS epochs (a count, not a
    time: the same model on every machine); padding is neither attended to nor predicted. Returns the mean loss
    per epoch."""
    from toolkit.capture.tokens import pad

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    losses: list[float] = []
    bar = tqdm(total=epochs, desc="train LM", unit="epoch", disable=not progress, file=sys.stderr)
    model.train()
    for _ in range(epochs):
        total, seen = 0.0, 0
        order = rng.permutation(len(ids))
        for b in range(0, len(ids), batch_size):
            rows = order[b : b + batch_size]
            batch, mask = pad([ids[int(r)] for r in rows], pad_id)
            labels = batch.masked_fill(mask == 0, -100)
            loss = model(input_ids=batch, attention_mask=mask, labels=labels).loss
            if not torch.isfinite(loss):
                raise UserError(f"training diverged (loss {loss.item()}); lower the learning rate (it is {lr:g})")
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(rows)
            seen += len(rows)
        losses.append(total / seen)
        bar.update(1)
        bar.set_postfix_str(f"loss {losses[-1]:.3f}", refresh=False)
    bar.close()
    model.eval()
    return losses
