"""Token evidence on a base-sized encoder: `neurons neuron N --tokens` (one card, the model rerun on its top
sentences per language and one per bin) and `neurons tokens` (every neuron of the layer, for the report),
against the bare baseline: loading the same checkpoint and one batched forward over the same sentences.

An XLM-R-base-sized encoder (12 x 768, random weights: speed does not depend on them) is built, saved, and
extracted at layer 11 on the bundled sample repeated; the card is timed as a user runs it (a new process, so
the imports of torch and transformers count).

    python benchmarks/tokens.py [--sentences 400]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import torch
from extract import build

from toolkit.capture.datasets import read_dataset, sample_path
from toolkit.capture.evidence import store_tokens
from toolkit.capture.extract import ExtractOptions, extract
from toolkit.store.warehouse import Warehouse


def bare(ckpt: Path, texts: list[str]) -> tuple[float, float]:
    """Seconds to load the checkpoint and run TEXTS through it in one padded batch, in a new process: counting
    the imports of torch and transformers (as a command does), and from after them (as a library call does)."""
    code = f"""
import time; t = time.perf_counter()
import torch
from transformers import AutoModel, AutoTokenizer
u = time.perf_counter()
tok = AutoTokenizer.from_pretrained({str(ckpt)!r}); model = AutoModel.from_pretrained({str(ckpt)!r}).eval()
with torch.inference_mode():
    model(**tok({texts!r}, padding=True, return_tensors="pt"), output_hidden_states=True)
print(time.perf_counter() - t, time.perf_counter() - u)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=400)
    args = ap.parse_args()
    sample = pl.read_csv(sample_path())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ckpt = build(work, sample["text"].to_list())
        data = work / "data.csv"
        pl.concat([sample] * (args.sentences // sample.height + 1)).head(args.sentences).write_csv(data)
        db = work / "w.duckdb"
        extract(db, str(ckpt), read_dataset(data), "base", ExtractOptions(layers="11"), progress=False)
        with Warehouse(db, read_only=True) as wh:
            neuron = int(wh.scalar("select neuron from between_label_variance where run = 'base' and rank = 1"))
            card_texts = wh.sql(
                "select distinct text from top_sentences where run = 'base' and layer = 11 and neuron = ? "
                "and rank between 1 and 5",
                [neuron],
            )["text"].to_list()
        command = [sys.executable, "-m", "toolkit", "--db", str(db), "neuron", str(neuron), "--run", "base"]
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        card = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([*command, "--tokens"], capture_output=True, check=True)
        tokens_card = time.perf_counter() - start
        baseline, _ = bare(ckpt, card_texts)
        stored = store_tokens(db, "base", 11)
        with Warehouse(db, read_only=True) as wh:
            every = wh.sql("select distinct text from sentences s join token_values v using (run_id, sentence_id)")
        _, baseline_all = bare(ckpt, every["text"].to_list())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; XLM-R-base-sized encoder, layer 11")
    print(f"{'path':68s} {'s':>7s} {'x bare':>7s}")
    rows = (
        ("neurons neuron N (the card without tokens, a new process)", card, None),
        (f"neurons neuron N --tokens (a new process; {len(card_texts)} top sentences + 5 bins)", tokens_card, baseline),
        (f"bare: import, load the model, one forward of the card's {len(card_texts)} sentences", baseline, baseline),
        (
            f"neurons tokens (library call): {stored.n_neurons} neurons, {stored.n_sentences} sentences, "
            f"{stored.n_values:,} values",
            stored.seconds,
            baseline_all,
        ),
        (
            f"bare: load the model, one forward of those {stored.n_sentences} sentences (imports done)",
            baseline_all,
            baseline_all,
        ),
    )
    for name, seconds, base in rows:
        ratio = f"{seconds / base:7.2f}" if base else f"{'':>7s}"
        print(f"{name:68s} {seconds:7.2f} {ratio}")


if __name__ == "__main__":
    main()
