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
  Both estimators are invariant to shifting X or Y, so the columns are centred first (in float64), which keeps
  a large common offset (a near-constant layer) from cancelling the variation it carries.

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
    """What both CKA estimators need of one representation X [n, d], in float64, with X's columns centred first
    (both estimators are invariant to a shift of X, and centring avoids cancelling large offsets): the column
    means, the d x d product Xc'Xc and each sentence's squared norm |xc_i|^2. For centred X the off-diagonal
    Gram's row sums are (K~1)_i = -|xc_i|^2 and 1'K~1 = -sum_i |xc_i|^2."""

    n: int
    mean: np.ndarray
    gram: np.ndarray  # Xc'Xc
    norms: np.ndarray  # |xc_i|^2
    constant: bool  # every sentence has the same vector (to 1e-9 of the values' size): CKA is undefined (NaN)


def _blocks(x: np.ndarray, mean: np.ndarray):
    for start in range(0, x.shape[0], CHUNK):
        yield start, x[start : start + CHUNK].astype(np.float64) - mean


def moments(x: np.ndarray) -> Moments:
    mean = x.sum(axis=0, dtype=np.float64) / x.shape[0]
    gram = np.zeros((x.shape[1], x.shape[1]))
    norms = np.empty(x.shape[0])
    deviation = 0.0
    for start, block in _blocks(x, mean):
        gram += block.T @ block
        norms[start : start + len(block)] = np.einsum("ij,ij->i", block, block)
        deviation = max(deviation, float(np.abs(block).max(initial=0.0)))
    size = float(np.abs(x).max(initial=0.0))
    return Moments(x.shape[0], mean, gram, norms, deviation <= 1e-9 * size)


def cross(x: np.ndarray, y: np.ndarray, mx: Moments, my: Moments) -> np.ndarray:
    """Xc'Yc in float64, block by block over sentences."""
    out = np.zeros((x.shape[1], y.shape[1]))
    for (_, bx), (_, by) in zip(_blocks(x, mx.mean), _blocks(y, my.mean)):
        out += bx.T @ by
    return out


def _hsic_unbiased(xy: np.ndarray, mx: Moments, my: Moments) -> float:
    """Song et al.'s unbiased HSIC of the linear kernels of centred X and Y (times n(n-3), which cancels in CKA):
    tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1, with tr(K~L~) = |Xc'Yc|_F^2 - sum_i K_ii L_ii."""
    n = mx.n
    trace = float(np.sum(xy**2)) - float(mx.norms @ my.norms)
    sum_k, sum_l = -float(mx.norms.sum()), -float(my.norms.sum())
    return trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(mx.norms @ my.norms)


def cka(x: np.ndarray, y: np.ndarray, mx: Moments | None = None, my: Moments | None = None) -> tuple[float, float]:
    """(plain, debiased) linear CKA of X [n, d1] and Y [n, d2] (rows: the same sentences); NaN where either
    representation is constant."""
    mx, my = mx or moments(x), my or moments(y)
    if mx.constant or my.constant:
        return float("nan"), float("nan")
    xy = cross(x, y, mx, my)
    plain = float(np.sum(xy**2)) / np.sqrt(float(np.sum(mx.gram**2)) * float(np.sum(my.gram**2)))
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
