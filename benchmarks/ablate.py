"""`neurons ablate` with the blocks below the layer run once per batch (toolkit.causal.replay) against running the
whole model for every condition, as it did before: an encoder classifier at its penultimate layer, the baseline,
the target set and --controls random sets. Measured in one run on this machine, best of --repeats, interleaved.
The bare baseline is one length-sorted batched forward of the classifier: an ablation with C controls cannot be
cheaper than one such pass plus C + 1 passes of the blocks above the layer.

    python benchmarks/ablate.py [--sentences 1600] [--controls 10] [--layers 12] [--hidden 384] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import torch
from _bare import length_sorted_forward

from toolkit.capture.datasets import read_dataset, sample_path
from toolkit.capture.extract import ExtractOptions, extract
from toolkit.capture.tinymodels import build_model, save_checkpoint, train_tokenizer
from toolkit.causal.ablate import AblateOptions, ablate
from toolkit.cli.demo import LABELS


def bare(ckpt: Path, texts: list[str], batch_size: int) -> float:
    """Seconds of one length-sorted batched forward of the classifier, predictions kept."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(ckpt).eval()
    step = lambda batch: model(**batch).logits.argmax(-1).numpy()  # noqa: E731
    return length_sorted_forward(AutoTokenizer.from_pretrained(ckpt), texts, batch_size, step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=1600)
    ap.add_argument("--controls", type=int, default=10)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    sample = pl.read_csv(sample_path())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tok = train_tokenizer(sample["text"].to_list(), "xlm-roberta", vocab_size=1200, max_length=128)
        heads = max(1, args.hidden // 64)
        model = build_model("xlm-roberta", tok, LABELS, seed=0, hidden=args.hidden, layers=args.layers, heads=heads)
        ckpt = save_checkpoint(model, tok, work / "model")
        data = work / "data.csv"
        copies = pl.concat([sample] * (args.sentences // sample.height + 1)).head(args.sentences).drop("id")
        copies.with_row_index("id").write_csv(data)
        dataset = read_dataset(data)
        layer = args.layers - 1
        db = work / "w.duckdb"
        extract(db, str(ckpt), dataset, "r", ExtractOptions(layers=str(layer), device="cpu"), progress=False)
        opts = AblateOptions(
            layer=layer, top_variance=20, controls=args.controls, batch_size=args.batch_size, device="cpu"
        )
        best: dict[str, float] = {}
        predictions = {}
        for _ in range(args.repeats):
            best["bare"] = min(best.get("bare", 1e9), bare(ckpt, dataset.frame["text"].to_list(), args.batch_size))
            for name, reuse in (("reuse", True), ("full", False)):
                start = time.perf_counter()
                result = ablate(db, str(ckpt), dataset, "r", replace(opts, reuse=reuse), progress=False)
                best[name] = min(best.get(name, 1e9), time.perf_counter() - start)
                with duckdb.connect(str(db), read_only=True) as con:
                    predictions[name] = con.execute(
                        "select set_index, sentence_id, predicted from ablation_predictions where ablation_id = ? "
                        "order by all",
                        [result.ablation_id],
                    ).fetchnumpy()
    same = all(np.array_equal(predictions["reuse"][k], predictions["full"][k]) for k in predictions["reuse"])
    conditions = args.controls + 2
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.sentences} sentences, batch "
        f"{args.batch_size}; a {args.layers} x {args.hidden} encoder classifier, layer {layer}; {conditions} "
        f"conditions (baseline, target, {args.controls} controls); best of {args.repeats}"
    )
    print(f"{'path':58s} {'s':>7s} {'x full':>7s} {'bare passes':>12s}")
    for name, label in (
        ("full", "ablate, the whole model for every condition (before)"),
        ("reuse", "ablate, blocks below the layer once per batch (now)"),
    ):
        print(f"{label:58s} {best[name]:7.2f} {best['full'] / best[name]:7.2f} {best[name] / best['bare']:12.2f}")
    print(f"{'one bare forward of the classifier':58s} {best['bare']:7.2f}")
    print(f"predictions identical with and without reuse: {same}")


if __name__ == "__main__":
    main()
