"""Analysis speed and memory on a synthetic run of 10^8 values (10,000 sentences x 13 layers x 768).

Times, in one run on this machine:
  - one DuckDB scan-aggregate over the activations (`group by layer, neuron`): the bare baseline;
  - filling the run's statistics cache (`moments`, done once when a run completes), all layers and
    one layer's worth;
  - `neurons analyze` for one layer and for every layer, from the cache;
  - the noise ceilings of one layer (view `crosslingual_ceiling`: split-half reliabilities over the activations),
    its length confound (`length_confound`: one pass over the layer's values with each sentence's length), the
    chance level of its classes (`profile_chance`, from the cache) and `neurons report` of one layer;
and the peak memory of the process that does the analysis (a child process, so data generation does not
count).

    python benchmarks/analysis.py [--sentences 10000] [--layers 13] [--neurons 768]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from toolkit.store.arrow import activation_table, insert_table, neuron_table
from toolkit.store.warehouse import Warehouse

LANGS = ["ar", "ja", "nl", "sl"]
LABELS = ["anger", "fear", "joy", "love", "neutral", "sadness"]


def build(db: Path, n: int, layers: int, hidden: int) -> None:
    """A complete run 'bench' written through the same Arrow path as extraction, without its cache."""
    rng = np.random.default_rng(0)
    lang = np.array(LANGS)[np.arange(n) % len(LANGS)]
    lab = np.array(LABELS)[rng.integers(0, len(LABELS), n)]
    wh = Warehouse(db)
    with wh.transaction() as con:
        wh.insert_run(
            {
                "run_id": 1,
                "name": "bench",
                "status": "incomplete",
                "source": "load",
                "data_file": "synthetic",
                "data_sha256": "-",
                "layers": list(range(layers)),
                "hidden_size": hidden,
                "n_sentences": n,
                "n_languages": len(LANGS),
                "n_labels": len(LABELS),
                "settings": "{}",
                "created_at": datetime.now(),
                "toolkit_version": "bench",
            }
        )
        insert_table(
            con,
            "sentences",
            pa.table(
                {
                    "sentence_id": np.arange(n, dtype=np.uint32),
                    "language": lang,
                    "label": lab,
                    "n_tokens": rng.integers(3, 64, n).astype(np.int32),
                }
            ),
            "run_id",
            1,
        )
        insert_table(con, "layer_neurons", neuron_table(list(range(layers)), hidden), "run_id", 1)
    offsets = rng.normal(0, 3, size=(len(LANGS), layers, hidden)).astype(np.float32)
    for lo in range(0, n, 500):
        ids = np.arange(lo, min(lo + 500, n), dtype=np.uint32)
        vals = rng.standard_normal((len(ids), layers, hidden), dtype=np.float32) + offsets[ids % len(LANGS)]
        with wh.transaction() as con:
            insert_table(con, "activation_vectors", activation_table(ids, list(range(layers)), vals), "run_id", 1)
    wh.con.execute("update runs set status = 'complete'")
    wh.close()


def timed(fn, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure(db: Path, layers: int) -> dict:
    """Runs in a child process: every timing, then this process's peak RSS."""
    from toolkit.figures.report import build_report
    from toolkit.stats.analysis import analyze

    wh = Warehouse(db)
    con = wh.con
    out = {}
    out["scan_all"] = timed(
        lambda: con.execute(
            "select layer, neuron, avg(value), count(*) from activations group by layer, neuron"
        ).fetchall(),
        2,
    )
    out["scan_one"] = timed(
        lambda: con.execute(
            "select neuron, avg(value), count(*) from activations where layer = 11 group by neuron"
        ).fetchall(),
        2,
    )
    out["moments_one"] = timed(
        lambda: con.execute("select count(*) from moments_source where run_id = 1 and layer = 11").fetchall()
    )

    def fill():
        with wh.transaction():
            wh.materialize(1)

    out["moments_all"] = timed(fill)
    out["analyze_one"] = timed(lambda: analyze(wh, "bench", 11), 2)
    out["analyze_all"] = timed(lambda: [analyze(wh, "bench", k) for k in range(layers)])
    out["ceiling_one"] = timed(
        lambda: con.execute("select count(*) from crosslingual_ceiling where run = 'bench' and layer = 11").fetchall()
    )
    out["length_one"] = timed(
        lambda: con.execute("select count(*) from length_confound where run = 'bench' and layer = 11").fetchall()
    )
    out["chance_one"] = timed(
        lambda: con.execute("select * from profile_chance(0.5) where run = 'bench' and layer = 11").fetchall(), 2
    )
    out["n_values"] = con.execute("select count(*) from activations").fetchall()[0][0]
    wh.close()
    with tempfile.TemporaryDirectory() as tmp:
        out["report_one"] = timed(lambda: build_report(db, "bench", Path(tmp) / "report", layer=11))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=10_000)
    ap.add_argument("--layers", type=int, default=13)
    ap.add_argument("--neurons", type=int, default=768)
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="One JSON object instead of the table (benchmarks/scaling.py).")
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.layers)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        t = time.perf_counter()
        build(db, args.sentences, args.layers, args.neurons)
        built = time.perf_counter() - t
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(db), "--layers", str(args.layers)],
            capture_output=True,
            text=True,
        )
        if child.returncode:
            raise SystemExit(child.stderr)
        m = json.loads(child.stdout.strip().splitlines()[-1])
        size = db.stat().st_size
    n = m["n_values"]
    if args.json:
        print(json.dumps({**m, "write_seconds": built, "bytes_per_value": size / n}))
        return
    print(
        f"{n:,} values ({args.sentences:,} sentences x {args.layers} layers x {args.neurons} neurons); "
        f"written in {built:.1f} s ({n / built / 1e6:.1f} M values/s), {size / n:.2f} bytes per value on disk"
    )
    rows = [
        ("scan-aggregate, all layers (group by layer, neuron)", m["scan_all"], m["scan_all"]),
        ("scan-aggregate, one layer", m["scan_one"], m["scan_one"]),
        ("statistics cache for one layer (moments_source)", m["moments_one"], m["scan_one"]),
        ("statistics cache for the whole run (materialize)", m["moments_all"], m["scan_all"]),
        ("neurons analyze, one layer, from the cache", m["analyze_one"], m["scan_one"]),
        (f"neurons analyze, each of the {args.layers} layers, from the cache", m["analyze_all"], m["scan_all"]),
        ("noise ceilings of one layer (crosslingual_ceiling)", m["ceiling_one"], m["scan_one"]),
        ("length confound of one layer (length_confound)", m["length_one"], m["scan_one"]),
        ("chance level of the classes, one layer (profile_chance)", m["chance_one"], m["scan_one"]),
        ("neurons report of one layer (figures, tables, explorer)", m["report_one"], m["scan_one"]),
    ]
    print(f"{'step':58s} {'seconds':>8s} {'x scan':>7s}")
    for name, sec, base in rows:
        print(f"{name:58s} {sec:8.2f} {sec / base:7.2f}")
    one_layer_total = m["moments_one"] + m["analyze_one"]
    print(
        f"whole analysis of one layer from scratch (cache + analyze): {one_layer_total:.2f} s = "
        f"{one_layer_total / m['scan_one']:.2f} x the one-layer scan"
    )
    print(f"peak memory of the analysing process: {m['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
