"""CUDA extraction throughput: `neurons extract --device cuda` in float32 and bfloat16 against a bare batched
forward pass of the same model over the same sentences, batch size and dtype, in one run on one GPU.

The model is the XLM-R-base-sized random encoder of benchmarks/extract.py (speed does not depend on the
weights). The bare baseline tokenizes, sorts by length, pads each batch, runs the model under
`torch.inference_mode` with hidden states, and copies the chosen layer's [CLS] vectors to the host; neurons
does that and writes every value to the warehouse (and runs the classification head for the predictions).
Needs a CUDA device (without one it says so and exits).

    python benchmarks/gpu.py [--sentences 20000] [--batch-size 256] [--layers 11] [--device cpu: a dry run]
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


def bare(ckpt: Path, texts: list[str], batch_size: int, layer: int, dtype: str, device: str = "cuda") -> float:
    """Seconds of a sorted, padded, batched forward on DEVICE, [CLS] of LAYER to the host as float32."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModelForSequenceClassification.from_pretrained(ckpt, dtype=DTYPES[dtype]).to(device).eval()
    sync()
    start = time.perf_counter()
    ids = tok(texts, truncation=True, max_length=512)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    with torch.inference_mode():
        for i in range(0, len(order), batch_size):
            batch = tok.pad({"input_ids": [ids[j] for j in order[i : i + batch_size]]}, return_tensors="pt")
            out = model(**{k: v.to(device) for k, v in batch.items()}, output_hidden_states=True)
            out.hidden_states[layer][:, 0, :].float().cpu().numpy()
    sync()
    return time.perf_counter() - start


CASES = (  # (label, dtype, site, pooling, into the lake)
    ("residual float32", "float32", "residual", "auto", False),
    ("residual bfloat16", "bfloat16", "residual", "auto", False),
    ("ffn active bfloat16", "bfloat16", "ffn", "active", False),
    ("residual bfloat16, lake shard", "bfloat16", "residual", "auto", True),
)
"""What is measured, each at the defaults (no --commit-every): the issue's three sites and a lake shard."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--layers", type=int, default=11)
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of the script on a machine without a GPU")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: this benchmark measures GPU extraction (skipped; --device cpu for a dry run)")
        return
    gpu = args.device == "cuda"
    print(f"{torch.cuda.get_device_name(0) if gpu else 'CPU (dry run)'}, torch {torch.__version__}")
    from toolkit.scale.shards import extract_shard

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sample = pl.read_csv(sample_path())
        ckpt = build(work, sample["text"].to_list())
        data = work / "data.csv"
        pl.concat([sample] * (args.sentences // sample.height + 1)).head(args.sentences).write_csv(data)
        texts = pl.read_csv(data)["text"].to_list()
        for dtype in DTYPES:  # the CUDA context, and each dtype's kernels chosen, before anything is timed
            bare(ckpt, texts[: args.batch_size * 8], args.batch_size, args.layers, dtype, args.device)
        print(f"{args.sentences} sentences, batch {args.batch_size}, layer {args.layers}, every other setting default")
        head = f"{'case':32s} {'bare sent/s':>12s} {'neurons sent/s':>15s} {'x bare':>7s} {'model waits':>12s}"
        print(head + f" {'peak GPU MB':>12s}")
        bare_s = {dtype: bare(ckpt, texts, args.batch_size, args.layers, dtype, args.device) for dtype in DTYPES}
        for label, dtype, site, pooling, lake in CASES:
            if gpu:
                torch.cuda.reset_peak_memory_stats()
            opts = ExtractOptions(
                layers=str(args.layers),
                batch_size=args.batch_size,
                device=args.device,
                dtype=dtype,
                site=site,
                pooling=pooling,
            )
            start = time.perf_counter()
            if lake:
                s = extract_shard(work / "lake", str(ckpt), read_dataset(data), "bench", (0, 1), opts, progress=False)
            else:
                s = extract(
                    work / f"{label}.duckdb".replace(" ", "-"),
                    str(ckpt),
                    read_dataset(data),
                    "bench",
                    opts,
                    progress=False,
                )
            ours = time.perf_counter() - start
            peak = torch.cuda.max_memory_allocated() / 1e6 if gpu else float("nan")
            waits = getattr(s, "writer_wait", float("nan")) / ours
            n = args.sentences
            print(
                f"{label:32s} {n / bare_s[dtype]:12,.0f} {n / ours:15,.0f} {bare_s[dtype] / ours:7.2f} {waits:12.1%}"
                f" {peak:12,.0f}"
            )


if __name__ == "__main__":
    main()
