"""Fine-tuning a sequence classifier with cross-entropy over the dataset's labels (paper Section 2.1).

`--head default` trains the architecture's own classification head. `--head linear` trains the paper's
head, a single linear layer over the [CLS] vector of the last layer; to save it as an ordinary Hugging
Face checkpoint that any tool loads with `from_pretrained`, the linear map W x + b is folded into the
architecture's head (dense -> tanh -> projection, for XLM-R/RoBERTa and BERT) as
(1/eps) tanh(eps (W x + b)), which equals W x + b to within eps^2 |Wx + b|^3 / 3 (eps = 1e-4: below
float32 resolution for any sensible logit).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from toolkit.errors import UserError

EPS = 1e-4


@dataclass
class TrainResult:
    losses: list[float]  # mean training loss per epoch
    train_accuracy: float  # accuracy on the training sentences after the last epoch


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
) -> TrainResult:
    """Train MODEL (a classifier, or a LinearHead around one) in place with cross-entropy on TEXTS and gold
    LABELS (names from config.label2id); each batch is padded to its own longest sentence. Deterministic for
    SEED on CPU."""
    from toolkit.tokens import pad

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    config = model.model.config if isinstance(model, LinearHead) else model.config
    y = torch.tensor([config.label2id[l] for l in labels])
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def logits(rows) -> torch.Tensor:
        input_ids, mask = pad([ids[int(r)] for r in rows], pad_id)
        return logits_of(model, input_ids.to(device), mask.to(device))

    model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    losses: list[float] = []
    model.train()
    bar = tqdm(range(epochs), desc="fine-tune", unit="epoch", disable=not progress, file=sys.stderr)
    for _ in bar:
        order = rng.permutation(len(texts))
        total = 0.0
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            loss = loss_fn(logits(rows), y[rows].to(device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(rows)
        losses.append(total / len(texts))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    with torch.inference_mode():
        pred = torch.cat([logits(range(i, min(i + 64, len(texts)))).argmax(-1).cpu() for i in range(0, len(texts), 64)])
    model.to("cpu")
    return TrainResult(losses=losses, train_accuracy=float((pred == y).float().mean()))


def fold_linear_head(head: LinearHead) -> nn.Module:
    """The wrapped classifier with its own head set to compute HEAD's linear map (see the module docstring)."""
    model = head.model
    w, b = head.linear.weight.detach(), head.linear.bias.detach()
    n_labels, hidden = w.shape
    if model.config.model_type in ("xlm-roberta", "roberta", "camembert"):
        dense, proj = model.classifier.dense, model.classifier.out_proj
    elif model.config.model_type == "bert":
        dense, proj = model.base_model.pooler.dense, model.classifier
    else:
        raise UserError(
            f"--head linear is available for XLM-R, RoBERTa and BERT, not {model.config.model_type}; use --head default"
        )
    with torch.no_grad():
        dense.weight.zero_()
        dense.bias.zero_()
        dense.weight[:n_labels] = EPS * w
        dense.bias[:n_labels] = EPS * b
        proj.weight.zero_()
        proj.bias.zero_()
        proj.weight[:, :n_labels] = torch.eye(n_labels) / EPS
    return model


@dataclass(frozen=True)
class FinetuneOptions:
    """How to fine-tune (paper Section 2.1); checked when made."""

    head: str = "linear"
    epochs: int = 3
    lr: float = 2e-5
    batch_size: int = 16
    max_length: int = 128
    seed: int = 0
    device: str = "auto"
    allow_unknown: bool = False

    def __post_init__(self) -> None:
        if self.head not in ("linear", "default"):
            raise UserError(f"unknown --head {self.head}; use linear or default")
        if self.epochs < 1 or self.batch_size < 1 or self.max_length < 2:
            raise UserError("--epochs and --batch-size must be at least 1 and --max-length at least 2")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive (got {self.lr})")


def finetune(
    base: str,
    texts: list[str],
    labels: list[str],
    out: str | Path,
    options: FinetuneOptions | None = None,
    languages: list[str] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune checkpoint BASE on TEXTS/LABELS and save a classifier checkpoint (with id2label) to OUT.

    OUT is checked for writability before training, and the checkpoint is written to a temporary folder that
    replaces OUT only when complete. LANGUAGES (one per text) name the languages in the unknown-token check."""
    o = options or FinetuneOptions()
    head, epochs, lr, batch_size, max_length, seed = o.head, o.epochs, o.lr, o.batch_size, o.max_length, o.seed
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from toolkit.models import load_config, loading, pick_device, quiet_transformers
    from toolkit.output import atomic_dir, check_writable_dir
    from toolkit.tokens import check_unknown, unknown_shares

    check_writable_dir(out)
    config, reference = load_config(base)
    names = sorted(set(labels))
    if len(names) < 2:
        raise UserError(f"the training data has a single label ({names[0]}); fine-tuning needs at least two")
    if head == "linear" and config.model_type not in ("xlm-roberta", "roberta", "camembert", "bert"):
        raise UserError(
            f"--head linear is available for XLM-R, RoBERTa and BERT, not {config.model_type}; use --head default"
        )
    quiet_transformers()
    torch.manual_seed(seed)
    with loading(base):
        tokenizer = AutoTokenizer.from_pretrained(reference)
        model = AutoModelForSequenceClassification.from_pretrained(
            reference,
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)},
            ignore_mismatched_sizes=True,
        )
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    check_unknown(unknown_shares(tokenizer, ids, languages or ["all"] * len(texts)), o.allow_unknown)
    trainable = LinearHead(model) if head == "linear" else model
    result = train_classifier(
        trainable,
        tokenizer,
        texts,
        labels,
        epochs,
        lr,
        batch_size,
        max_length,
        seed,
        progress,
        str(pick_device(o.device)),
    )
    if head == "linear":
        model = fold_linear_head(trainable)
    model.config.architectures = [type(model).__name__]
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return result
