"""Where each architecture family keeps its parts, and the one way to reach inside a forward pass.

`FAMILIES` says, per Hugging Face `model_type`, where the transformer blocks, the embeddings (hidden_states[0]),
each block's feed-forward activation (after the nonlinearity) and the classification head live, and whether it is a
decoder; adding a family is one entry. The FFN value of a decoder is what LAPE counts (Tang et al.'s
`activation.py`): `act_fn(gate_proj(x))` in gated MLPs, the activation after the first projection elsewhere. On top of it, three context managers, in the spirit of baukit's `Trace`, each undone on exit
whatever happens inside:

- `capture(modules)`: keep the output of each module of the forward passes run inside (extraction's FFN site);
- `edit(module, fn)`: change a module's output in place during the forward pass (ablation);
- `truncated(model, keep)`: run only the first KEEP blocks (no compute above the deepest layer needed).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from toolkit.errors import UserError

K = TypeVar("K")


@dataclass(frozen=True)
class Family:
    """Attribute paths of one architecture family. `blocks`, `embeddings`: from the base model (`model.base_model`);
    `ffn`: from one block, the module whose output is the feed-forward activation after the nonlinearity;
    `ffn_width`: the config attribute with that activation's width; `head`: (dense, projection) of the sequence
    classification head, from the whole model, that a linear head is folded into (None: not supported)."""

    blocks: str
    embeddings: str
    ffn: str
    ffn_width: str | Callable[[object], int]
    head: tuple[str, str] | None = None
    decoder: bool = False  # a causal LM: no [CLS]; its last hidden state is normed (see `truncated`)
    down: str | None = None  # from one block, the FFN's output projection, whose column n is neuron n's write


_BERT_LIKE = dict(blocks="encoder.layer", embeddings="embeddings", ffn="intermediate", ffn_width="intermediate_size")
_ROBERTA_HEAD = ("classifier.dense", "classifier.out_proj")

_GATED = dict(
    blocks="layers",
    embeddings="embed_tokens",
    ffn="mlp.act_fn",
    ffn_width="intermediate_size",
    decoder=True,
    down="mlp.down_proj",
)


def _four_times(config) -> int:
    return int(getattr(config, "n_inner", None) or 4 * config.hidden_size)


FAMILIES: dict[str, Family] = {
    "bert": Family(**_BERT_LIKE, head=("base_model.pooler.dense", "classifier")),
    "roberta": Family(**_BERT_LIKE, head=_ROBERTA_HEAD),
    "xlm-roberta": Family(**_BERT_LIKE, head=_ROBERTA_HEAD),
    "camembert": Family(**_BERT_LIKE, head=_ROBERTA_HEAD),
    "electra": Family(**_BERT_LIKE),
    "distilbert": Family(
        blocks="transformer.layer", embeddings="embeddings", ffn="ffn.activation", ffn_width="hidden_dim"
    ),
    **{name: Family(**_GATED) for name in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2")},
    "gpt2": Family(blocks="h", embeddings="wte", ffn="mlp.act", ffn_width=_four_times, decoder=True, down="mlp.c_proj"),
    "bloom": Family(
        blocks="h",
        embeddings="word_embeddings",
        ffn="mlp.gelu_impl",
        ffn_width=_four_times,
        decoder=True,
        down="mlp.dense_4h_to_h",
    ),
    "opt": Family(
        blocks="decoder.layers",
        embeddings="decoder.embed_tokens",
        ffn="activation_fn",
        ffn_width="ffn_dim",
        decoder=True,
        down="fc2",
    ),
    "gpt_neox": Family(
        blocks="layers",
        embeddings="embed_in",
        ffn="mlp.act",
        ffn_width="intermediate_size",
        decoder=True,
        down="mlp.dense_4h_to_h",
    ),
}


def is_decoder(model: nn.Module) -> bool:
    """Whether MODEL is a decoder of the table (a causal LM, or a classifier on one)."""
    fam = family(model)
    return bool(fam and fam.decoder)


def family(model: nn.Module) -> Family | None:
    """The table entry of MODEL's architecture (None for a family not in the table)."""
    return FAMILIES.get(getattr(model.config, "model_type", ""))


def _get(root: nn.Module, path: str) -> nn.Module | None:
    try:
        return operator.attrgetter(path)(root)
    except AttributeError:
        return None


def _find_blocks(model: nn.Module, n_layers: int) -> tuple[nn.Module, str, nn.ModuleList]:
    """(parent, attribute, ModuleList) of the model's transformer blocks: from the table, else the first ModuleList
    of N_LAYERS modules named like 'layer' (a family not in the table, for the residual site)."""
    fam = family(model)
    if fam is not None:
        parent_path, _, attr = fam.blocks.rpartition(".")
        parent = _get(model.base_model, parent_path) if parent_path else model.base_model
        blocks = getattr(parent, attr, None) if parent is not None else None
        if isinstance(blocks, nn.ModuleList) and len(blocks) == n_layers:
            return parent, attr, blocks
    for _name, module in model.named_modules():
        for attr, child in module.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == n_layers and "layer" in attr:
                return module, attr, child
    raise UserError(
        f"cannot find the {n_layers} transformer blocks of this {getattr(model.config, 'model_type', '?')} model "
        f"(known families: {', '.join(sorted(FAMILIES))})"
    )


def block_list(model: nn.Module, n_layers: int) -> tuple[nn.Module, str, nn.ModuleList]:
    """(parent, attribute, ModuleList) of the model's transformer blocks."""
    return _find_blocks(model, n_layers)


def hidden_state_module(model: nn.Module, n_layers: int, layer: int) -> nn.Module:
    """The module whose output is hidden_states[LAYER]: the embeddings for 0, block LAYER otherwise."""
    if layer == 0:
        fam = family(model)
        found = _get(model.base_model, fam.embeddings if fam else "embeddings")
        if found is None:
            raise UserError("cannot find this model's embeddings (hidden_states[0]); use a layer above 0")
        return found
    return block_list(model, n_layers)[2][layer - 1]


def ffn_modules(model: nn.Module, n_layers: int) -> list[nn.Module]:
    """Per transformer block, the module whose output is the feed-forward activation after the nonlinearity."""
    fam = family(model)
    model_type = getattr(model.config, "model_type", "?")
    found = [_get(b, fam.ffn) for b in block_list(model, n_layers)[2]] if fam is not None else [None]
    if any(not isinstance(m, nn.Module) for m in found):
        raise UserError(
            f"--site ffn: cannot find the feed-forward activations of this {model_type} model (known families: "
            f"{', '.join(sorted(FAMILIES))}); use --site residual"
        )
    return found


def ffn_writes(model: nn.Module, n_layers: int, layer: int, neurons: list[int]) -> torch.Tensor:
    """[len(NEURONS), hidden]: the vector each FFN neuron of FFN layer LAYER (1-based, as runs store them) adds to
    the residual stream per unit of its value: its column of the block's output projection, found by applying
    that projection to the unit vectors minus its bias (so nn.Linear and GPT-2's transposed Conv1D read alike)."""
    fam = family(model)
    down = _get(block_list(model, n_layers)[2][layer - 1], fam.down) if fam is not None and fam.down else None
    if not isinstance(down, nn.Module):
        raise UserError(
            f"cannot find the FFN output projection of this {getattr(model.config, 'model_type', '?')} model "
            f"(decoder families: {', '.join(sorted(k for k, f in FAMILIES.items() if f.down))})"
        )
    width = ffn_width(model)
    bad = [n for n in neurons if not 0 <= n < width]
    if bad:
        raise UserError(f"FFN layer {layer} has neurons 0-{width - 1}, not {bad[0]}")
    param = next(down.parameters())
    unit = torch.zeros(len(neurons) + 1, width, dtype=param.dtype, device=param.device)
    unit[torch.arange(len(neurons)), torch.tensor(neurons, dtype=torch.long)] = 1.0
    with torch.inference_mode():
        out = down(unit)
    return (out[:-1] - out[-1]).float()


def ffn_width(model: nn.Module) -> int:
    """Neurons of one feed-forward activation."""
    fam = family(model)
    width = fam.ffn_width if fam else "intermediate_size"
    return int(width(model.config) if callable(width) else getattr(model.config, width))


def head_modules(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """(dense, projection) of the classification head a linear head is folded into; None where unsupported."""
    fam = family(model)
    if fam is None or fam.head is None:
        return None
    dense, proj = (_get(model, p) for p in fam.head)
    return (dense, proj) if dense is not None and proj is not None else None


def _first(output):
    return output[0] if isinstance(output, tuple) else output


@contextmanager
def capture(modules: Mapping[K, nn.Module]) -> Iterator[dict[K, torch.Tensor]]:
    """Keep the output of each of MODULES (its first element when a tuple) of every forward pass inside the
    context in the yielded dict, under the same key; the hooks are always removed afterwards."""
    captured: dict[K, torch.Tensor] = {}

    def keep(key: K):
        def hook(_module, _inputs, output):
            captured[key] = _first(output)

        return hook

    handles = [m.register_forward_hook(keep(k)) for k, m in modules.items()]
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


def per_token(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A captured activation as [batch, seq, width] for the attention MASK [batch, seq]: OPT's blocks flatten the
    tokens to [batch x seq, width] before the FFN."""
    return values if values.dim() == 3 else values.view(mask.shape[0], mask.shape[1], -1)


@contextmanager
def edit(module: nn.Module, fn: Callable[[torch.Tensor], None]) -> Iterator[None]:
    """Call FN on MODULE's output tensor (the first element when a tuple) during every forward pass inside the
    context, to change it in place before the layers above read it; the hook is always removed."""

    def hook(_module, _inputs, output):
        fn(_first(output))
        return output

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def truncated(model: nn.Module, n_layers: int, keep: int) -> Iterator[None]:
    """Run only the first KEEP blocks inside the context (no compute above the deepest layer needed). A decoder
    norms its last hidden state (hidden_states[n] is norm(block n)), so it keeps one block more than asked:
    hidden_states[KEEP] stays the raw output of block KEEP, as in the whole model."""
    if is_decoder(model):
        keep += 1
    if keep >= n_layers:
        yield
        return
    parent, attr, blocks = block_list(model, n_layers)
    setattr(parent, attr, nn.ModuleList(list(blocks)[:keep]))
    try:
        yield
    finally:
        setattr(parent, attr, blocks)
