"""Linear probes over one layer's neurons: how well the label can be read from them, in which language, by
which neurons (NeuroX, Dalvi et al. 2019), and how much of it a control task would also reach (Hewitt &
Liang 2019).

Features are the layer's z-scores (definition 1, view `zscores`). A probe is an elastic-net logistic
regression (scikit-learn, saga solver) minimising mean cross-entropy + l1 |w|_1 + l2 |w|_2^2, NeuroX's
objective; scikit-learn's C and l1_ratio are set to match it exactly. Each language's sentences are split
once, seeded and stratified by label, into train (80 %) and held-out (20 %) parts. One probe is trained on the
train parts of all train languages together ('all'), and one per train language when there are several;
every probe is scored on the held-out part of each test language (a language it was not trained on counts
whole). Scores use the warehouse's own macro-F1 (toolkit.store.evaluation). The 'all' probe's weight mass ranks the
neurons; probes retrained on its top-k neurons are compared with random k-sets; the control task replaces
each sentence's label with a random one (same label shares, seeded) and trains the same probe.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from toolkit import __version__
from toolkit.errors import UserError
from toolkit.stats.analysis import resolve
from toolkit.stats.options import ProbeOptions  # noqa: F401 - re-exported for library callers
from toolkit.store.arrow import insert_table
from toolkit.store.evaluation import score
from toolkit.store.warehouse import Warehouse, reads

HELD_OUT = 0.2


@dataclass
class ProbeResult:
    run: str
    layer: int
    options: ProbeOptions
    scores: pl.DataFrame  # train/test language, n_sentences, accuracy, macro_f1, control_accuracy, majority_accuracy
    weights: pl.DataFrame  # train_language, neuron, weight_mass, rank
    topk: pl.DataFrame  # k, accuracy, control_mean/min/max, n_controls, controls_at_least, full/majority_accuracy
    seconds: float
    notes: list[str] = field(default_factory=list)


def layer_matrix(wh: Warehouse, run: str, layer: int) -> tuple[np.ndarray, pl.DataFrame, np.ndarray]:
    """(z [sentences, neurons], the sentences' sentence_id/language/label in row order, neuron ids) of a layer."""
    z = wh.sql(
        "select sentence_id, language, label, neuron, z from zscores where run = ? and layer = ? "
        "order by sentence_id, neuron",
        [run, layer],
    )
    neurons = np.sort(z["neuron"].unique().to_numpy())
    sentences = z.filter(pl.col("neuron") == int(neurons[0])).select("sentence_id", "language", "label")
    return z["z"].to_numpy().reshape(sentences.height, len(neurons)), sentences, neurons


def sklearn_parameters(l1: float, l2: float, n: int) -> tuple[float, float]:
    """(C, l1_ratio) for which scikit-learn's objective C sum(loss) + r |w|_1 + (1 - r)/2 |w|^2 is N (l1 + 2 l2) C
    times NeuroX's mean(loss) + l1 |w|_1 + l2 |w|^2, so both have the same minimiser."""
    return 1.0 / (n * (l1 + 2 * l2)), l1 / (l1 + 2 * l2)


def fit(x: np.ndarray, y: np.ndarray, o: ProbeOptions):
    """An elastic-net logistic regression on X, Y (see the module docstring)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    c, ratio = sklearn_parameters(o.l1, o.l2, len(y))
    model = LogisticRegression(l1_ratio=ratio, C=c, solver="saga", max_iter=o.max_iter, random_state=o.seed, tol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def held_out_split(sentences: pl.DataFrame, seed: int) -> np.ndarray:
    """True for the held-out rows: about HELD_OUT of each language x label cell, seeded."""
    rng = np.random.default_rng(seed)
    held = np.zeros(sentences.height, dtype=bool)
    keys = sentences.select("language", "label").with_row_index("row")
    for _, cell in keys.group_by("language", "label", maintain_order=True):
        rows = cell["row"].to_numpy()
        n = int(round(len(rows) * HELD_OUT)) if len(rows) > 1 else 0
        held[rng.permutation(rows)[:n]] = True
    return held


def majority_accuracy(train_labels: np.ndarray, test_labels: np.ndarray) -> float:
    """Accuracy on TEST_LABELS of always answering the most frequent of TRAIN_LABELS (ties: the first in sorted
    order): what a probe that learnt nothing from the neurons scores."""
    names, counts = np.unique(train_labels, return_counts=True)
    return float(np.mean(test_labels == names[np.argmax(counts)]))


def weight_mass(model, n_neurons: int) -> np.ndarray:
    """Per neuron, the sum over classes of |w| (a binary probe has one weight row)."""
    return np.abs(model.coef_).sum(axis=0) if model.coef_.shape[1] == n_neurons else np.zeros(n_neurons)


def _topk(
    z: np.ndarray,
    labels: np.ndarray,
    neurons: np.ndarray,
    weights: pl.DataFrame,
    all_train: np.ndarray,
    all_test: np.ndarray,
    o: ProbeOptions,
    progress,
) -> pl.DataFrame:
    """Probes on the top-k neurons of the all-languages probe's ranking against probes on random k-sets: k,
    accuracy, control_mean, control_min, control_max, n_controls, controls_at_least (no rows when there is nothing
    to test on)."""
    topk_rows = []
    if all_test.any():
        ranking = weights.filter(pl.col("train_language") == "all").sort("rank")["neuron"].to_numpy()
        column = {int(n): i for i, n in enumerate(neurons)}
        pick = np.random.default_rng(o.seed + 2)
        for k in sorted(set(o.top)):
            if k >= len(neurons):
                continue

            def accuracy(cols: np.ndarray) -> float:
                m = fit(z[all_train][:, cols], labels[all_train], o)
                return float(np.mean(m.predict(z[all_test][:, cols]) == labels[all_test]))

            top = accuracy(np.array([column[int(n)] for n in ranking[:k]]))
            controls = [accuracy(np.sort(pick.choice(len(neurons), size=k, replace=False))) for _ in range(o.controls)]
            topk_rows.append(
                (
                    k,
                    top,
                    *(
                        (float(np.mean(controls)), float(np.min(controls)), float(np.max(controls)))
                        if controls
                        else (None,) * 3
                    ),
                    o.controls,
                    int(np.sum(np.asarray(controls) >= top)),
                )
            )
            if progress:
                progress(1)
    return pl.DataFrame(
        topk_rows,
        schema={
            "k": pl.Int64,
            "accuracy": pl.Float64,
            "control_mean": pl.Float64,
            "control_min": pl.Float64,
            "control_max": pl.Float64,
            "n_controls": pl.Int64,
            "controls_at_least": pl.Int64,
        },
        orient="row",
    )


@reads
def probe(
    wh: Warehouse, run: str, layer: int | None = None, options: ProbeOptions | None = None, progress=None
) -> ProbeResult:
    """Train and score the probes of one run and layer (see the module docstring)."""
    o = options or ProbeOptions()
    rl = resolve(wh, run, layer)
    start = time.perf_counter()
    z, sentences, neurons = layer_matrix(wh, rl.run, rl.layer)
    languages = sorted(sentences["language"].unique().to_list())
    train_langs = list(o.train_languages or languages)
    test_langs = list(o.test_languages or languages)
    unknown = sorted(set(train_langs + test_langs) - set(languages))
    if unknown:
        raise UserError(f"run '{run}' has no language {', '.join(unknown)} (languages: {', '.join(languages)})")
    lang = sentences["language"].to_numpy()
    labels = sentences["label"].to_numpy()
    held = held_out_split(sentences, o.seed)
    rng = np.random.default_rng(o.seed + 1)
    control = labels.copy()
    for language in languages:  # the control task: each sentence's label drawn at random, label shares kept
        rows = np.flatnonzero(lang == language)
        control[rows] = rng.permutation(labels[rows])

    def train_rows(languages_: list[str]) -> np.ndarray:
        return np.isin(lang, languages_) & ~held

    def test_rows(language: str, trained_on: list[str]) -> np.ndarray:
        return (lang == language) & (held | (language not in trained_on))

    if len(set(labels[train_rows(train_langs)])) < 2:
        raise UserError("the training sentences have a single label; a probe needs at least two")
    probes = [("all", train_langs)] + ([(t, [t]) for t in train_langs] if len(train_langs) > 1 else [])
    score_rows, weight_rows, all_model = [], [], None
    for name, langs in probes:
        rows = train_rows(langs)
        if len(set(labels[rows])) < 2:
            continue
        model = fit(z[rows], labels[rows], o)
        control_model = fit(z[rows], control[rows], o)
        if name == "all":
            all_model = model
        mass = weight_mass(model, z.shape[1])
        order = np.lexsort((neurons, -mass))
        ranks = np.empty(len(neurons), dtype=np.int64)
        ranks[order] = np.arange(1, len(neurons) + 1)
        weight_rows.append(
            pl.DataFrame({"train_language": name, "neuron": neurons, "weight_mass": mass, "rank": ranks})
        )
        for language in test_langs:
            test = test_rows(language, langs)
            if not test.any():
                continue
            predicted = model.predict(z[test])
            s = score([language] * int(test.sum()), labels[test].tolist(), predicted.tolist()).row(0, named=True)
            control_accuracy = float(np.mean(control_model.predict(z[test]) == control[test]))
            majority = majority_accuracy(labels[rows], labels[test])
            score_rows.append(
                (name, language, s["n_sentences"], s["accuracy"], s["macro_f1"], control_accuracy, majority)
            )
        if progress:
            progress(1)
    scores = pl.DataFrame(
        score_rows,
        schema={
            "train_language": pl.String,
            "test_language": pl.String,
            "n_sentences": pl.Int64,
            "accuracy": pl.Float64,
            "macro_f1": pl.Float64,
            "control_accuracy": pl.Float64,
            "majority_accuracy": pl.Float64,
        },
        orient="row",
    )
    weights = pl.concat(weight_rows)

    all_train, all_test = train_rows(train_langs), np.isin(lang, test_langs) & held
    if all_model is None:  # no probe on every training language: nothing whose ranking to test
        all_test = np.zeros_like(all_test)
    topk = _topk(z, labels, neurons, weights, all_train, all_test, o, progress)
    if topk.height:  # what says whether the ranking means anything: the full probe against the majority label
        full = float(np.mean(all_model.predict(z[all_test]) == labels[all_test]))
        topk = topk.with_columns(
            full_accuracy=pl.lit(full),
            majority_accuracy=pl.lit(majority_accuracy(labels[all_train], labels[all_test])),
            n_test=pl.lit(int(all_test.sum())),
        )
    return ProbeResult(rl.run, rl.layer, o, scores, weights, topk, time.perf_counter() - start)


def store(wh: Warehouse, result: ProbeResult) -> int:
    """Store RESULT as a new probing analysis of its run and layer (the views show the latest); its id."""
    run_id = wh.run_id(result.run)
    with wh.transaction() as con:
        probe_id = wh.next_id("probes", "probe_id")
        con.execute(
            "insert into probes values (?, ?, ?, ?, ?, ?, ?)",
            [
                probe_id,
                run_id,
                result.layer,
                json.dumps(asdict(result.options)),
                result.seconds,
                datetime.now(),
                __version__,
            ],
        )
        for table, frame in (
            ("probe_results", result.scores),
            ("probe_weights", result.weights),
            ("probe_topk_results", result.topk),
        ):
            if frame.height:
                insert_table(con, table, frame.to_arrow(), "probe_id", probe_id)
    return probe_id
