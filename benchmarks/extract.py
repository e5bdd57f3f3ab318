"""Extraction speed and storage: `neurons extract` against a bare batched forward and a paper-style loop.

An XLM-R-base-sized encoder (12 blocks x 768, 12 heads; random weights, since speed does not depend on
them; a 30k vocabulary instead of 250k, which changes only the embedding lookup) is built from its config
and saved as a checkpoint. All three paths see the same sentences and batch size, on this machine, in one
run; the ratios are what to read.

    python benchmarks/extract.py [--sentences 400] [--batch-size 32] [--layers 11]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from toolkit.capture.datasets import read_dataset, sample_path
from toolkit.capture.extract import ExtractOptions, extract
from toolkit.capture.tinymodels import save_checkpoint, train_tokenizer
from toolkit.store.arrow import activation_table, insert_table, neuron_table
from toolkit.store.warehouse import WRITER_LOCK_WAIT, Warehouse, commits


def build(workdir: Path, texts: list[str]) -> Path:
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    tok = train_tokenizer(texts, "xlm-roberta", vocab_size=30000, max_length=512)
    config = XLMRobertaConfig(
        vocab_size=max(len(tok), 30000),
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=6,
    )
    torch.manual_seed(0)
    return save_checkpoint(XLMRobertaForSequenceClassification(config).eval(), tok, workdir / "xlmr-base-random")


def bare_forward(ckpt: Path, texts: list[str], batch_size: int, layer: int, sort: bool) -> float:
    """model(**batch) with output_hidden_states, batch by batch, [CLS] of LAYER kept as numpy."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModelForSequenceClassification.from_pretrained(ckpt).eval()
    order = sorted(range(len(texts)), key=lambda i: -len(tok(texts[i])["input_ids"])) if sort else range(len(texts))
    texts = [texts[i] for i in order]
    start = time.perf_counter()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i : i + batch_size], padding=True, return_tensors="pt")
            hs = model(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True
            ).hidden_states
            out.append(hs[layer][:, 0].numpy())
    return len(texts) / (time.perf_counter() - start)


def paper_loop(ckpt: Path, texts: list[str], layer: int) -> float:
    """One sentence at a time, a forward hook on block LAYER, results appended to a Python list."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModelForSequenceClassification.from_pretrained(ckpt).eval()
    captured: list = []
    block = model.roberta.encoder.layer[layer - 1]
    hook = block.register_forward_hook(
        lambda m, i, o: captured.append((o[0] if isinstance(o, tuple) else o)[0, 0].tolist())
    )
    start = time.perf_counter()
    with torch.no_grad():
        for t in texts:
            model(**tok(t, return_tensors="pt"))
    hook.remove()
    return len(texts) / (time.perf_counter() - start)


def ingest(workdir: Path, n_sentences: int = 2000, layers: int = 13, hidden: int = 768) -> tuple[float, float]:
    """(activation values per second through the Arrow bulk path, bytes per stored value on disk)."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(n_sentences, layers, hidden)).astype(np.float32)
    db = workdir / "ingest.duckdb"
    wh = Warehouse(db)
    ids = np.arange(n_sentences, dtype=np.uint32)
    start = time.perf_counter()
    with wh.transaction() as con:
        insert_table(con, "layer_neurons", neuron_table(list(range(layers)), hidden), "run_id", 1)
    for lo in range(0, n_sentences, 500):
        table = activation_table(ids[lo : lo + 500], list(range(layers)), values[lo : lo + 500])
        with wh.transaction() as con:
            insert_table(con, "activation_vectors", table, "run_id", 1)
    seconds = time.perf_counter() - start
    wh.con.execute("checkpoint")
    wh.close()
    empty = workdir / "empty.duckdb"
    Warehouse(empty).close()
    n = values.size
    return n / seconds, (db.stat().st_size - empty.stat().st_size) / n


def commit_cost(workdir: Path, n_commits: int = 100, chunk: int = 32, hidden: int = 768) -> dict[str, float]:
    """Seconds per chunk commit of an extraction's shape (CHUNK sentences x one layer of HIDDEN values), committed
    N_COMMITS times: reopening the warehouse with every check (kind, version, migrations, the views' digest) in a
    new DuckDB instance, as each commit did before; reopening as each commit does now (`commits`: the job's
    checks not repeated, the file attached to one in-memory session and detached after each commit, so readers
    still get in between); and the insert alone on a connection kept open (the floor: no reader could get in)."""
    db = workdir / "commits.duckdb"
    Warehouse(db).close()
    rng = np.random.default_rng(0)
    values = rng.normal(size=(chunk, 1, hidden)).astype(np.float32)
    counter = iter(range(10**9))

    def commit(wh: Warehouse) -> None:
        ids = np.arange(chunk, dtype=np.uint32) + chunk * next(counter)
        with wh.transaction() as con:
            insert_table(con, "activation_vectors", activation_table(ids, [1], values), "run_id", 1)

    def timed(opener) -> float:
        start = time.perf_counter()
        for _ in range(n_commits):
            with opener() as wh:
                commit(wh)
        return (time.perf_counter() - start) / n_commits

    out = {
        "reopen, every check": timed(lambda: Warehouse(db, create=False, lock_wait=WRITER_LOCK_WAIT)),
    }
    with commits(db) as reopen:
        out["reopen as a job now does (no checks again, one DuckDB session)"] = timed(reopen)
    with Warehouse(db) as wh:
        start = time.perf_counter()
        for _ in range(n_commits):
            commit(wh)
        out["insert alone, connection kept open"] = (time.perf_counter() - start) / n_commits
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--layers", type=int, default=11)
    ap.add_argument("--paper-sentences", type=int, default=100, help="sentences for the slow one-by-one loop")
    ap.add_argument("--repeats", type=int, default=2, help="best of N for each path (this machine is noisy)")
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    sample = pl.read_csv(sample_path())
    texts = (sample["text"].to_list() * (args.sentences // sample.height + 1))[: args.sentences]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ckpt = build(work, sample["text"].to_list())
        data = work / "data.csv"
        pl.DataFrame({"text": texts, "language": ["xx"] * len(texts), "label": ["l"] * len(texts)}).write_csv(data)
        dataset = read_dataset(data)
        best: dict[str, float] = {}

        def keep(name: str, value: float) -> None:
            best[name] = max(best.get(name, 0.0), value)

        for _ in range(args.repeats):  # interleaved, so drift of the machine hits every path alike
            keep("bare", bare_forward(ckpt, texts, args.batch_size, args.layers, sort=False))
            keep("sorted", bare_forward(ckpt, texts, args.batch_size, args.layers, sort=True))
            t0 = time.perf_counter()
            s = extract(
                work / "x.duckdb",
                str(ckpt),
                dataset,
                "bench",
                ExtractOptions(layers=str(args.layers), batch_size=args.batch_size, device="cpu"),
                replace=True,
                progress=False,
            )
            keep("end", args.sentences / (time.perf_counter() - t0))
            if s.sentences_per_second > best.get("toolkit", 0.0):
                job = s  # the model's waits and the commits of the fastest default run
            keep("toolkit", s.sentences_per_second)
            s = extract(
                work / "x.duckdb",
                str(ckpt),
                dataset,
                "bench-nopred",
                ExtractOptions(layers=str(args.layers), batch_size=args.batch_size, device="cpu", predictions=False),
                replace=True,
                progress=False,
            )
            keep("nopred", s.sentences_per_second)
            s = extract(
                work / "x.duckdb",
                str(ckpt),
                dataset,
                "bench-ffn",
                ExtractOptions(
                    layers=str(args.layers), site="ffn", pooling="mean", batch_size=args.batch_size, device="cpu"
                ),
                replace=True,
                progress=False,
            )
            keep("ffn", s.sentences_per_second)
        paper = paper_loop(ckpt, texts[: args.paper_sentences], args.layers)
        bare_file = best["bare"]
        rate, bytes_per_value = ingest(work)
        commits = commit_cost(work)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.sentences} sentences, batch "
        f"{args.batch_size}, layer {args.layers}; best of {args.repeats}"
    )
    print(f"{'path':60s} {'sent/s':>8s} {'x bare':>7s} {'x sorted':>9s}")
    rows = [
        ("bare batched forward, file order (baseline)", best["bare"]),
        ("bare batched forward, length-sorted", best["sorted"]),
        ("neurons extract, head run for predictions (loop + writes)", best["toolkit"]),
        ("neurons extract, end to end incl. model load + tokenize", best["end"]),
        ("neurons extract --no-predictions (stops after the layer)", best["nopred"]),
        ("neurons extract --site ffn --pooling mean (3,072 neurons; hooks)", best["ffn"]),
        (f"paper-style loop, one sentence + hook ({args.paper_sentences} sent.)", paper),
    ]
    for name, v in rows:
        print(f"{name:60s} {v:8.1f} {v / bare_file:7.2f} {v / best['sorted']:9.2f}")
    print(
        f"ingest through Arrow into DuckDB: {rate / 1e6:.1f} M values/s; {bytes_per_value:.2f} bytes per stored value on disk"
    )
    print(
        f"in the default extraction: the model waited for the writer {job.writer_wait / job.seconds:.1%} of the wall "
        f"time; {job.n_commits} chunk commits of {job.commit_seconds / max(job.n_commits, 1) * 1e3:.1f} ms each, "
        "made by the writer while the model computed"
    )
    floor = commits["insert alone, connection kept open"]
    print(f"\n{'per-chunk commit (32 sentences x 768 values)':60s} {'ms':>8s} {'x floor':>8s}")
    for name, seconds in commits.items():
        print(f"{name:60s} {seconds * 1e3:8.2f} {seconds / floor:8.2f}")


if __name__ == "__main__":
    main()
