"""The paper's findings on one screen, read from the SQL views in `sql/views/010_statistics.sql`.

Nothing is computed here: the numbers come from the views (through `Warehouse` accessors), which read
the per-run `moments` cache that `Warehouse.materialize` fills when a run completes.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from toolkit.errors import UserError
from toolkit.warehouse import Warehouse

CLASSES = ("polyglot", "shared", "monolingual", "inactive")


def default_layer(layers: list[int]) -> int:
    """The paper's choice, the penultimate layer, when the run holds it: max - 1 if stored, else max."""
    top = max(layers)
    return top - 1 if top - 1 in layers and len(layers) > 1 else top


@dataclass
class RunLayer:
    run: str
    layer: int


def resolve(wh: Warehouse, run: str, layer: int | None) -> RunLayer:
    """Check RUN is complete and LAYER is stored in it (default: the penultimate stored layer)."""
    wh.run_id(run)
    layers = [int(x) for x in wh.run_row(run)["layers"]]
    if layer is None:
        return RunLayer(run, default_layer(layers))
    if layer not in layers:
        raise UserError(f"run '{run}' has no layer {layer} (stored: {', '.join(map(str, layers))}); pick one of those")
    return RunLayer(run, layer)


@dataclass
class Findings:
    """The paper's findings for one run and layer, each a small DataFrame."""

    run: str
    layer: int
    threshold: float
    absolute: bool
    top_variance: pl.DataFrame    # between_label_variance, best first
    language_pairs: pl.DataFrame  # language_pair_summary
    class_shares: pl.DataFrame    # one row per label, a column per class with its share
    monolingual: pl.DataFrame     # monolingual_counts

    def as_dict(self) -> dict:
        return {
            "run": self.run, "layer": self.layer, "threshold": self.threshold, "absolute": self.absolute,
            **{k: getattr(self, k).to_dicts() for k in ("top_variance", "language_pairs", "class_shares", "monolingual")},
        }


def analyze(wh: Warehouse, run: str, layer: int | None = None, threshold: float = 0.5, absolute: bool = False,
            top: int = 10) -> Findings:
    """Top between-label-variance neurons, language-pair consistency, class shares and monolingual counts."""
    rl = resolve(wh, run, layer)
    top_variance = wh.sql(
        "select rank, neuron, variance from between_label_variance where run = ? and layer = ? and rank <= ? order by rank",
        [rl.run, rl.layer, top],
    )
    pairs = wh.language_pair_summary(rl.run, rl.layer).drop("run", "layer")
    counts = wh.class_counts(rl.run, rl.layer, threshold, absolute)
    shares = (
        counts.pivot(on="neuron_class", index="label", values="share").select("label", *CLASSES).sort("label")
        if counts.height else pl.DataFrame(schema={"label": pl.String, **{c: pl.Float64 for c in CLASSES}})
    )
    mono = wh.monolingual_counts(rl.run, rl.layer, threshold, absolute).drop("run", "layer")
    return Findings(rl.run, rl.layer, threshold, absolute, top_variance, pairs, shares, mono)


def layer_sweep(wh: Warehouse, run: str, threshold: float = 0.5, absolute: bool = False) -> pl.DataFrame:
    """One row per stored layer (macro `summarize_layers`), with each language pair's mean Spearman as a column."""
    wh.run_id(run)
    summary = wh.sql("select * exclude (run) from summarize_layers(?, absolute := ?) where run = ? order by layer",
                     [threshold, absolute, run])
    pairs = wh.sql("select layer, language_a || '-' || language_b as pair, mean_spearman from language_pair_summary "
                   "where run = ? order by layer, pair", [run])
    if pairs.height:
        wide = pairs.pivot(on="pair", index="layer", values="mean_spearman")
        summary = summary.join(wide.rename({c: f"rho_{c}" for c in wide.columns if c != "layer"}), on="layer", how="left")
    return summary
