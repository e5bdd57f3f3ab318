"""`neurons compare` at a paper's size: two runs of 13 layers x 768 neurons on 2,000 shared sentences, every
layer pair's plain and debiased CKA. Measured in one run on this machine: the comparison against reading the
same 26 layer matrices from the warehouse (the floor: CKA cannot be cheaper than reading its inputs), and the
peak memory numpy allocated during the comparison, beside what one pair's two n x n Gram matrices would take.

    python benchmarks/compare.py [--sentences 2000] [--neurons 768] [--layers 13]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import polars as pl

from toolkit.capture.load import load_long
from toolkit.stats.compare import compare, layer_matrix, shared_sentences
from toolkit.store.warehouse import Warehouse


def long_table(path: Path, base: np.ndarray, rng, layers: int, noise: float) -> Path:
    """A long table of LAYERS layers: each a random mix of BASE plus noise (so layers are related)."""
    n, d = base.shape
    frames = []
    for layer in range(layers):
        values = (base @ rng.normal(size=(d, d)) / np.sqrt(d) + noise * rng.normal(size=(n, d))).astype(np.float32)
        frames.append(
            pl.DataFrame(
                {
                    "sentence_id": np.repeat(np.arange(n), d),
                    "language": np.repeat(np.array(["en", "nl"])[np.arange(n) % 2], d),
                    "label": np.repeat(np.array(["a", "b", "c"])[np.arange(n) % 3], d),
                    "text": np.repeat(np.array([f"sentence {i}" for i in range(n)]), d),
                    "layer": np.full(n * d, layer),
                    "neuron": np.tile(np.arange(d), n),
                    "value": values.reshape(-1),
                }
            )
        )
    pl.concat(frames).write_parquet(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--neurons", type=int, default=768)
    ap.add_argument("--layers", type=int, default=13)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    base = rng.normal(size=(args.sentences, args.neurons))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "w.duckdb"
        for name, noise in (("a", 0.5), ("b", 2.0)):
            load_long(db, long_table(Path(tmp) / f"{name}.parquet", base, rng, args.layers, noise), name)
        with Warehouse(db, read_only=True) as wh:
            start = time.perf_counter()
            ids_a, ids_b, _ = shared_sentences(wh, "a", "b")
            for run, ids in (("a", ids_a), ("b", ids_b)):
                for layer in range(args.layers):
                    layer_matrix(wh, run, layer, ids)
            read = time.perf_counter() - start
            tracemalloc.start()
            start = time.perf_counter()
            result = compare(wh, "a", "b")
            seconds = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    n, d, k = args.sentences, args.neurons, args.layers
    print(f"{k} x {k} layer pairs, {n} shared sentences x {d} neurons per layer, two runs")
    print(
        f"compare (plain and debiased CKA, every pair)   {seconds:7.1f} s   {seconds / read:5.2f} x reading the layers"
    )
    print(f"reading the {2 * k} layer matrices (the floor)       {read:7.1f} s")
    print(f"peak numpy memory during compare               {peak / 2**20:7.0f} MiB")
    print(
        f"the Gram-matrix form holds two n x n float64 matrices per pair: {2 * n * n * 8 / 2**20:.0f} MiB at this n, "
        f"{2 * 100_000**2 * 8 / 2**30:.0f} GiB at 100,000 sentences; the feature-space form grows with n x d"
    )
    print(f"debiased CKA of layer 0 with itself across runs: {result.cka['cka_debiased'][0]:.3f}")


if __name__ == "__main__":
    main()
