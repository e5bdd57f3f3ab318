"""Comparing two runs (`neurons compare`): how alike two models' layers represent the same sentences, and how
each neuron changed between two runs of one architecture (base against fine-tuned).

Representations are compared by linear CKA (Kornblith et al. 2019, docs/definitions.md, definition 19) between
every layer of run A and every layer of run B, over the sentences both runs hold (matched by text when both
runs store it, else by the data's own id). Both estimators are computed in feature space, so no
n x n Gram matrix is ever formed and memory grows with sentences x neurons:

- plain CKA: ||Yc' Xc||_F^2 / (||Xc' Xc||_F ||Yc' Yc||_F) with column-centred X and Y, the usual estimate,
  which is biased upwards when neurons are many for the sentences (two independent random representations
  score well above 0);
- debiased CKA: the same ratio of unbiased HSIC estimates (Song et al. 2012; Nguyen et al. 2021 use it for
  CKA), HSIC_1(K, L) = [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)) with K = XX',
  L = YY' and K~, L~ their off-diagonal parts, every term a sum over sentences or a product of d x d blocks.

Which neurons changed is SQL over the two runs' statistics (view `neuron_changes`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from toolkit import __version__
from toolkit.errors import UserError
from toolkit.store.warehouse import Warehouse, reads

MIN_SHARED = 20
"""Fewest shared sentences a comparison accepts: the debiased estimate needs n > 3, and below a few dozen
sentences either estimate says little."""

CHUNK = 4096
"""Sentences per block of the cross products (bounds the temporaries)."""


@dataclass
class Comparison:
    run_a: str
    run_b: str
    matched_by: str  # 'id' or 'text'
    n_shared: int
    cka: pl.DataFrame  # layer_a, layer_b, cka, cka_debiased
    seconds: float


def shared_sentences(wh: Warehouse, run_a: str, run_b: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(sentence ids in A, the matching ids in B, 'text' or 'id'): the sentences both runs hold, matched by text
    when both runs store every sentence's text (a repeated text paired in order of appearance), else by the
    data's id column. A refusal in one line when they share fewer than MIN_SHARED."""
    a, b = wh.run_id(run_a), wh.run_id(run_b)
    texts = wh.scalar(
        "select coalesce(bool_and(text is not null), false) from sentences where run_id in (?, ?)", [a, b]
    )
    key = "text" if texts else "source_id"
    pairs = wh.sql(
        f"""with a as (select sentence_id, {key} as k, row_number() over (partition by {key} order by sentence_id) as i
                      from sentences where run_id = ? and {key} is not null),
                 b as (select sentence_id, {key} as k, row_number() over (partition by {key} order by sentence_id) as i
                      from sentences where run_id = ? and {key} is not null)
            select a.sentence_id as a, b.sentence_id as b from a join b using (k, i) order by a.sentence_id""",
        [a, b],
    )
    by = "text" if texts else "id"
    if pairs.height < MIN_SHARED:
        raise UserError(
            f"runs '{run_a}' and '{run_b}' share {pairs.height} sentences (matched by {by}); compare needs at "
            f"least {MIN_SHARED}: extract both from the same data"
        )
    return pairs["a"].to_numpy(), pairs["b"].to_numpy(), by


def layer_matrix(wh: Warehouse, run: str, layer: int, sentence_ids: np.ndarray) -> np.ndarray:
    """[len(SENTENCE_IDS), neurons] float32 activations of RUN's LAYER, rows in the order of SENTENCE_IDS."""
    rows = wh.sql(
        "select sentence_id, neuron, value from activations where run_id = ? and layer = ? "
        "order by sentence_id, neuron",
        [wh.run_id(run), layer],
    )
    ids = rows["sentence_id"].unique(maintain_order=True).to_numpy()
    values = rows["value"].to_numpy().astype(np.float32, copy=False).reshape(len(ids), -1)
    position = np.searchsorted(ids, sentence_ids)
    return values[position]


@dataclass(frozen=True)
class Moments:
    """What both CKA estimators need of one representation X [n, d], in float64: column sums, d x d product,
    per-sentence squared norms, and (for the debiased estimate) each sentence's row sum of the off-diagonal Gram,
    (K~1)_i = x_i . sum_j x_j - |x_i|^2."""

    n: int
    total: np.ndarray  # X'1
    gram: np.ndarray  # X'X
    norms: np.ndarray  # |x_i|^2
    row_sums: np.ndarray  # (K~1)_i

    @property
    def constant(self) -> bool:
        """Whether every sentence has (to rounding) the same vector: an embedding layer's [CLS] has. CKA compares
        variation, so it is undefined (NaN) there rather than a ratio of rounding errors."""
        spread = float(np.trace(self.gram)) - float(self.total @ self.total) / self.n  # trace of Xc'Xc
        return spread <= 1e-9 * max(float(np.trace(self.gram)), np.finfo(float).tiny)


def moments(x: np.ndarray) -> Moments:
    total = x.sum(axis=0, dtype=np.float64)
    gram = np.zeros((x.shape[1], x.shape[1]))
    norms = np.empty(x.shape[0])
    row_sums = np.empty(x.shape[0])
    for start in range(0, x.shape[0], CHUNK):
        block = x[start : start + CHUNK].astype(np.float64)
        gram += block.T @ block
        norms[start : start + CHUNK] = np.einsum("ij,ij->i", block, block)
        row_sums[start : start + CHUNK] = block @ total - norms[start : start + CHUNK]
    return Moments(x.shape[0], total, gram, norms, row_sums)


def cross(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """X'Y in float64, block by block over sentences."""
    out = np.zeros((x.shape[1], y.shape[1]))
    for start in range(0, x.shape[0], CHUNK):
        out += x[start : start + CHUNK].astype(np.float64).T @ y[start : start + CHUNK].astype(np.float64)
    return out


def _frobenius_sq_centred(xy: np.ndarray, sx: np.ndarray, sy: np.ndarray, n: int) -> float:
    """||Xc'Yc||_F^2 from X'Y and the column sums: Xc'Yc = X'Y - sx sy' / n."""
    return float(np.sum((xy - np.outer(sx, sy) / n) ** 2))


def _hsic_unbiased(xy: np.ndarray, mx: Moments, my: Moments) -> float:
    """Song et al.'s unbiased HSIC of the linear kernels of X and Y (times n(n-3), which cancels in CKA)."""
    n = mx.n
    trace = float(np.sum(xy**2)) - float(mx.norms @ my.norms)  # tr(K~L~) = |X'Y|_F^2 - sum_i K_ii L_ii
    sum_k = float(mx.total @ mx.total) - float(mx.norms.sum())  # 1'K~1
    sum_l = float(my.total @ my.total) - float(my.norms.sum())
    return trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(mx.row_sums @ my.row_sums)


def cka(x: np.ndarray, y: np.ndarray, mx: Moments | None = None, my: Moments | None = None) -> tuple[float, float]:
    """(plain, debiased) linear CKA of X [n, d1] and Y [n, d2] (rows: the same sentences); NaN where either
    representation is constant (`Moments.constant`)."""
    mx, my = mx or moments(x), my or moments(y)
    if mx.constant or my.constant:
        return float("nan"), float("nan")
    n = x.shape[0]
    xy = cross(x, y)
    plain_xy = _frobenius_sq_centred(xy, mx.total, my.total, n)
    plain_xx = _frobenius_sq_centred(mx.gram, mx.total, mx.total, n)
    plain_yy = _frobenius_sq_centred(my.gram, my.total, my.total, n)
    plain = plain_xy / np.sqrt(plain_xx * plain_yy) if plain_xx > 0 and plain_yy > 0 else float("nan")
    hxx, hyy = _hsic_unbiased(mx.gram, mx, mx), _hsic_unbiased(my.gram, my, my)
    debiased = _hsic_unbiased(xy, mx, my) / np.sqrt(hxx * hyy) if hxx > 0 and hyy > 0 else float("nan")
    return float(plain), float(debiased)


@reads
def compare(wh: Warehouse, run_a: str, run_b: str, progress=None, shared=None) -> Comparison:
    """Linear CKA, plain and debiased, between every stored layer of RUN_A and every stored layer of RUN_B on the
    sentences they share (SHARED: `shared_sentences`, when the caller has it). Each layer is read once; its
    moments are computed once."""
    start = time.perf_counter()
    a, b = wh.run(run_a).per_sentence("compare"), wh.run(run_b).per_sentence("compare")
    ids_a, ids_b, by = shared or shared_sentences(wh, run_a, run_b)
    right = {layer: layer_matrix(wh, run_b, layer, ids_b) for layer in b.layers}
    right_moments = {layer: moments(m) for layer, m in right.items()}
    rows = []
    for la in a.layers:
        x = layer_matrix(wh, run_a, la, ids_a)
        mx = moments(x)
        for lb in b.layers:
            plain, debiased = cka(x, right[lb], mx, right_moments[lb])
            rows.append((la, lb, plain, debiased))
        if progress:
            progress(1)
    frame = pl.DataFrame(
        rows,
        schema={"layer_a": pl.Int64, "layer_b": pl.Int64, "cka": pl.Float64, "cka_debiased": pl.Float64},
        orient="row",
    ).fill_nan(None)  # undefined (a constant layer) is NULL in the warehouse
    return Comparison(run_a, run_b, by, len(ids_a), frame, time.perf_counter() - start)


def store(wh: Warehouse, c: Comparison) -> int:
    """Store comparison C (the views show the latest of each pair of runs); its id."""
    from toolkit.store.arrow import insert_table

    with wh.transaction() as con:
        comparison_id = wh.next_id("comparisons", "comparison_id")
        con.execute(
            "insert into comparisons values (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                comparison_id,
                wh.run_id(c.run_a),
                wh.run_id(c.run_b),
                c.matched_by,
                c.n_shared,
                json.dumps({"min_shared": MIN_SHARED}),
                datetime.now(),
                __version__,
            ],
        )
        insert_table(con, "comparison_cka", c.cka.to_arrow(), "comparison_id", comparison_id)
    return comparison_id
