"""Coverage of the correlation intervals: percentile (before) against basic bootstrap (now), by simulation.

Data with known population label profiles (4 languages x 4 labels x 96 neurons, a shared label component of
random weight per dataset, unit noise), so the population Spearman between two languages' z-profiles is
known exactly; the 95 % intervals of every label x pair are checked against it, for several cell sizes.
The toolkit's own bootstrap (`toolkit.stats.significance.correlation_intervals`) gives the draws; the percentile
interval is recomputed from the same draws for the comparison.

    python benchmarks/coverage.py [--sizes 10,20,40,150] [--datasets 20] [--bootstraps 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from toolkit import significance as sig

LANGS, LABELS, NEURONS = ["ar", "ja", "nl", "sl"], ["anger", "fear", "joy", "sadness"], 96


def dataset(rng: np.random.Generator, n: int, tau: float = 0.5):
    c = rng.uniform(0.2, 0.9)
    mu = tau * (
        np.sqrt(c) * rng.normal(size=(len(LABELS), NEURONS))[None]
        + np.sqrt(1 - c) * rng.normal(size=(len(LANGS), len(LABELS), NEURONS))
    )
    centre = mu.mean(axis=1, keepdims=True)
    truth_profiles = (mu - centre) / np.sqrt(1 + ((mu - centre) ** 2).mean(axis=1, keepdims=True))
    values = mu[:, :, None, :] + rng.normal(size=(len(LANGS), len(LABELS), n, NEURONS))
    z = (values - values.mean(axis=(1, 2), keepdims=True)) / values.std(axis=(1, 2), keepdims=True)
    lang = np.repeat(LANGS, len(LABELS) * n)
    lab = np.tile(np.repeat(LABELS, n), len(LANGS))
    return sig.make_layout(z.reshape(-1, NEURONS), lang, lab), truth_profiles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,20,40,150")
    ap.add_argument("--datasets", type=int, default=20)
    ap.add_argument("--bootstraps", type=int, default=300)
    args = ap.parse_args()
    print(
        f"{'sentences per cell':>18s} {'intervals':>9s} {'percentile':>10s} {'basic':>7s} {'mean |bias|':>11s} {'s':>6s}"
    )
    for n in (int(x) for x in args.sizes.split(",")):
        rng = np.random.default_rng(n)
        hits = {"percentile": 0, "basic": 0}
        total, bias, start = 0, [], time.perf_counter()
        for _ in range(args.datasets):
            layout, truth = dataset(rng, n)
            observed = sig.spearman_pairs(layout, sig.profiles(layout, np.arange(layout.z.shape[0])[None]))
            draws = {k: [] for k in observed}
            for b in sig.batches(args.bootstraps, layout):
                for k, v in sig.spearman_pairs(
                    layout, sig.profiles(layout, sig.bootstrap_rows(layout, rng, b))
                ).items():
                    draws[k].append(v)
            for (label, a, b), est in observed.items():
                d = np.concatenate(draws[(label, a, b)])
                li, ai, bi = LABELS.index(label), LANGS.index(a), LANGS.index(b)
                rho = stats.spearmanr(truth[ai, li], truth[bi, li]).statistic
                lo, hi = np.quantile(d, [0.025, 0.975])
                low, high, bb = sig.basic_interval(d, float(est[0]))
                hits["percentile"] += lo <= rho <= hi
                hits["basic"] += low <= rho <= high
                bias.append(abs(bb))
                total += 1
        print(
            f"{n:18d} {total:9d} {hits['percentile'] / total:10.3f} {hits['basic'] / total:7.3f} "
            f"{np.mean(bias):11.3f} {time.perf_counter() - start:6.1f}"
        )
    print("coverage of the population Spearman by nominal 95 % intervals (target: 0.95; at least 0.90 tested)")


if __name__ == "__main__":
    main()
