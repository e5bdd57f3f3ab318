"""The settings of the significance tests and the probes, with their defaults and checks in one place (light to
import: the CLI reads its option defaults from here)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from toolkit.defaults import ALPHA, BOOTSTRAPS, MIN_EFFECT, PERMUTATIONS, THRESHOLD
from toolkit.errors import UserError


@dataclass(frozen=True)
class SignificanceOptions:
    """How to test one run and layer; checked when made, stored whole with the results."""

    permutations: int = PERMUTATIONS
    bootstraps: int = BOOTSTRAPS
    seed: int = 0
    threshold: float = THRESHOLD
    absolute: bool = False
    alpha: float = ALPHA
    min_effect: float = MIN_EFFECT

    def __post_init__(self) -> None:
        if self.permutations < 1 or self.bootstraps < 0:
            raise UserError("--permutations must be at least 1 and --bootstraps at least 0")
        if not 0 < self.alpha < 1:
            raise UserError(f"--alpha must be strictly between 0 and 1 (got {self.alpha})")
        if not 0 <= self.min_effect < 1:
            raise UserError(f"--min-effect must be in [0, 1) (got {self.min_effect})")
        if not math.isfinite(self.threshold):
            raise UserError(f"--threshold must be a finite number (got {self.threshold})")


@dataclass(frozen=True)
class ProbeOptions:
    """How to probe one run and layer; checked when made, stored whole with the results."""

    train_languages: tuple[str, ...] | None = None  # default: every language of the run
    test_languages: tuple[str, ...] | None = None  # default: every language of the run
    l1: float = 1e-3
    l2: float = 1e-3
    top: tuple[int, ...] = (10, 50, 100)
    controls: int = 10
    seed: int = 0
    max_iter: int = 300

    def __post_init__(self) -> None:
        if self.l1 < 0 or self.l2 < 0 or self.l1 + self.l2 <= 0:
            raise UserError("--l1 and --l2 must not be negative, and not both 0")
        if any(k < 1 for k in self.top):
            raise UserError("--top values must be at least 1")
        if self.controls < 0 or self.max_iter < 1:
            raise UserError("--controls must be at least 0")
