"""CUDA extraction throughput: `neurons extract --device cuda` in float32 and bfloat16 against a bare batched
forward pass of the same model over the same sentences, batch size and dtype, in one run on one GPU.

The model is the XLM-R-base-sized random encoder of benchmarks/extract.py (speed does not depend on the
weights). The bare baseline tokenizes, sorts by length, pads each batch, runs the model under
`torch.inference_mode` with hidden states, and copies the chosen layer's [CLS] vectors to the host; neurons
does that and writes every value to the warehouse (and runs the classification head for the predictions).
Needs a CUDA device (without one it says so and exits).

    python benchmarks/gpu.py [--sentences 20000] [--batch-size 256] [--layers 11] [--big-commit 16384]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).parent))
from extract import build  # noqa: E402

from toolkit.capture.datasets import (
    read_dataset,  # noqa: E402
    sample_path,  # noqa: E402
)
from toolkit.capture.extract import ExtractOptions, extract  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def bare(ckpt: Path, texts: list[str], batch_size: int, layer: int, dtype: str) -> float:
    """Seconds of a sorted, padded, batched forward on CUDA, [CLS] of LAYER to the host as float32."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModelForSequenceClassification.from_pretrained(ckpt, dtype=DTYPES[dtype]).to("cuda").eval()
    torch.cuda.synchronize()
    start = time.perf_counter()
    ids = tok(texts, truncation=True, max_length=512)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    with torch.inference_mode():
        for i in range(0, len(order), batch_size):
            batch = tok.pad({"input_ids": [ids[j] for j in order[i : i + batch_size]]}, return_tensors="pt")
            out = model(**{k: v.to("cuda") for k, v in batch.items()}, output_hidden_states=True)
            out.hidden_states[layer][:, 0, :].float().cpu().numpy()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--layers", type=int, default=11)
    ap.add_argument("--big-commit", type=int, default=16384, help="a larger --commit-every, measured too (bfloat16)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: this benchmark measures GPU extraction (skipped)")
        return
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sample = pl.read_csv(sample_path())
        ckpt = build(work, sample["text"].to_list())
        data = work / "data.csv"
        pl.concat([sample] * (args.sentences // sample.height + 1)).head(args.sentences).write_csv(data)
        texts = pl.read_csv(data)["text"].to_list()
        for dtype in DTYPES:  # the CUDA context, and each dtype's kernels chosen, before anything is timed
            bare(ckpt, texts[: args.batch_size * 8], args.batch_size, args.layers, dtype)
        print(f"{args.sentences} sentences, batch {args.batch_size}, layer {args.layers} (768 neurons)")
        print(f"{'dtype':32s} {'bare sent/s':>12s} {'neurons sent/s':>15s} {'neurons/bare':>13s} {'peak GPU MB':>12s}")
        runs = [(dtype, 1024) for dtype in DTYPES] + [("bfloat16", args.big_commit)]
        bare_s = {dtype: bare(ckpt, texts, args.batch_size, args.layers, dtype) for dtype in DTYPES}
        for dtype, commit_every in runs:
            torch.cuda.reset_peak_memory_stats()
            opts = ExtractOptions(
                layers=str(args.layers),
                batch_size=args.batch_size,
                device="cuda",
                dtype=dtype,
                commit_every=commit_every,
            )
            start = time.perf_counter()
            extract(work / f"{dtype}-{commit_every}.duckdb", str(ckpt), read_dataset(data), dtype, opts, progress=False)
            ours = time.perf_counter() - start
            peak = torch.cuda.max_memory_allocated() / 1e6
            n = args.sentences
            label = f"{dtype}, commit every {commit_every}"
            print(
                f"{label:32s} {n / bare_s[dtype]:12,.0f} {n / ours:15,.0f} {bare_s[dtype] / ours:13.2f} {peak:12,.0f}"
            )


if __name__ == "__main__":
    main()
