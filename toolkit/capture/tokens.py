"""Tokens: tokenizing a dataset for a model, planning length-sorted batches, padding them, and checking that
the tokenizer can read the data. Extraction, ablation and fine-tuning all use these."""

from __future__ import annotations

from itertools import chain

import numpy as np
import polars as pl
import torch

from toolkit.defaults import UNKNOWN_LIMIT
from toolkit.errors import UserError


def tokenize(loaded, texts: list[str], max_length: int, special: bool = True) -> tuple[list[list[int]], np.ndarray]:
    """Token ids of each text for LOADED (a `toolkit.capture.models.LoadedModel`) (special tokens added unless not
    SPECIAL, cut at MAX_LENGTH) and which texts were cut."""
    tok = loaded.tokenizer
    ids = tok(texts, add_special_tokens=special, truncation=False, verbose=False)["input_ids"]
    cut = np.fromiter((len(x) > max_length for x in ids), dtype=bool, count=len(ids))
    if cut.any():
        where = np.flatnonzero(cut)
        redo = tok([texts[i] for i in where], add_special_tokens=special, truncation=True, max_length=max_length)
        for i, seq in zip(where, redo["input_ids"]):
            ids[i] = seq
    return ids, cut


def batch_plan(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row positions grouped into batches, longest first (stable), so padding is minimal."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and attention mask."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
        mask[r, : len(s)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}"
"""Scripts written without spaces between words: each of their characters counts as a word."""
WORDS = rf"[{UNSPACED}]|[\w--[{UNSPACED}]]+|[^\w\s]"
"""A word (docs/definitions.md, definition 18): a run of letters and digits, one punctuation mark, or one character
of a script written without spaces, so that fertility compares languages alike whatever their pre-tokenizer."""


def tokenization(tokenizer, texts: list[str], token_ids: list[list[int]], cut: np.ndarray, languages: list[str]):
    """Per language, what fertility and the unknown share are computed from (the `tokenization` table, without
    run_id): texts, non-special tokens and unknown tokens of every text; words, non-special tokens, non-space
    characters and characters of unspaced scripts of the texts that were not cut at max length."""
    unk = getattr(tokenizer, "unk_token_id", None)
    lengths = np.fromiter((len(x) for x in token_ids), dtype=np.int64, count=len(token_ids))
    flat = np.fromiter(chain.from_iterable(token_ids), dtype=np.int64, count=int(lengths.sum()))
    owner = np.repeat(np.arange(len(token_ids)), lengths)
    plain = ~np.isin(flat, [i for i in tokenizer.all_special_ids if i != unk])
    tokens = np.bincount(owner[plain], minlength=len(token_ids))
    unknown = np.bincount(owner[flat == unk], minlength=len(token_ids)) if unk is not None else None
    whole = pl.col("cut").not_()
    per_text = {"language": languages, "text": texts, "tokens": tokens, "unknown": unknown, "cut": cut}
    return (
        pl.DataFrame(per_text, schema_overrides={"unknown": pl.Int64, "language": pl.String}, strict=False)
        .with_columns(
            words=pl.col("text").str.count_matches(WORDS),
            chars=pl.col("text").str.count_matches(r"\S"),
            unspaced=pl.col("text").str.count_matches(rf"[{UNSPACED}]"),
        )
        .group_by("language")
        .agg(
            n_texts=pl.len(),
            n_tokens=pl.col("tokens").sum(),
            n_unknown=pl.col("unknown").sum() if unknown is not None else pl.lit(None, pl.Int64),
            n_whole=whole.sum(),
            n_words=pl.col("words").filter(whole).sum(),
            n_word_tokens=pl.col("tokens").filter(whole).sum(),
            n_chars=pl.col("chars").filter(whole).sum(),
            n_unspaced=pl.col("unspaced").filter(whole).sum(),
        )
        .sort("language")
    )


def unknown_shares(counts: pl.DataFrame) -> dict[str, float]:
    """Per language, the share of its non-special tokens that the tokenizer maps to the unknown token, from the
    COUNTS of `tokenization` (empty when the tokenizer has no unknown token)."""
    return {
        r["language"]: r["n_unknown"] / r["n_tokens"] if r["n_tokens"] else 0.0
        for r in counts.iter_rows(named=True)
        if r["n_unknown"] is not None
    }


def check_unknown(shares: dict[str, float], allow: bool, limit: float = UNKNOWN_LIMIT) -> None:
    """Refuse data the tokenizer cannot read (a fallback tokenizer, a wrong model) unless ALLOW."""
    bad = {k: v for k, v in shares.items() if v > limit}
    if bad and not allow:
        worst = ", ".join(f"{k} {v:.0%}" for k, v in sorted(bad.items(), key=lambda kv: -kv[1])[:4])
        raise UserError(
            f"the tokenizer maps too many tokens to the unknown token ({worst}; limit {limit:.0%}): it "
            "does not fit this data (a missing or wrong tokenizer?); pass --allow-unk to go on anyway"
        )
