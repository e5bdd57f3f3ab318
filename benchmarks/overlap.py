"""Where commits rather than the model are the work: a small encoder, many short sentences, every layer.

`neurons extract` commits chunk after chunk; with write-behind (toolkit.capture.writer) a writer thread commits
while the model computes the next chunk. Measured in one run on this machine, best of --repeats, interleaved:
a bare length-sorted batched forward that keeps every layer's pooled vectors (the baseline), `extract` as it
runs (write-behind), and `extract` with each commit inline in the loop (as before write-behind). The ratios
to the baseline are what to read. `extract`'s seconds start after the model is loaded and the data tokenized
(once, up front); the baseline tokenizes batch by batch inside its timing.

    python benchmarks/overlap.py [--sentences 20000] [--batch-size 64] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl
import torch
from _bare import length_sorted_forward

import toolkit.capture.extract as extraction
from toolkit.capture.datasets import read_dataset, sample_path
from toolkit.capture.extract import ExtractOptions, extract
from toolkit.capture.tinymodels import build_model, save_checkpoint, train_tokenizer


class Inline:
    """A stand-in for WriteBehind that commits in the loop, as extraction did before it."""

    def __init__(self, commit, depth: int = 2, pause: float = 0.0):
        self.commit = commit
        self.waited = self.committing = 0.0  # the model waits for every commit
        self.n_commits = 0

    def __enter__(self) -> Inline:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def put(self, item) -> None:
        start = time.perf_counter()
        self.commit(item)
        self.n_commits += 1
        self.committing += time.perf_counter() - start
        self.waited = self.committing


def bare(ckpt: Path, texts: list[str], batch_size: int) -> float:
    """Seconds of a length-sorted batched forward keeping every layer's first-token vectors as numpy."""
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(ckpt).eval()

    def step(batch: dict):
        return torch.stack([h[:, 0] for h in model(**batch, output_hidden_states=True).hidden_states], dim=1).numpy()

    return length_sorted_forward(AutoTokenizer.from_pretrained(ckpt), texts, batch_size, step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    sample = pl.read_csv(sample_path())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tok = train_tokenizer(sample["text"].to_list(), "xlm-roberta", vocab_size=1200, max_length=128)
        model = build_model("xlm-roberta", tok, None, seed=0, hidden=64, layers=4, heads=4, max_length=128)
        ckpt = save_checkpoint(model, tok, work / "small")
        data = work / "data.csv"
        pl.concat([sample] * (args.sentences // sample.height + 1)).head(args.sentences).write_csv(data)
        dataset = read_dataset(data)
        texts = dataset.frame["text"].to_list()
        opts = ExtractOptions(layers="all", batch_size=args.batch_size, device="cpu")
        best: dict[str, float] = {}
        waits: dict[str, tuple[float, float, int]] = {}
        for _ in range(args.repeats):
            best["bare"] = min(best.get("bare", 1e9), bare(ckpt, texts, args.batch_size))
            for name, writer in (("write-behind", extraction.WriteBehind), ("inline", Inline)):
                saved, extraction.WriteBehind = extraction.WriteBehind, writer
                try:
                    s = extract(work / "w.duckdb", str(ckpt), dataset, name, opts, replace=True, progress=False)
                finally:
                    extraction.WriteBehind = saved
                if s.seconds < best.get(name, 1e9):
                    best[name] = s.seconds
                    waits[name] = (s.writer_wait / s.seconds, s.commit_seconds / max(s.n_commits, 1), s.n_commits)
    n = args.sentences
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {n} sentences, batch {args.batch_size}, "
        f"every layer (5 x 64) of a 4 x 64 encoder, --commit-every 1024; best of {args.repeats}"
    )
    print(f"{'path':62s} {'s':>7s} {'sent/s':>8s} {'x bare':>7s}")
    for name, label in (
        ("bare", "bare length-sorted forward keeping every layer's vectors"),
        ("write-behind", "neurons extract (write-behind: commits overlap the model)"),
        ("inline", "neurons extract with each commit inline (as before)"),
    ):
        print(f"{label:62s} {best[name]:7.2f} {n / best[name]:8.0f} {best['bare'] / best[name]:7.2f}")
    print(f"the model waits for commits {1 - best['write-behind'] / best['inline']:.0%} less of the wall time")
    for name in ("write-behind", "inline"):
        share, per_commit, n_commits = waits[name]
        print(
            f"{name}: the model waited for the writer {share:.1%} of the wall time; {n_commits} commits of "
            f"{per_commit * 1e3:.1f} ms each"
        )


if __name__ == "__main__":
    main()
