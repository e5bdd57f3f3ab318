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


def logit_effects(loaded: LoadedModel, layer: int, neuron: int, k: int = TOP) -> pl.DataFrame:
    """The K tokens NEURON of FFN LAYER (1-based) promotes most (direction 'promotes', rank 1 = the largest
    logit) and the K it suppresses most ('suppresses', rank 1 = the most negative): token_id, token, effect."""
    unembedding = loaded.model.get_output_embeddings()
    if unembedding is None:
        raise UserError("logit effects need a model with a language-modelling head (a causal LM)")
    write = hooks.ffn_write(loaded.model, loaded.n_layers, layer, neuron)
    with torch.inference_mode():
        effect = unembedding.weight.float() @ write.to(unembedding.weight.device)
    k = min(k, effect.numel())
    top, bottom = torch.topk(effect, k), torch.topk(-effect, k)
    rows = []
    for direction, ids, values in (
        ("promotes", top.indices, top.values),
        ("suppresses", bottom.indices, -bottom.values),
    ):
        tokens = loaded.tokenizer.convert_ids_to_tokens(ids.tolist())
        for rank, (i, token, v) in enumerate(zip(ids.tolist(), tokens, values.tolist()), start=1):
            rows.append((direction, rank, i, token, v))
    schema = {"direction": pl.String, "rank": pl.Int64, "token_id": pl.Int64, "token": pl.String, "effect": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row")
