"""Sharded extraction into a Delta Lake (README, "Beyond one machine"): shards run in parallel processes, one is
killed and rerun, and the lake holds every value exactly once; the attached run's statistics equal the same data
extracted directly into DuckDB (docs/definitions.md, definitions 1-7)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from conftest import assert_one_line_error, digest
from deltalake import DeltaTable

from toolkit.capture.datasets import read_dataset
from toolkit.capture.extract import ExtractOptions, extract
from toolkit.scale.lake import Lake, app_id
from toolkit.scale.shards import extract_shard

LAYERS = "1,3"
WIDTH = 32  # the tiny checkpoint's hidden size


def shard_command(lake: Path, ckpt: Path, data: Path, k: int, n: int, run: str = "big", every: int = 16) -> list[str]:
    return [
        sys.executable,
        "-m",
        "toolkit",
        "extract",
        str(ckpt),
        str(data),
        "--run",
        run,
        "--lake",
        str(lake),
        "--shard",
        f"{k}/{n}",
        "--layers",
        LAYERS,
        "--batch-size",
        "1",  # one sentence per forward pass: the same floats as the direct extraction below
        "--commit-every",
        str(every),
        "--quiet",
    ]


def lake_values(lake: Path, run: str) -> pl.DataFrame:
    return pl.from_arrow(Lake(lake).read("activations", run, ["sentence_id", "layer", "neuron", "value"]))


def direct_run(db: Path, ckpt: Path, data: Path, run: str = "direct") -> None:
    extract(db, str(ckpt), read_dataset(data), run, ExtractOptions(layers=LAYERS, batch_size=1), progress=False)


def compare_views(db: Path, a: str, b: str, tol: float = 1e-9) -> None:
    """Every statistic of run A equals run B's (numbers within TOL, classes identical)."""
    con = duckdb.connect(str(db), read_only=True)
    checks = {
        "(select r.name as run, m.* from moments m join runs r using (run_id))": (
            "layer, language, label, neuron",
            ["n_sentences", "mean", "variance"],
        ),
        "label_profiles": ("layer, language, label, neuron", ["mean_z", "n_sentences"]),
        "between_label_variance": ("layer, neuron", ["variance", "rank"]),
        "label_variance": ("layer, label, neuron", ["variance"]),
        "label_anova": ("layer, language, neuron", ["f", "eta_squared"]),
        "crosslingual_correlation": ("layer, label, language_a, language_b", ["spearman", "cosine"]),
        "neuron_classes": ("layer, label, neuron", ["neuron_class", "language"]),
        "zscores": ("layer, sentence_id, neuron", ["z"]),
        "profile_reliability": ("layer, language, label", ["reliability"]),
        "length_confound": ("layer, neuron", ["adjusted_variance", "length_share", "length_r"]),
    }
    for source, (keys, cols) in checks.items():
        frames = [
            con.sql(f"select {keys}, {', '.join(cols)} from {source} where run = ? order by {keys}", params=[r]).pl()
            for r in (a, b)
        ]
        assert frames[0].height == frames[1].height > 0, source
        for c in cols:
            x, y = frames[0][c], frames[1][c]
            if x.dtype.is_numeric():
                np.testing.assert_allclose(x.to_numpy(), y.to_numpy(), rtol=tol, atol=tol, err_msg=f"{source}.{c}")
            else:
                assert x.to_list() == y.to_list(), f"{source}.{c}"
    con.close()


def test_parallel_shards_one_killed_commit_exactly_once_and_attach_equals_direct(
    tmp_path, checkpoint, data_csv, neurons
):
    ckpt = checkpoint("xlm-roberta", True)
    lake = tmp_path / "lake"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}  # three processes on two cores
    # shard 1 twice at once, as when a scheduler requeues a task whose first copy still runs
    procs = [
        subprocess.Popen(shard_command(lake, ckpt, data_csv, k, 2), env=env, stderr=subprocess.PIPE) for k in (0, 1, 1)
    ]
    victim = procs[0]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill shard 0 once it has committed two chunks, wherever it is then
        if (lake / "sentences" / "_delta_log").is_dir() and Lake(lake, create=True).committed(
            "sentences", app_id("big", 0, 2)
        ) >= 2:
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    for p in procs:
        p.wait(timeout=300)
    assert victim.returncode == -signal.SIGKILL, "the shard finished before it could be killed"
    assert [p.returncode for p in procs[1:]] == [0, 0], [p.stderr.read() for p in procs]

    status = neurons("lake", "status", lake, "--run", "big")
    assert status.exit_code == 3 and "0/2" in status.output and "started" in status.output
    db = tmp_path / "w.duckdb"
    assert_one_line_error(neurons("--db", db, "lake", "attach", lake, "--run", "big"), "0/2", "not committed")
    assert not db.exists()

    opts = ExtractOptions(layers=LAYERS, batch_size=1, commit_every=16)
    rerun = extract_shard(lake, str(ckpt), read_dataset(data_csv), "big", (0, 2), opts, progress=False)
    assert 2 <= rerun.n_committed_before < rerun.n_chunks == 7  # went on after the committed chunks
    again = extract_shard(lake, str(ckpt), read_dataset(data_csv), "big", (0, 2), opts, progress=False)
    assert again.n_committed_before == again.n_chunks == 7  # a no-op
    assert neurons("lake", "status", lake, "--run", "big").exit_code == 0

    values = lake_values(lake, "big")
    assert values.height == 210 * 2 * WIDTH
    assert values.select("sentence_id", "layer", "neuron").n_unique() == values.height  # each value exactly once
    sentences = pl.from_arrow(Lake(lake).read("sentences", "big"))
    assert sentences.height == 210 and sentences["sentence_id"].n_unique() == 210

    assert neurons("--db", db, "lake", "attach", lake, "--run", "big").exit_code == 0
    direct_run(db, ckpt, data_csv)
    con = duckdb.connect(str(db), read_only=True)
    direct = con.sql(
        "select sentence_id, layer, neuron, value from activations join runs using (run_id) where name = 'direct'"
    ).pl()
    con.close()
    joined = values.join(direct, on=["sentence_id", "layer", "neuron"], how="full", coalesce=True)
    assert joined.height == values.height and joined["value_right"].null_count() == 0
    assert (joined["value"] == joined["value_right"]).all()  # the same floats
    compare_views(db, "big", "direct")


def test_torn_commit_and_orphan_files_are_not_counted(tmp_path, checkpoint, data_csv, monkeypatch):
    """A shard that dies between its tables' commits (activations and moments of chunk 2 committed, its sentences
    not) reruns to exactly one copy of every chunk; an uncommitted data file in the table is never read."""
    ckpt = checkpoint("xlm-roberta", True)
    lake = tmp_path / "lake"
    dataset = read_dataset(data_csv)
    opts = ExtractOptions(layers=LAYERS, batch_size=1, commit_every=16)
    append = Lake.append

    def dies(self, name, rows, app=None, version=None):
        if name == "sentences" and version == 2:
            raise KeyboardInterrupt
        return append(self, name, rows, app, version)

    monkeypatch.setattr(Lake, "append", dies)
    with pytest.raises(KeyboardInterrupt):
        extract_shard(lake, str(ckpt), dataset, "r", (0, 2), opts, progress=False)
    monkeypatch.setattr(Lake, "append", append)
    assert Lake(lake).committed("sentences", app_id("r", 0, 2)) == 1
    written = pl.from_arrow(DeltaTable(str(lake / "activations")).to_pyarrow_dataset().to_table(columns=["chunk"]))
    assert (written["chunk"] == 2).any()  # chunk 2's activations were committed, its sentences not
    assert not (pl.from_arrow(Lake(lake).read("activations", "r", ["chunk"]))["chunk"] == 2).any()  # never read
    some_file = next((lake / "activations").rglob("*.parquet"))
    (some_file.parent / "part-orphan.parquet").write_bytes(some_file.read_bytes())  # a write that never committed

    for k in (0, 1):
        extract_shard(lake, str(ckpt), dataset, "r", (k, 2), opts, progress=False)
    values = lake_values(lake, "r")
    assert values.height == 210 * 2 * WIDTH
    assert values.select("sentence_id", "layer", "neuron").n_unique() == values.height
    db = tmp_path / "w.duckdb"
    from toolkit.scale.attach import attach

    attach(db, lake, "r")
    direct_run(db, ckpt, data_csv)
    compare_views(db, "r", "direct")


def test_merged_moments_equal_numpy_including_constant_neurons(tmp_path):
    """The partial moments of chunks merge exactly (Chan et al.): against numpy on the whole data, and a neuron
    constant at 0.1 (not a binary fraction) gets variance exactly 0, so its z is 0 and not rounding noise."""
    from toolkit.store.catalog import view_query

    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, size=(1000, 5)).astype(np.float32)
    x[:, 4] = np.float32(0.1)
    cells = rng.integers(0, 3, size=1000)
    parts = []  # per chunk and cell, computed here with numpy
    for rows in np.array_split(np.arange(1000), 7):
        for c in np.unique(cells[rows]):
            v = x[rows][cells[rows] == c].astype(np.float64)
            for j in range(5):
                parts.append(
                    (1, 1, "x", str(c), j, v.shape[0], v[:, j].mean(), v[:, j].var(), v[:, j].min(), v[:, j].max())
                )
    names = ["run_id", "layer", "language", "label", "neuron", "n_sentences", "mean", "variance", "minimum", "maximum"]
    con = duckdb.connect()
    con.register("moment_parts", pa.table(dict(zip(names, map(list, zip(*parts))))))
    got = con.sql(
        f"select label::INTEGER as cell, neuron, n_sentences, mean, variance from "
        f"({view_query('moments_source')}) order by 1, 2"
    ).fetchall()
    for cell, j, n, mean, var in got:
        v = x[cells == cell, j].astype(np.float64)
        assert n == v.size
        if j == 4:
            assert var == 0.0 and mean == np.float64(np.float32(0.1))
        else:
            assert abs(mean - v.mean()) < 1e-12 and abs(var - v.var()) < 1e-10 * v.var()


def test_refusals(tmp_path, checkpoint, data_csv, neurons):
    ckpt = checkpoint("xlm-roberta", True)
    lake = tmp_path / "lake"
    base = ["extract", ckpt, data_csv, "--run", "r", "--layers", LAYERS, "--quiet"]
    assert_one_line_error(neurons(*base, "--lake", lake), "--lake and --shard go together")
    assert_one_line_error(neurons(*base, "--lake", lake, "--shard", "3/3"), "K must be between 0 and N-1")
    assert_one_line_error(neurons(*base, "--lake", lake, "--shard", "a"), "is not K/N")
    assert_one_line_error(neurons("lake", "status", tmp_path, "--run", "r"), "not a neurons lake")
    assert neurons(*base, "--lake", lake, "--shard", "0/2").exit_code == 0
    assert_one_line_error(neurons(*base, "--lake", lake, "--shard", "1/3"), "split into 2 shards")
    assert_one_line_error(
        neurons(*base[:-3], "--layers", "2", "--quiet", "--lake", lake, "--shard", "1/2"), "other settings", "layers"
    )
    assert_one_line_error(neurons("lake", "status", lake, "--run", "nope"), "no run named 'nope'", "runs: r")
    db = tmp_path / "w.duckdb"
    assert_one_line_error(neurons("--db", db, "lake", "attach", lake, "--run", "r"), "1/2", "not committed")
    assert neurons(*base, "--lake", lake, "--shard", "1/2").exit_code == 0
    listing = neurons("lake", "status", lake, "--json")
    assert (
        '"run": "r"' in listing.output and '"shards": "2/2"' in listing.output and '"sentences": 210' in listing.output
    )
    assert neurons("--db", db, "lake", "attach", lake, "--run", "r").exit_code == 0
    before = digest(db)
    assert_one_line_error(neurons("--db", db, "lake", "attach", lake, "--run", "r"), "exists already")
    assert digest(db) == before

    # any N: a typo'd huge one is refused, and the status of many shards is a short table (only started shards
    # are looked up in the lake; the rest are ranges)
    assert_one_line_error(neurons(*base, "--lake", lake, "--shard", "0/9223372036854775807"), "at most 100,000")
    many = ["extract", ckpt, data_csv, "--run", "many", "--layers", LAYERS, "--quiet", "--lake", lake]
    assert neurons(*many, "--shard", "7/5000").exit_code == 0
    status = neurons("lake", "status", lake, "--run", "many", "--json")
    assert status.exit_code == 3
    rows = json.loads(status.stdout)
    assert [(r["shard"], r["state"]) for r in rows] == [
        ("0-6/5000", "missing"),
        ("7/5000", "committed"),
        ("8-4999/5000", "missing"),
    ]
    assert (
        "4999 of 5000 shards not committed: 0-6/5000, 8-4999/5000"
        in neurons("lake", "status", lake, "--run", "many").stdout
    )


def test_attached_run_reads_in_place_read_only_and_deletes_cleanly(tmp_path, checkpoint, data_csv, neurons):
    """Queries of an attached run run in the read-only sandbox (the lake read through Arrow), leave the warehouse
    as it was, and any DuckDB client reads the run through the stored views; delete forgets the lake files."""
    ckpt = checkpoint("xlm-roberta", True)
    lake = tmp_path / "lake"
    opts = ExtractOptions(layers=LAYERS, batch_size=4, commit_every=50)
    extract_shard(lake, str(ckpt), read_dataset(data_csv), "r", (0, 1), opts, progress=False)
    db = tmp_path / "w.duckdb"
    assert neurons("--db", db, "lake", "attach", lake, "--run", "r", "--as", "mine").exit_code == 0
    before = digest(db)
    q = neurons(
        "--db", db, "query", "--json", "select count(*) as n, sum(value) as s from activations_long where run = 'mine'"
    )
    assert q.exit_code == 0, q.output
    n_lake = Lake(lake).read("activations", "r", ["value"])
    assert f'"n": {n_lake.num_rows}' in q.output
    assert neurons("--db", db, "analyze", "--run", "mine").exit_code == 0
    assert digest(db) == before
    con = duckdb.connect(str(db), read_only=True)  # a plain DuckDB client, files read by DuckDB itself
    total = con.execute(
        "select sum(value::DOUBLE) from activations join runs using (run_id) where name = 'mine'"
    ).fetchone()[0]
    con.close()
    assert total == pytest.approx(float(np.sum(n_lake["value"].to_numpy().astype(np.float64))), rel=1e-9)
    moved = lake.rename(tmp_path / "moved")
    assert_one_line_error(
        neurons("--db", db, "runs"), "run 'mine'", "is missing", "restore the lake", "delete --run mine"
    )
    assert digest(db) == before
    assert neurons("--db", db, "delete", "--run", "mine", "--yes").exit_code == 0
    assert moved.exists()  # forgotten, not deleted
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("select count(*) from lake_files").fetchone()[0] == 0
    assert con.execute("select count(*) from activations").fetchone()[0] == 0
    con.close()


def _lake_copy(lake: Path, tmp_path: Path, name: str) -> Path:
    import shutil

    return Path(shutil.copytree(lake, tmp_path / name))


def test_a_lake_never_reports_success_over_missing_merged_or_damaged_data(tmp_path, checkpoint, data_csv, neurons):
    """attach checks every committed chunk's files before trusting them: a compacted table (OPTIMIZE), a lost
    activations commit, flipped bytes inside a Parquet file and a damaged Delta log are each refused in one line
    with the warehouse never created; a run whose name Delta percent-encodes attaches with every value."""
    ckpt = checkpoint("xlm-roberta", True)
    lake = tmp_path / "lake"
    run = "r 1/a=b%é"  # space, slash, equals, percent, non-ASCII: all percent-encoded in Delta's paths
    opts = ExtractOptions(layers=LAYERS, batch_size=4, commit_every=64)
    extract_shard(lake, str(ckpt), read_dataset(data_csv), run, (0, 1), opts, progress=False)

    db = tmp_path / "ok.duckdb"
    assert neurons("--db", db, "lake", "attach", lake, "--run", run, "--as", "enc").exit_code == 0
    stored = (
        duckdb.connect(str(db), read_only=True)
        .execute(
            "select count(*), sum(abs(value::DOUBLE)) from activations join runs using (run_id) where name = 'enc'"
        )
        .fetchone()
    )
    direct = lake_values(lake, run)["value"].to_numpy().astype(np.float64)
    assert stored[0] == 210 * 2 * WIDTH == direct.size and stored[1] == pytest.approx(np.abs(direct).sum(), rel=1e-12)

    compacted = _lake_copy(lake, tmp_path, "compacted")
    table = DeltaTable(str(compacted / "activations"))
    before_optimize = table.version()
    table.optimize.compact()
    failed = tmp_path / "no.duckdb"
    assert_one_line_error(
        neurons("--db", failed, "lake", "attach", compacted, "--run", run),
        "was compacted",
        f"restore it to version {before_optimize}",
    )
    DeltaTable(str(compacted / "activations")).restore(before_optimize)  # the way out the line names
    assert neurons("--db", tmp_path / "restored.duckdb", "lake", "attach", compacted, "--run", run).exit_code == 0

    lost = _lake_copy(lake, tmp_path, "lost")
    max(lost.glob("activations/_delta_log/*.json")).unlink()  # the newest activations commit is gone
    assert_one_line_error(neurons("--db", failed, "lake", "attach", lost, "--run", run), "is incomplete", "chunk 4")

    damaged = _lake_copy(lake, tmp_path, "damaged")
    part = sorted(damaged.glob("activations/*/layer=3/*.parquet"))[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = bytes(64)  # inside a data page: the size is unchanged
    part.write_bytes(bytes(data))
    assert_one_line_error(
        neurons("--db", failed, "lake", "attach", damaged, "--run", run), "does not match its checksum", "1 of"
    )

    broken = _lake_copy(lake, tmp_path, "broken")
    max(broken.glob("sentences/_delta_log/*.json")).write_text('{"add": {broken')
    for args in (("lake", "attach", broken, "--run", run), ("lake", "status", broken, "--run", run)):
        assert_one_line_error(neurons("--db", failed, *args), "Delta log is damaged")
    assert not failed.exists()


def test_a_committed_shard_rerun_with_other_settings_is_refused(tmp_path, checkpoint, data_csv, neurons):
    """A finished shard says "nothing to do" only for the settings it was made with; any setting that changes
    the numbers (layers, max length, the head's predictions, the model) is named in one line."""
    ckpt = checkpoint("xlm-roberta", True)
    lake = tmp_path / "lake"
    base = ["extract", ckpt, data_csv, "--run", "r", "--lake", lake, "--shard", "0/1", "--quiet"]
    assert neurons(*base, "--layers", LAYERS).exit_code == 0
    again = neurons(*base, "--layers", LAYERS)
    assert again.exit_code == 0 and "nothing to do" in again.output
    for extra, fragment in (
        (["--layers", "1"], "layers"),
        (["--layers", LAYERS, "--max-length", "20"], "max_length"),
        (["--layers", LAYERS, "--no-predictions"], "predictions"),
    ):
        assert_one_line_error(neurons(*base, *extra), "other settings", fragment)
    assert_one_line_error(neurons(*base[:1], tmp_path / "gone", *base[2:], "--layers", LAYERS), "does not exist")
