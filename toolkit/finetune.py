"""Fine-tuning a sequence classifier with cross-entropy over the dataset's labels (paper Section 2.1)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm


@dataclass
class TrainResult:
    losses: list[float]       # mean training loss per epoch
    train_accuracy: float     # accuracy on the training sentences after the last epoch


def train_classifier(
    model,
    tokenizer,
    texts: list[str],
    labels: list[str],
    epochs: int = 3,
    lr: float = 2e-5,
    batch_size: int = 16,
    max_length: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> TrainResult:
    """Train MODEL in place on TEXTS with gold LABELS (names from model.config.label2id); deterministic for SEED on CPU."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    label2id = model.config.label2id
    y = torch.tensor([label2id[l] for l in labels])
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    enc.pop("token_type_ids", None)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    losses: list[float] = []
    model.train()
    bar = tqdm(range(epochs), desc="fine-tune", unit="epoch", disable=not progress, file=sys.stderr)
    for _ in bar:
        order = torch.from_numpy(rng.permutation(len(texts)))
        total = 0.0
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            out = model(input_ids=enc["input_ids"][idx], attention_mask=enc["attention_mask"][idx], labels=y[idx])
            optimiser.zero_grad()
            out.loss.backward()
            optimiser.step()
            total += out.loss.item() * len(idx)
        losses.append(total / len(texts))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    with torch.inference_mode():
        pred = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.argmax(-1)
    return TrainResult(losses=losses, train_accuracy=float((pred == y).float().mean()))
