"""Beyond one machine, measured on this one (README, "Beyond one machine"): the lake's bytes per value on a
model's activations, one shard process against two, and the moments on Spark against DuckDB's.

1. Lake storage: `neurons extract --lake` of a model (default: the XLM-R-base-sized random encoder of
   benchmarks/extract.py; pass --model/--data for a real checkpoint and data file) at every layer; bytes of the
   activations table's Parquet files per value, beside the warehouse's compact store of the same values.
2. Shards: the same extraction as one process (shard 0/1) and as two processes at once (0/2 and 1/2, one
   thread each) on this machine's cores; wall-clock ratio.
3. Spark: moments of a synthetic lake run of --spark-values values (default 1e7) computed on pyspark local[2]
   from the lake's activations (`neurons spark moments`), against DuckDB's from the shards' partial moments
   (`neurons lake attach`); the largest difference. Local figures: a cluster's are its own.

    python benchmarks/scale.py [--sentences 800] [--spark-values 1e7] [--model DIR --data FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from extract import build  # noqa: E402

from toolkit.capture.datasets import sample_path  # noqa: E402


def neurons(*args: str, threads: int | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.Popen([sys.executable, "-m", "toolkit", *args], env=env, stdout=subprocess.DEVNULL)


def wait(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a neurons process failed ({p.args})")


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*.parquet"))


def storage_and_shards(work: Path, model: str, data: Path, batch_size: int) -> None:
    common = ["extract", model, str(data), "--layers", "all", "--batch-size", str(batch_size), "--quiet"]
    cores = os.cpu_count() or 1
    start = time.perf_counter()
    wait(neurons(*common, "--run", "one", "--lake", str(work / "lake1"), "--shard", "0/1", threads=cores))
    one = time.perf_counter() - start
    start = time.perf_counter()
    procs = [
        neurons(*common, "--run", "two", "--lake", str(work / "lake2"), "--shard", f"{k}/2", threads=max(cores // 2, 1))
        for k in range(2)
    ]
    wait(*procs)
    two = time.perf_counter() - start
    wait(neurons("--db", str(work / "w.duckdb"), *common, "--run", "warehouse", threads=cores))

    from toolkit.scale.lake import Lake

    lake = Lake(work / "lake1")
    values = lake.read("activations", "one", ["value"]).num_rows
    lake_bytes = folder_bytes(work / "lake1" / "activations")
    warehouse = (work / "w.duckdb").stat().st_size
    print(
        f"lake storage: {values:,} values; activations table {lake_bytes / 1e6:.1f} MB = {lake_bytes / values:.2f} bytes per value"
    )
    print(
        f"  (keys, language and label included; the warehouse file, with its caches: {warehouse / values:.2f} bytes per value)"
    )
    print(f"shards on {cores} cores: one process {one:.1f} s, two processes at once {two:.1f} s -> {one / two:.2f}x")
    print("  (each includes interpreter and model start-up; a shard on its own GPU or node scales with the nodes)")


def spark_against_duckdb(work: Path, n_values: float) -> None:
    from toolkit.scale.attach import attach
    from toolkit.scale.shards import write_arrays
    from toolkit.scale.spark import session, spark_moments

    layers, width = list(range(13)), 768
    n = int(round(n_values / (len(layers) * width)))
    rng = np.random.default_rng(0)
    values = rng.normal(size=(n, len(layers), width)).astype(np.float32)
    frame = pl.DataFrame(
        {
            "sentence_id": np.arange(n),
            "text": [f"s{i}" for i in range(n)],
            "language": np.resize(np.array(["ar", "nl", "ja", "sl"]), n),
            "label": np.resize(np.array(["anger", "fear", "joy", "love", "sadness", "neutral"]), n),
        }
    )
    start = time.perf_counter()
    write_arrays(work / "lake3", "synthetic", frame, layers, values, chunk_size=1024)
    written = time.perf_counter() - start
    start = time.perf_counter()
    attach(work / "w3.duckdb", work / "lake3", "synthetic")
    duck = time.perf_counter() - start
    session("local[2]")  # the JVM's start, apart
    start = time.perf_counter()
    on_spark = spark_moments(work / "lake3", "synthetic", "local[2]").sort("layer", "language", "label", "neuron")
    spark = time.perf_counter() - start
    import duckdb

    from toolkit.scale.lake import Lake
    from toolkit.store.lake_views import parquet

    files = Lake(work / "lake3").files("activations", "synthetic")["path"].to_pylist()
    start = time.perf_counter()
    duckdb.connect().execute(
        "select layer, language, label, neuron, count(*), avg(value::DOUBLE), var_pop(value::DOUBLE), min(value), "
        f"max(value) from {parquet(files)} group by all"
    ).fetchall()
    scan = time.perf_counter() - start
    con = duckdb.connect(str(work / "w3.duckdb"), read_only=True)
    ref = con.sql(
        "select layer, language, label, neuron, n_sentences, mean, variance from moments order by layer, language, "
        "label nulls first, neuron"
    ).pl()
    con.close()
    assert on_spark.height == ref.height and (on_spark["n_sentences"] == ref["n_sentences"]).all()
    diff = max(float(np.max(np.abs(on_spark[c].to_numpy() - ref[c].to_numpy()))) for c in ("mean", "variance"))
    total = n * len(layers) * width
    print(
        f"spark moments at {total:,} values ({n} sentences x {len(layers)} layers x {width}; written to the lake in {written:.1f} s):"
    )
    print(f"  DuckDB, attach (merge of the shards' partial moments): {duck:.1f} s")
    print(f"  DuckDB, the same aggregate over the lake's activations: {scan:.1f} s")
    print(f"  Spark local[2], from the lake's activations:          {spark:.1f} s ({spark / scan:.1f}x DuckDB's scan)")
    print(f"  largest difference of mean or variance: {diff:.2e} ({ref.height:,} moments)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--model", default=None, help="a checkpoint directory (default: a random XLM-R-base encoder)")
    ap.add_argument("--data", type=Path, default=None, help="its data file (default: the bundled sample, repeated)")
    ap.add_argument("--spark-values", type=float, default=1e7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = args.data
        if data is None:
            sample = pl.read_csv(sample_path())
            data = work / "data.csv"
            pl.concat([sample] * (args.sentences // sample.height + 1)).head(args.sentences).write_csv(data)
        model = args.model or str(build(work, pl.read_csv(sample_path())["text"].to_list()))
        storage_and_shards(work, model, data, args.batch_size)
        spark_against_duckdb(work, args.spark_values)


if __name__ == "__main__":
    main()
