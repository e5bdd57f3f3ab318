"""Synthetic activations with planted polyglot and monolingual neurons, and independent reference
statistics computed with numpy/scipy straight from the definitions in docs/definitions.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats

LANGS = ["ar", "ja", "nl", "sl"]
LABELS = ["anger", "fear", "joy", "love", "neutral", "sadness"]


@dataclass
class Planted:
    polyglot: dict[str, set[int]] = field(default_factory=lambda: {"joy": {3, 7}, "fear": {11}, "sadness": {20, 21}})
    monolingual: dict[tuple[str, str], set[int]] = field(
        default_factory=lambda: {
            ("anger", "ar"): {30},
            ("love", "ja"): {31},
            ("sadness", "sl"): {32},
            ("joy", "nl"): {33},
        }
    )


def make(
    seed: int = 0,
    per_cell: int = 100,
    neurons: int = 48,
    shift: float = 3.0,
    planted: Planted | None = None,
    langs=LANGS,
    labels=LABELS,
):
    """(values [S, N] as float32-rounded float64, languages [S], labels [S]) with each language's own
    per-neuron offset and scale, and the planted neurons shifted by SHIFT noise-sd for their label."""
    rng = np.random.default_rng(seed)
    planted = planted or Planted()
    lang = np.repeat(np.array(langs), len(labels) * per_cell)
    lab = np.tile(np.repeat(np.array(labels), per_cell), len(langs))
    signal = rng.normal(size=(lang.size, neurons))
    for label, ns in planted.polyglot.items():
        for n in ns:
            signal[lab == label, n] += shift
    for (label, language), ns in planted.monolingual.items():
        for n in ns:
            signal[(lab == label) & (lang == language), n] += shift
    offset = {L: rng.uniform(-50, 50, neurons) for L in langs}
    scale = {L: rng.uniform(0.2, 5, neurons) for L in langs}
    values = np.empty_like(signal)
    for L in langs:
        m = lang == L
        values[m] = offset[L] + scale[L] * signal[m]
    return values.astype(np.float32).astype(np.float64), lang, lab


def long_frame(values: np.ndarray, lang, lab, layer: int, texts=None) -> pl.DataFrame:
    s, n = values.shape
    return pl.DataFrame(
        {
            "sentence_id": np.repeat(np.arange(s), n),
            "language": np.repeat(lang, n),
            "label": np.repeat(lab, n),
            "text": np.repeat(texts if texts is not None else [f"sentence {i}" for i in range(s)], n),
            "layer": np.full(s * n, layer),
            "neuron": np.tile(np.arange(n), s),
            "value": values.reshape(-1).astype(np.float32),
        }
    )


def write_long(path: Path, frames: list[pl.DataFrame]) -> Path:
    pl.concat(frames).write_parquet(path)
    return path


# -- reference implementation of docs/definitions.md ----------------------------------------------


def zscore(values, lang):
    z = np.zeros_like(values)
    for L in np.unique(lang):
        m = lang == L
        mu, sd = values[m].mean(axis=0), values[m].std(axis=0)
        z[m] = np.where(sd > 0, (values[m] - mu) / np.where(sd > 0, sd, 1.0), 0.0)
    return z


def profiles(z, lang, lab) -> dict[tuple[str, str], tuple[np.ndarray, int]]:
    return {
        (L, l): (z[(lang == L) & (lab == l)].mean(axis=0), int(((lang == L) & (lab == l)).sum()))
        for L in np.unique(lang)
        for l in np.unique(lab)
        if ((lang == L) & (lab == l)).any()
    }


def between_label_variance(z, lab):
    means = np.stack([z[lab == l].mean(axis=0) for l in np.unique(lab)])
    return means.var(axis=0)


def label_variance(z, lab):
    return {l: z[lab == l].var(axis=0) for l in np.unique(lab)}


def crosslingual(P) -> dict[tuple[str, str, str], tuple[float, float]]:
    out = {}
    labels = sorted({l for _, l in P})
    for l in labels:
        langs = sorted(L for L, l2 in P if l2 == l)
        for a, b in combinations(langs, 2):
            x, y = P[(a, l)][0], P[(b, l)][0]
            out[(l, a, b)] = (stats.spearmanr(x, y).statistic, float(x @ y / np.sqrt((x @ x) * (y @ y))))
    return out


def classes(P, threshold=0.5, absolute=False) -> dict[tuple[str, int], tuple[str, str | None]]:
    out = {}
    labels = sorted({l for _, l in P})
    for l in labels:
        langs = sorted(L for L, l2 in P if l2 == l)
        prof = np.stack([P[(L, l)][0] for L in langs])
        active = (np.abs(prof) if absolute else prof) > threshold
        for n in range(prof.shape[1]):
            k = int(active[:, n].sum())
            if k == len(langs) and len(langs) >= 2:
                out[(l, n)] = ("polyglot", None)
            elif k == 1:
                out[(l, n)] = ("monolingual", langs[int(np.argmax(active[:, n]))])
            elif k == 0:
                out[(l, n)] = ("inactive", None)
            else:
                out[(l, n)] = ("shared", None)
    return out
