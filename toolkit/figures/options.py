"""What a figure is drawn for: the run, layer and the options of each chart (`neurons chart`, the report)."""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.defaults import THRESHOLD


@dataclass
class ChartOptions:
    run: str
    layer: int | None = None
    label: str | None = None  # Figure 3: the label whose profiles are drawn
    labels: list[str] | None = None  # Figure 1: labels to draw (default: all)
    metric: str = "spearman"  # Figure 2: spearman or cosine
    at_equal_length: bool = False  # Figure 2: of the length-adjusted profiles (definition 25)
    top: int = 5  # neurons marked as top per panel
    threshold: float = THRESHOLD  # neuron classes
    absolute: bool = False
    ablation: int | None = None  # ablation chart: which ablation (default: the run's latest)
