"""LAPE's corpus counts (`neurons extract --site ffn --aggregate [--window N]`) against a bare forward.

A Llama-architecture decoder (random weights: speed does not depend on them) is built from its config and saved
as a checkpoint. The bare baseline runs the same windows through the base model (`AutoModel`, no LM head, as
the counts need none) batch by batch and keeps nothing; `extract --aggregate --window N` adds the FFN hooks, one
count reduction per layer and batch on the device, tokenization and a commit per chunk. Both in one run on this
machine; the ratio is what to read (1.00: the counts cost nothing over the forward).

    python benchmarks/aggregate.py [--tokens 200000] [--window 512] [--batch-size 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from toolkit.capture.datasets import read_dataset, sample_path
from toolkit.capture.extract import ExtractOptions, extract
from toolkit.capture.tinymodels import save_checkpoint, train_tokenizer


def build(workdir: Path, texts: list[str], window: int) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = train_tokenizer(texts, "llama", vocab_size=8000, max_length=window)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=512,
        intermediate_size=1408,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=window,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    return save_checkpoint(LlamaForCausalLM(config).eval(), tok, workdir / "llama-random")


def windows(ckpt: Path, frame: pl.DataFrame, window: int) -> list[torch.Tensor]:
    """Each language's windows, as `--window` cuts them (EOS between texts, the remainder dropped)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ckpt)
    out = []
    for (_,), part in frame.group_by("language", maintain_order=True):
        ids: list[int] = []
        for text in part["text"]:
            ids += tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        n = len(ids) // window
        out.append(torch.tensor(ids[: n * window]).view(n, window))
    return out


def bare(ckpt: Path, per_language: list[torch.Tensor], batch_size: int, device: str) -> float:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(ckpt).to(device).eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for ids in per_language:
            for i in range(0, len(ids), batch_size):
                batch = ids[i : i + batch_size].to(device)
                model(input_ids=batch, attention_mask=torch.ones_like(batch))
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=200_000, help="about this many tokens in all")
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    sample = read_dataset(sample_path()).frame
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ckpt = build(work, sample["text"].to_list(), args.window)
        per_text = np.mean([len(t) for t in sample["text"].to_list()]) / 3  # about 3 characters a token
        copies = max(1, int(args.tokens / (per_text * sample.height)))
        frame = pl.concat([sample] * copies)
        data = work / "data.parquet"
        frame.write_parquet(data)
        per_language = windows(ckpt, frame, args.window)
        n_tokens = sum(w.numel() for w in per_language)
        bare(ckpt, [w[:2] for w in per_language], args.batch_size, args.device)  # warm-up
        t_bare = bare(ckpt, per_language, args.batch_size, args.device)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        opts = ExtractOptions(
            site="ffn",
            aggregate=True,
            window=args.window,
            layers="all",
            batch_size=args.batch_size,
            device=args.device,
            commit_every=64,
        )
        start = time.perf_counter()
        extract(work / "w.duckdb", str(ckpt), read_dataset(data), "counts", opts, progress=False)
        t_counts = time.perf_counter() - start
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{n_tokens:,} tokens in {sum(len(w) for w in per_language)} windows of {args.window}, 8 x 1,408 FFN neurons, "
        f"batch {args.batch_size}, {args.device}, {torch.get_num_threads()} threads"
    )
    print(f"{'path':58s} {'s':>7s} {'tok/s':>9s} {'x bare':>7s}")
    for name, seconds in (
        ("bare forward (AutoModel, same windows, nothing kept)", t_bare),
        ("extract --site ffn --aggregate --window (all, commits incl.)", t_counts),
    ):
        print(f"{name:58s} {seconds:7.2f} {n_tokens / seconds:9,.0f} {t_bare / seconds:7.2f}")
    print(f"peak RSS {rss:,.0f} MiB after the bare forward, {rss_after:,.0f} MiB after the counts")


if __name__ == "__main__":
    main()
