"""Significance speed: 1000 label permutations (and 1000 bootstraps) on 2,000 sentences x 768 neurons.

The toolkit's vectorized engine (one gather + reduceat per batch of permutations over the layer's z matrix)
against the bare alternative, re-running the classification in SQL once per permutation (timed on a few
permutations and extrapolated), on this machine in one run.

    python benchmarks/significance.py [--sentences 2000] [--neurons 768] [--permutations 1000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

from toolkit.capture.load import load_long
from toolkit.stats.significance import SignificanceOptions, significance
from toolkit.store.warehouse import Warehouse

LANGS = ["ar", "ja", "nl", "sl"]
LABELS = ["anger", "fear", "joy", "love", "neutral", "sadness"]


def per_permutation_sql(values: np.ndarray, lang: np.ndarray, lab: np.ndarray, repeats: int) -> float:
    """Seconds per permutation when labels are shuffled in a table and the profiles and classes re-queried."""
    import polars as pl

    s, n = values.shape
    con = duckdb.connect()
    z = pl.DataFrame(
        {"sentence_id": np.repeat(np.arange(s), n), "neuron": np.tile(np.arange(n), s), "z": values.reshape(-1)}
    )
    con.register("zsrc", z.to_arrow())
    con.execute("create table z as select * from zsrc")
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(repeats):
        perm = lab.copy()
        for L in LANGS:
            m = lang == L
            perm[m] = rng.permutation(perm[m])
        con.register("labels", pl.DataFrame({"sentence_id": np.arange(s), "language": lang, "label": perm}).to_arrow())
        con.execute("""
            with p as (select l.language, l.label, z.neuron, avg(z.z) as mean_z
                       from z join labels l using (sentence_id) group by all),
                 c as (select label, neuron, count(*) filter (where mean_z > 0.5) as k, count(*) as n from p group by all)
            select label, sum((k = n)::int), sum((k = 1)::int) from c group by label""").fetchall()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--neurons", type=int, default=768)
    ap.add_argument("--permutations", type=int, default=1000)
    ap.add_argument("--bootstraps", type=int, default=1000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    lang = np.array(LANGS)[np.arange(args.sentences) % len(LANGS)]
    lab = np.array(LABELS)[rng.integers(0, len(LABELS), args.sentences)]
    values = rng.normal(size=(args.sentences, args.neurons)).astype(np.float32).astype(np.float64)
    values[lab == "joy", :20] += 1.5
    with tempfile.TemporaryDirectory() as tmp:
        import polars as pl

        long = pl.DataFrame(
            {
                "sentence_id": np.repeat(np.arange(args.sentences), args.neurons),
                "language": np.repeat(lang, args.neurons),
                "label": np.repeat(lab, args.neurons),
                "layer": np.full(values.size, 11),
                "neuron": np.tile(np.arange(args.neurons), args.sentences),
                "value": values.reshape(-1).astype(np.float32),
            }
        )
        path = Path(tmp) / "long.parquet"
        long.write_parquet(path)
        db = Path(tmp) / "w.duckdb"
        load_long(db, path, "bench")
        with Warehouse(db) as wh:
            t = time.perf_counter()
            perm_only = significance(
                wh, "bench", 11, SignificanceOptions(permutations=args.permutations, bootstraps=0, seed=0)
            )
            t_perm = time.perf_counter() - t
            t = time.perf_counter()
            significance(
                wh, "bench", 11, SignificanceOptions(permutations=args.permutations, bootstraps=args.bootstraps, seed=0)
            )
            t_both = time.perf_counter() - t
        sql_each = per_permutation_sql(values, lang, lab, repeats=5)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    q_only = int((perm_only.neurons["q_value"] < 0.05).sum())
    sensitive = int(((perm_only.neurons["q_value"] < 0.05) & (perm_only.neurons["eta_squared"] >= 0.01)).sum())
    print(f"{args.sentences:,} sentences x {args.neurons} neurons, 4 languages x 6 labels")
    print(f"{'path':62s} {'seconds':>9s}")
    print(f"{f'toolkit: {args.permutations} permutations (counts, variance p/q, ANOVA)':62s} {t_perm:9.2f}")
    print(
        f"{f'toolkit: {args.permutations} permutations + {args.bootstraps} bootstraps (basic intervals)':62s} {t_both:9.2f}"
    )
    print(f"{f'toolkit: {args.bootstraps} bootstraps alone (difference)':62s} {t_both - t_perm:9.2f}")
    print(
        f"{f'bare: SQL re-run per permutation, x{args.permutations} (extrapolated)':62s} {sql_each * args.permutations:9.2f}"
    )
    print(
        f"speed-up of the vectorized null: {sql_each * args.permutations / t_perm:.1f}x; "
        f"{q_only} neurons with q < 0.05, {sensitive} of them with eta squared >= 0.01 (20 planted); "
        f"peak RSS {peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
