"""The settings of an ablation, with their defaults and checks in one place (light to import: no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.errors import UserError


@dataclass(frozen=True)
class AblateOptions:
    """What to ablate and how; checked when made, stored whole with the ablation. Exactly one of NEURONS
    (comma-separated ids), QUERY (read-only SQL returning a neuron column) or TOP_VARIANCE (K) names the
    target set."""

    layer: int
    neurons: str | None = None
    query: str | None = None
    top_variance: int | None = None
    mode: str = "zero"
    mean_scope: str = "language"
    positions: str = "cls"
    controls: int = 10
    seed: int = 0
    batch_size: int = 32
    max_length: int | None = None
    device: str = "auto"
    data_override: bool = False  # accept data whose sentences differ from the run's
    reuse: bool = True  # run the blocks below the layer once per batch for every set (toolkit.causal.replay)

    def __post_init__(self) -> None:
        if self.mode not in ("zero", "mean") or self.mean_scope not in ("language", "pooled"):
            raise UserError("--mode is zero or mean, --mean-scope language or pooled")
        if self.positions not in ("cls", "all"):
            raise UserError("--positions is cls or all")
        if self.controls < 0:
            raise UserError("--controls must be at least 0")
        if self.batch_size < 1:
            raise UserError("--batch-size must be at least 1")
        if sum(x is not None for x in (self.neurons, self.query, self.top_variance)) != 1:
            raise UserError("name the target set with exactly one of --neurons, --query or --top-variance")
        if self.top_variance is not None and self.top_variance < 1:
            raise UserError("--top-variance must be at least 1")
