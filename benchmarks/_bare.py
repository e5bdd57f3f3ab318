"""The bare baseline the benchmarks compare against: a length-sorted batched forward with nothing of the toolkit
around it (imported by the scripts; not one itself)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def length_sorted_forward(tok, texts: list[str], batch_size: int, step: Callable[[dict], object]) -> float:
    """Seconds to run STEP (a forward pass that keeps what the toolkit would keep) on every batch of TEXTS,
    longest first, tokenized batch by batch inside the timing with TOK."""
    lengths = [len(x) for x in tok(texts)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    start = time.perf_counter()
    kept = []
    with torch.inference_mode():
        for i in range(0, len(order), batch_size):
            kept.append(step(tok([texts[j] for j in order[i : i + batch_size]], padding=True, return_tensors="pt")))
    return time.perf_counter() - start
