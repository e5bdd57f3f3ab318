"""Probing speed: `neurons probe` on 2,000 sentences x 768 neurons in 5 languages (train on all 5).

Synthetic z-like activations with 20 label-coding neurons; the probe trains one elastic-net model on every
language and one per language, each with its control task, plus top-k probes against random k-sets, and
stores the results. Printed: seconds per part and overall, and a single bare scikit-learn fit of the same
model for scale.

    python benchmarks/probe.py [--sentences 2000] [--neurons 768] [--controls 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from toolkit.capture.load import load_long
from toolkit.stats.probe import ProbeOptions, fit, probe, store
from toolkit.store.warehouse import Warehouse

LANGS = ["ar", "en", "ja", "nl", "sl"]
LABELS = ["anger", "fear", "joy", "love", "neutral", "sadness"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--neurons", type=int, default=768)
    ap.add_argument("--controls", type=int, default=10)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    lang = np.array(LANGS)[np.arange(args.sentences) % len(LANGS)]
    lab = np.array(LABELS)[rng.integers(0, len(LABELS), args.sentences)]
    values = rng.normal(size=(args.sentences, args.neurons)).astype(np.float32)
    for i, label in enumerate(LABELS):
        values[lab == label, i * 3 : i * 3 + 3] += 1.0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.parquet"
        pl.DataFrame(
            {
                "sentence_id": np.repeat(np.arange(args.sentences), args.neurons),
                "language": np.repeat(lang, args.neurons),
                "label": np.repeat(lab, args.neurons),
                "layer": np.full(values.size, 11),
                "neuron": np.tile(np.arange(args.neurons), args.sentences),
                "value": values.reshape(-1),
            }
        ).write_parquet(path)
        db = Path(tmp) / "w.duckdb"
        load_long(db, path, "bench")
        options = ProbeOptions(controls=args.controls)
        with Warehouse(db, read_only=True) as wh:
            t = time.perf_counter()
            result = probe(wh, "bench", 11, options)
            total = time.perf_counter() - t
        with Warehouse(db, create=False) as wh:
            t = time.perf_counter()
            store(wh, result)
            stored = time.perf_counter() - t
        train = np.ones(args.sentences, dtype=bool)
        t = time.perf_counter()
        fit(values[train], lab[train], options)
        one = time.perf_counter() - t
    n_fits = 2 * (1 + len(LANGS)) + len(options.top) * (1 + args.controls)
    print(
        f"{args.sentences:,} sentences x {args.neurons} neurons, {len(LANGS)} train languages, top-k "
        f"{','.join(map(str, options.top))} with {args.controls} random sets each: {n_fits} probe fits"
    )
    print(f"neurons probe (all fits and scores): {total:.1f} s; storing: {stored:.2f} s")
    print(f"one bare scikit-learn fit on every sentence: {one:.2f} s  (probe total = {total / one:.1f} bare fits)")
    acc = result.scores.filter(pl.col("train_language") == "all")
    print(
        f"held-out accuracy of the 'all' probe: {acc['accuracy'].mean():.3f} (control {acc['control_accuracy'].mean():.3f})"
    )


if __name__ == "__main__":
    main()
