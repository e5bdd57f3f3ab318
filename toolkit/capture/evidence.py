"""Which sentences a neuron's token evidence is read on, and storing it for the report (`neurons tokens`).

The sentences are a neuron's top sentences per language (view `top_sentences`) and, for a card, one example
from each bin of its range (macro `quantile_examples`, definition 21). Each is run once whatever the number of
neurons that want it; every sentence's values are pooled again and must equal what the run stored, or the
checkpoint is refused as not the run's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from toolkit.capture.models import LoadedModel
from toolkit.capture.token_values import SentenceTokens, language_model, run_model, token_values
from toolkit.errors import UserError
from toolkit.store.arrow import registered
from toolkit.store.runs import Run
from toolkit.store.warehouse import WRITER_LOCK_WAIT, Warehouse

TOLERANCE = {"float32": 1e-3, "float16": 5e-2, "bfloat16": 5e-2}
"""Largest difference, relative to max(1, |stored value|), between a stored pooled value and the one pooled again
from the tokens, per dtype of the run: batching alone moves float32 values by about 1e-6."""

STORED_TOP = 3
"""Top sentences per language whose token values `neurons tokens` stores for every neuron of the layer."""


def evidence_sentences(
    wh: Warehouse, run: str, layer: int, neurons: list[int], top: int, bins: int = 0
) -> pl.DataFrame:
    """The sentences token evidence is read on for NEURONS: the TOP most activating per language (kind 'top',
    rank 1..TOP) and, with BINS, the middle sentence of each of BINS equal-count bins of the neuron's values per
    language (kind 'bin', rank = bin, 1 the lowest): neuron, language, kind, rank, sentence_id, label, value, text."""
    found = wh.run(run)
    cols = "neuron, language, kind, rank, sentence_id, label, value, text"
    frame = wh.sql(
        f"""select {cols} from (select *, 'top' as kind from top_sentences)
            where run = ? and layer = ? and list_contains(?, neuron) and rank between 1 and ?""",
        [run, layer, neurons, top],
    )
    if bins:
        frame = pl.concat(
            [
                frame,
                wh.sql(
                    f"""select {cols} from (
                          select q.neuron, q.language, 'bin' as kind, q.bin as rank, q.sentence_id, s.label, q.value,
                                 s.text
                          from quantile_examples(?, ?, ?, bins := ?) as q
                          join sentences as s on s.run_id = ? and s.sentence_id = q.sentence_id)""",
                    [run, layer, neurons, bins, found.id],
                ),
            ]
        )
    if frame["text"].null_count():
        raise UserError(f"run '{run}' stores no sentence texts (imported without them); token values need the texts")
    return frame.sort("neuron", "language", "kind", "rank", descending=[False, False, True, False])


def read_tokens(
    loaded: LoadedModel, run: Run, layer: int, wanted: pl.DataFrame, progress: bool = False
) -> dict[int, SentenceTokens]:
    """Token values of every (neuron, sentence) of WANTED (`evidence_sentences`), each sentence run once (a
    progress bar with PROGRESS); a pooled value that does not reproduce the stored one refuses the checkpoint in
    one line."""
    by_sentence = wanted.group_by("sentence_id", maintain_order=True).agg(pl.col("text").first(), pl.col("neuron"))
    asked = {int(s): (t, sorted(set(n))) for s, t, n in by_sentence.iter_rows()}
    got = {t.sentence_id: t for t in token_values(loaded, run, layer, asked, progress=progress)}
    pooled = {(sid, n): float(v) for sid, t in got.items() for n, v in zip(t.neurons, t.pooled)}
    again = np.array([pooled[(int(s), int(n))] for s, n in wanted.select("sentence_id", "neuron").iter_rows()])
    stored = wanted["value"].to_numpy()
    gap = np.abs(again - stored) / np.maximum(1.0, np.abs(stored))
    limit = TOLERANCE.get(run.settings.get("dtype", "float32"), 1e-3)
    if gap.size and gap.max() > limit:
        worst = int(gap.argmax())
        raise UserError(
            f"the model at {loaded.reference} does not reproduce run '{run.name}' (sentence "
            f"{wanted['sentence_id'][worst]}, neuron {wanted['neuron'][worst]}: {again[worst]:.6g} now, "
            f"{stored[worst]:.6g} stored); pass --model with the checkpoint the run was extracted from"
        )
    return got


@dataclass
class Stored:
    run: str
    layer: int
    n_neurons: int
    n_sentences: int  # sentences run
    n_values: int  # token values stored
    logit_effects: bool  # whether the tokens each neuron writes towards were stored too
    seconds: float


def store_tokens(
    db,
    run: str,
    layer: int | None,
    top: int = STORED_TOP,
    model: str | None = None,
    device: str = "auto",
    device_map: str | None = None,
    progress: bool = False,
) -> Stored:
    """Store the token values of every neuron of RUN's LAYER on its TOP sentences per language (tables
    `sentence_tokens`, `token_values`; view `token_evidence`), and for a decoder's FFN run the tokens each neuron
    writes towards (`logit_effects`, definition 20), replacing what the run and layer held; the report's explorer
    shows them offline."""
    start = time.perf_counter()
    with Warehouse(db, read_only=True) as wh:
        found = wh.run(run).per_sentence("token values")
        layer = found.layer(layer)
        neurons = wh.sql(
            "select neuron from between_label_variance where run = ? and layer = ? order by neuron", [run, layer]
        )["neuron"].to_list()
        wanted = evidence_sentences(wh, run, layer, neurons, top)
    lm_head = found.site == "ffn" and language_model(model or found.model)
    loaded = run_model(found, model, device, causal_lm=lm_head, device_map=device_map)
    tokens = read_tokens(loaded, found, layer, wanted, progress)
    effects = None
    if lm_head:
        from toolkit.capture.logit_effects import logit_effects

        effects = logit_effects(loaded, layer, neurons).to_arrow()
    new_tokens = pa.table(
        {
            "sentence_id": pa.array([t.sentence_id for t in tokens.values()], pa.uint32()),
            "tokens": pa.array([t.tokens for t in tokens.values()], pa.list_(pa.string())),
            "starts": pa.array([t.starts for t in tokens.values()], pa.list_(pa.int32())),
            "ends": pa.array([t.ends for t in tokens.values()], pa.list_(pa.int32())),
            "special": pa.array([t.special for t in tokens.values()], pa.list_(pa.bool_())),
            "pooled": pa.array([t.pooled_tokens for t in tokens.values()], pa.list_(pa.bool_())),
        }
    )
    pairs = [(t, i, n) for t in tokens.values() for i, n in enumerate(t.neurons)]
    new_values = pa.table(
        {
            "neuron": pa.array([n for _, _, n in pairs], pa.uint16()),
            "sentence_id": pa.array([t.sentence_id for t, _, _ in pairs], pa.uint32()),
            "vector": pa.array([t.values[i] for t, i, _ in pairs], pa.list_(pa.float32())),
        }
    )
    with Warehouse(db, create=False, lock_wait=WRITER_LOCK_WAIT) as wh, wh.transaction() as con:
        run_id = wh.run(run).id
        con.execute("delete from token_values where run_id = ? and layer = ?", [run_id, layer])
        con.execute("delete from logit_effects where run_id = ? and layer = ?", [run_id, layer])
        with registered(con, new_tokens=new_tokens, new_values=new_values):
            con.execute(
                "delete from sentence_tokens where run_id = ? and sentence_id in (select sentence_id from new_tokens)",
                [run_id],
            )
            con.execute("insert into sentence_tokens select ?, * from new_tokens", [run_id])
            con.execute(
                "insert into token_values select ?, ?, neuron, sentence_id, vector from new_values", [run_id, layer]
            )
        if effects is not None:
            with registered(con, effects=effects):
                con.execute(
                    "insert into logit_effects select ?, ?, neuron, direction, rank, token_id, token, effect "
                    "from effects",
                    [run_id, layer],
                )
    return Stored(
        run,
        layer,
        len(neurons),
        len(tokens),
        int(sum(t.values.size for t in tokens.values())),
        effects is not None,
        time.perf_counter() - start,
    )
