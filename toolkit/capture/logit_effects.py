"""The tokens a decoder's FFN neuron promotes and suppresses (Geva et al. 2022, "Transformer Feed-Forward Layers
Build Predictions by Promoting Concepts in the Vocabulary Space"; Neuronpedia's logit effects): the neuron's write
vector (column n of the block's output projection) read through the unembedding, `W_U · W_down[:, n]`, one logit
per vocabulary token (docs/definitions.md, definition 20). It is the direct path only: the final norm's scaling and
every later block are left out, so it says what the neuron pushes towards, not what the model finally predicts.
"""

from __future__ import annotations

import polars as pl
import torch

from toolkit.capture import hooks
from toolkit.capture.models import LoadedModel
from toolkit.errors import UserError

TOP = 10
"""Tokens shown each way."""

CHUNK = 256
"""Neurons whose vocabulary-wide effects are held at once ([vocabulary, CHUNK] floats)."""

SCHEMA = {
    "neuron": pl.Int64,
    "direction": pl.String,
    "rank": pl.Int64,
    "token_id": pl.Int64,
    "token": pl.String,
    "effect": pl.Float64,
}


def logit_effects(loaded: LoadedModel, layer: int, neurons: list[int], k: int = TOP) -> pl.DataFrame:
    """For each of NEURONS of FFN LAYER (1-based), the K tokens it promotes most (direction 'promotes', rank 1 =
    the largest logit) and the K it suppresses most ('suppresses', rank 1 = the most negative): neuron,
    direction, rank, token_id, token, effect."""
    unembedding = loaded.model.get_output_embeddings()
    if unembedding is None:
        raise UserError("logit effects need a model with a language-modelling head (a causal LM)")
    weight = unembedding.weight.float()  # once, not per chunk
    frames = []
    for lo in range(0, len(neurons), CHUNK):
        chunk = neurons[lo : lo + CHUNK]
        writes = hooks.ffn_writes(loaded.model, loaded.n_layers, layer, chunk)
        with torch.inference_mode():
            effect = weight @ writes.to(weight.device).T  # [vocabulary, len(chunk)]
        kk = min(k, effect.shape[0])
        for direction, sign in (("promotes", 1.0), ("suppresses", -1.0)):
            top = torch.topk(sign * effect, kk, dim=0)
            ids = top.indices.T.reshape(-1).tolist()
            frames.append(
                pl.DataFrame(
                    {
                        "neuron": [n for n in chunk for _ in range(kk)],
                        "direction": direction,
                        "rank": list(range(1, kk + 1)) * len(chunk),
                        "token_id": ids,
                        "token": loaded.tokenizer.convert_ids_to_tokens(ids),
                        "effect": (sign * top.values.T.reshape(-1)).double().tolist(),
                    },
                    schema=SCHEMA,
                )
            )
    return pl.concat(frames) if frames else pl.DataFrame(schema=SCHEMA)
