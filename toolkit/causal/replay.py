"""Running the blocks below an edited layer once per batch instead of once per condition.

An ablation re-predicts the data under the unablated model, the target set and every random control set. The
blocks below the edited layer compute the same thing under every condition, so the first pass of a batch records
what they return, and the other passes answer from that record: the lower blocks' `forward` is replaced by a
lookup while they replay, so only the edited layer's hooks and the blocks above it run again. The upper blocks
read exactly the tensors they would have computed, so predictions are identical (tested against full passes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from toolkit.capture import hooks


def lower_modules(model: nn.Module, n_layers: int, layer: int) -> list[nn.Module]:
    """The modules whose outputs a pass below hidden_states[LAYER] produces and nothing above recomputes: the
    embeddings for layer 0, blocks 1..LAYER otherwise (the last of them is the edited one)."""
    if layer == 0:
        return [hooks.hidden_state_module(model, n_layers, 0)]
    return list(hooks.block_list(model, n_layers)[2][:layer])


class Replay:
    """Record MODULES' outputs on one forward pass; then replay them on later passes of the same batch. The last
    module's output is handed out as a fresh copy each time, because the ablation hook edits it in place."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.modules = modules
        self.outputs: list = []

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Inside: every forward pass stores what MODULES return (the last pass's outputs are kept)."""
        self.outputs = [None] * len(self.modules)

        def keep(i: int):
            def hook(_module, _inputs, output):
                self.outputs[i] = output

            return hook

        handles = [m.register_forward_hook(keep(i)) for i, m in enumerate(self.modules)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    @contextmanager
    def replaying(self) -> Iterator[None]:
        """Inside: MODULES do not compute; each returns what it returned while recording."""
        if any(o is None for o in self.outputs):
            raise RuntimeError("replaying before a pass was recorded")
        last = len(self.modules) - 1

        def answer(i: int):
            def forward(*_args, **_kwargs):
                return _copy(self.outputs[i]) if i == last else self.outputs[i]

            return forward

        own = [m.__dict__.get("forward") for m in self.modules]  # a wrapper already set on the instance (accelerate)
        for i, m in enumerate(self.modules):
            m.forward = answer(i)  # an instance attribute: nn.Module.__call__ runs it, hooks included
        try:
            yield
        finally:
            for m, previous in zip(self.modules, own):
                if previous is None:
                    del m.forward
                else:
                    m.forward = previous


def _copy(output):
    """OUTPUT with its first tensor cloned (a block returns a tensor or a tuple whose first item is the hidden
    state), so that an in-place edit never reaches the record."""
    if isinstance(output, torch.Tensor):
        return output.clone()
    if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
        return (output[0].clone(), *output[1:])
    return output
