"""The settings of the capture stage, each with its defaults and checks in one place: the CLI takes its option
defaults from these, the library's calls take them whole, and a run stores them. Light to import (no torch)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from toolkit.errors import UserError


@dataclass(frozen=True)
class DataSpec:
    """Which columns of a data file hold what, and which of its rows to use: what `read_dataset` reads with, what
    a run stores in its settings, and what `ablate` reads the run's data back with."""

    text_column: str = "text"
    language_column: str = "language"
    label_column: str = "label"
    id_column: str | None = None
    split_column: str | None = None  # read as 'split' when SPLITS are given without it
    splits: tuple[str, ...] | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.splits is not None:
            object.__setattr__(self, "splits", tuple(self.splits) or None)
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be at least 1 (got {self.limit})")

    COLUMNS = ("text_column", "language_column", "label_column", "id_column", "split_column")

    def stored(self) -> dict:
        """The form a run's settings hold (splits as a list)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["splits"] = list(self.splits) if self.splits else None
        return d

    @classmethod
    def from_stored(cls, settings: dict) -> DataSpec:
        """The spec a run's SETTINGS were read with (keys it lacks take their defaults)."""
        return cls(**{f.name: settings[f.name] for f in fields(cls) if f.name in settings})

    def default_columns(self) -> bool:
        """Whether every column name is the default (none was given)."""
        base = DataSpec()
        return all(getattr(self, c) == getattr(base, c) for c in self.COLUMNS)


POOLINGS = ("auto", "cls", "mean", "max", "last", "active")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
"""accelerate's placements of a model too large for one device (`--device-map`)."""
SITES = ("residual", "ffn")


@dataclass
class ExtractOptions:
    """How to extract. `site` residual: the hidden states (`layers` in hidden_states numbering, 0 = embeddings);
    ffn: the feed-forward activations after the nonlinearity of blocks `layers` (1..n). The default -2 is the
    penultimate layer. `pooling` active (ffn only): the share of the sentence's tokens whose activation is > 0."""

    layers: str = "-2"
    pooling: str = "auto"  # cls for an encoder, last for a decoder (resolved before anything is stored)
    site: str = "residual"
    batch_size: int = 32
    max_length: int | None = None
    device: str = "auto"
    dtype: str = "float32"
    predictions: bool = True
    commit_every: int = 1024
    device_map: str | None = None  # accelerate's placement ('auto') of a model larger than one device
    aggregate: bool = False  # per language, layer and neuron, the tokens on which it fired (LAPE's counts)
    window: int | None = None  # --aggregate: pack each language's text into windows of this many tokens

    def __post_init__(self) -> None:
        if self.aggregate:
            if self.site != "ffn":
                raise UserError("--aggregate counts the tokens on which FFN neurons fire: use it with --site ffn")
            if self.pooling not in ("auto", "active"):
                raise UserError(
                    f"--aggregate counts fired tokens over the whole corpus; --pooling {self.pooling} does not apply "
                    "(drop it)"
                )
            self.pooling = "active"
            self.predictions = False  # no sentence is stored, so no prediction either
        if self.window is not None:
            if not self.aggregate:
                raise UserError("--window packs a language's text into windows, which only --aggregate can count")
            if self.window < 2:
                raise UserError(f"--window must be at least 2 tokens (got {self.window})")
        if self.device_map is not None and self.device_map not in DEVICE_MAPS:
            raise UserError(f"unknown --device-map {self.device_map}; use one of {', '.join(DEVICE_MAPS)}")
        if self.site not in SITES:
            raise UserError(f"unknown --site {self.site}; use residual or ffn")
        if self.pooling not in POOLINGS:
            raise UserError(f"unknown --pooling {self.pooling}; use one of {', '.join(POOLINGS)}")
        if self.pooling == "active" and self.site != "ffn":
            raise UserError("--pooling active counts tokens whose activation is > 0: use it with --site ffn")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.commit_every < 1:
            raise UserError(f"--commit-every must be at least 1 (got {self.commit_every})")
        if self.max_length is not None and self.max_length < 2:
            raise UserError(f"--max-length must be at least 2 (got {self.max_length})")


@dataclass(frozen=True)
class FinetuneOptions:
    """How to fine-tune (paper Section 2.1); checked when made."""

    head: str = "linear"
    epochs: int = 3
    lr: float = 2e-5
    batch_size: int = 16
    max_length: int = 128
    seed: int = 0
    device: str = "auto"
    allow_unknown: bool = False

    def __post_init__(self) -> None:
        if self.head not in ("linear", "default"):
            raise UserError(f"unknown --head {self.head}; use linear or default")
        if self.epochs < 1 or self.batch_size < 1 or self.max_length < 2:
            raise UserError("--epochs and --batch-size must be at least 1 and --max-length at least 2")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive (got {self.lr})")
