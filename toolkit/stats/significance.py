"""Which findings survive chance: permutation nulls, bootstrap intervals and ANOVA for one run and layer.

The null is computed with array operations over the layer's z matrix (from the `zscores` view): the
sentences are grouped into contiguous language x label blocks, so one permutation (labels shuffled within
each language, label counts kept) is one row gather plus one `np.add.reduceat`, and a batch of
permutations is a single 3-D gather. The observed statistics are recomputed the same way from the
unpermuted data and checked against the SQL views before anything is stored, so the null and the
reported figures cannot drift apart. F and eta squared come from the view `label_anova`; scipy gives
their p-values.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime
from itertools import combinations

import numpy as np
import polars as pl
from scipy import stats

from toolkit import __version__
from toolkit.defaults import TESTED_CLASSES
from toolkit.errors import UserError
from toolkit.stats.analysis import resolve
from toolkit.stats.options import SignificanceOptions  # noqa: F401 - re-exported for library callers
from toolkit.store.arrow import insert_table
from toolkit.store.warehouse import Warehouse, reads

BATCH_BYTES = 256 * 2**20  # memory for one batch of gathered z matrices


@dataclass
class Layout:
    """The layer's z matrix with sentences in contiguous language x label blocks ("cells")."""

    z: np.ndarray  # [S, N] float64, rows ordered by (language, label)
    neurons: np.ndarray  # [N] the neuron id of each column
    languages: list[str]
    labels: list[str]
    cell_language: np.ndarray  # [K] index into languages
    cell_label: np.ndarray  # [K] index into labels
    starts: np.ndarray  # [K] first row of each cell
    counts: np.ndarray  # [K] sentences per cell
    language_blocks: list[tuple[int, int]]  # [start, end) rows of each language

    @property
    def has(self) -> np.ndarray:
        """[languages, labels] True where the cell exists."""
        h = np.zeros((len(self.languages), len(self.labels)), dtype=bool)
        h[self.cell_language, self.cell_label] = True
        return h


def make_layout(z: np.ndarray, languages, labels, neurons: np.ndarray | None = None) -> Layout:
    """A Layout from a z matrix [S, N] and each row's language and label: rows are sorted (stably) into
    contiguous language x label blocks."""
    languages = np.asarray(languages).astype(str)
    labels = np.asarray(labels).astype(str)
    order = np.lexsort((labels, languages))
    z, languages, labels = np.asarray(z, dtype=np.float64)[order], languages[order], labels[order]
    lang_names, lang_code = np.unique(languages, return_inverse=True)
    label_names, label_code = np.unique(labels, return_inverse=True)
    key = lang_code * len(label_names) + label_code
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = np.diff(np.r_[starts, len(key)])
    lang_starts = np.flatnonzero(np.r_[True, lang_code[1:] != lang_code[:-1]])
    lang_ends = np.r_[lang_starts[1:], len(key)]
    return Layout(
        z=z,
        neurons=np.arange(z.shape[1]) if neurons is None else np.asarray(neurons),
        languages=lang_names.tolist(),
        labels=label_names.tolist(),
        cell_language=lang_code[starts],
        cell_label=label_code[starts],
        starts=starts.astype(np.int64),
        counts=counts.astype(np.int64),
        language_blocks=list(zip(lang_starts.tolist(), lang_ends.tolist())),
    )


def load_layout(wh: Warehouse, run: str, layer: int) -> Layout:
    """Read z for one run and layer (view `zscores`), one row per sentence."""
    z = wh.sql(
        "select z.sentence_id, z.language, z.label, z.neuron, z.z from zscores z "
        "where z.run = ? and z.layer = ? order by z.language, z.label, z.sentence_id, z.neuron",
        [run, layer],
    )
    neurons = np.sort(z["neuron"].unique().to_numpy())
    sentences = z.filter(pl.col("neuron") == int(neurons[0])).select("language", "label")
    matrix = z["z"].to_numpy().reshape(sentences.height, len(neurons))
    return make_layout(matrix, sentences["language"].to_numpy(), sentences["label"].to_numpy(), neurons)


# -- statistics over a batch of row orders [B, S] -------------------------------------------------------


def profiles(layout: Layout, rows: np.ndarray) -> np.ndarray:
    """P[b, language, label, neuron] (NaN where the cell does not exist) for each row order in ROWS."""
    sums = np.add.reduceat(layout.z[rows], layout.starts, axis=1)  # [B, K, N]
    cell_means = sums / layout.counts[None, :, None]
    out = np.full((rows.shape[0], len(layout.languages), len(layout.labels), layout.z.shape[1]), np.nan)
    out[:, layout.cell_language, layout.cell_label, :] = cell_means
    return out


def class_counts(layout: Layout, P: np.ndarray, threshold: float, absolute: bool) -> tuple[np.ndarray, np.ndarray]:
    """Counts [B, labels, 3 classes (polyglot, shared, monolingual)] and monolingual neurons [B, languages]."""
    has = layout.has
    values = np.abs(P) if absolute else P
    active = np.nan_to_num(values, nan=-np.inf) > threshold  # [B, Lang, Lab, N]
    n_active = active.sum(axis=1)  # [B, Lab, N]
    n_lang = has.sum(axis=0)[None, :, None]  # [1, Lab, 1]
    polyglot = (n_active == n_lang) & (n_lang >= 2)
    mono = (n_active == 1) & ~polyglot
    shared = (n_active > 0) & ~polyglot & ~mono
    counts = np.stack([polyglot.sum(-1), shared.sum(-1), mono.sum(-1)], axis=-1)
    mono_in = active & mono[:, None, :, :]  # [B, Lang, Lab, N]
    per_language = mono_in.any(axis=2).sum(axis=-1)  # [B, Lang]
    return counts, per_language


def between_label_variance(layout: Layout, P: np.ndarray) -> np.ndarray:
    """[B, N]: variance across labels of each label's mean z pooled over languages."""
    n = np.zeros((len(layout.languages), len(layout.labels)))
    n[layout.cell_language, layout.cell_label] = layout.counts
    pooled = np.nansum(P * n[None, :, :, None], axis=1) / n.sum(axis=0)[None, :, None]  # [B, Lab, N]
    return pooled.var(axis=1)


def spearman_pairs(layout: Layout, P: np.ndarray) -> dict[tuple[str, str, str], np.ndarray]:
    """Spearman's rho (average ranks) between languages' profiles, per (label, a, b): arrays [B]."""
    ranks = stats.rankdata(P, axis=-1, method="average")
    centred = ranks - ranks.mean(axis=-1, keepdims=True)
    norm = np.sqrt((centred**2).sum(axis=-1))
    has = layout.has
    out = {}
    for li, label in enumerate(layout.labels):
        langs = [i for i in range(len(layout.languages)) if has[i, li]]
        for a, b in combinations(langs, 2):
            num = (centred[:, a, li] * centred[:, b, li]).sum(axis=-1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[(label, layout.languages[a], layout.languages[b])] = num / (norm[:, a, li] * norm[:, b, li])
    return out


# -- resampling ---------------------------------------------------------------------------------------


def permuted_rows(layout: Layout, rng: np.random.Generator, batch: int) -> np.ndarray:
    """[batch, S]: rows shuffled within each language (the labels stay in place)."""
    rows = np.tile(np.arange(layout.z.shape[0]), (batch, 1))
    for a, b in layout.language_blocks:
        rows[:, a:b] = rng.permuted(rows[:, a:b], axis=1)
    return rows


def bootstrap_rows(layout: Layout, rng: np.random.Generator, batch: int) -> np.ndarray:
    """[batch, S]: rows drawn with replacement within each language x label cell."""
    rows = np.empty((batch, layout.z.shape[0]), dtype=np.int64)
    for start, n in zip(layout.starts, layout.counts):
        rows[:, start : start + n] = start + rng.integers(0, n, size=(batch, n))
    return rows


def batches(total: int, layout: Layout) -> list[int]:
    per = max(1, int(BATCH_BYTES // max(layout.z.nbytes, 1)))
    return [min(per, total - i) for i in range(0, total, per)]


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH q-values: q_(i) = min over j >= i of p_(j) m / j, capped at 1."""
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def upper_p(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(1 + #null >= observed) / (1 + permutations), along axis 0."""
    return (1 + (null >= observed[None, ...] - 1e-12).sum(axis=0)) / (1 + null.shape[0])


@dataclass
class Significance:
    run: str
    layer: int
    settings: dict
    counts: pl.DataFrame  # label/language, neuron_class, observed, null_mean, null_low, null_high, p_value
    neurons: pl.DataFrame  # neuron, variance, p_value, q_value, eta_squared, omega_squared (pooled)
    correlation: pl.DataFrame  # label (None = mean), language_a, language_b, spearman, low, high, bias, min_cell
    anova: pl.DataFrame  # language (None = pooled), neuron, f, eta/omega squared, df_between, df_within, p_value
    seconds: float


def _check_observed(
    wh: Warehouse,
    run: str,
    layer: int,
    layout: Layout,
    counts: np.ndarray,
    per_language: np.ndarray,
    variance: np.ndarray,
    threshold: float,
    absolute: bool,
) -> None:
    """The array path must reproduce the SQL views on the unpermuted data."""
    sql_counts = wh.class_counts(run, layer, threshold, absolute)
    for li, label in enumerate(layout.labels):
        for ci, cls in enumerate(TESTED_CLASSES):
            want = sql_counts.filter((pl.col("label") == label) & (pl.col("neuron_class") == cls))["n_neurons"]
            if int(want[0]) != int(counts[li, ci]):
                raise RuntimeError(f"permutation engine disagrees with count_classes for {label}/{cls}")
    mono = dict(wh.monolingual_counts(run, layer, threshold, absolute).select("language", "n_neurons").iter_rows())
    if any(mono[l] != int(per_language[i]) for i, l in enumerate(layout.languages)):
        raise RuntimeError("permutation engine disagrees with count_monolingual")
    sql_var = wh.between_label_variance(run, layer).sort("neuron")["variance"].to_numpy()
    if not np.allclose(sql_var, variance, rtol=1e-6, atol=1e-9):
        raise RuntimeError("permutation engine disagrees with between_label_variance")


@reads
def significance(
    wh: Warehouse, run: str, layer: int | None = None, options: SignificanceOptions | None = None, progress=None
) -> Significance:
    """Permutation nulls of the class counts and of each neuron's between-label variance (BH q-values),
    bootstrap intervals of Spearman's rho, and ANOVA p-values, for one run and layer."""
    o = options or SignificanceOptions()
    permutations, bootstraps, seed, threshold, absolute = o.permutations, o.bootstraps, o.seed, o.threshold, o.absolute
    rl = resolve(wh, run, layer)
    start = time.perf_counter()
    layout = load_layout(wh, rl.run, rl.layer)
    if len(layout.labels) < 2:
        raise UserError(f"run '{run}' has a single label at layer {rl.layer}; significance needs at least two")
    rng = np.random.default_rng(seed)
    identity = np.arange(layout.z.shape[0])[None, :]
    P_obs = profiles(layout, identity)
    obs_counts, obs_mono = class_counts(layout, P_obs, threshold, absolute)
    obs_var = between_label_variance(layout, P_obs)
    _check_observed(wh, rl.run, rl.layer, layout, obs_counts[0], obs_mono[0], obs_var[0], threshold, absolute)

    null_counts, null_mono, null_var = [], [], []
    for b in batches(permutations, layout):
        P = profiles(layout, permuted_rows(layout, rng, b))
        c, m = class_counts(layout, P, threshold, absolute)
        null_counts.append(c)
        null_mono.append(m)
        null_var.append(between_label_variance(layout, P))
        if progress:
            progress(b)
    null_counts, null_mono, null_var = map(np.concatenate, (null_counts, null_mono, null_var))

    rows = []
    p_counts = upper_p(null_counts, obs_counts[0])
    for li, label in enumerate(layout.labels):
        for ci, cls in enumerate(TESTED_CLASSES):
            d = null_counts[:, li, ci]
            rows.append(
                (
                    label,
                    None,
                    cls,
                    int(obs_counts[0, li, ci]),
                    float(d.mean()),
                    float(np.quantile(d, 0.025)),
                    float(np.quantile(d, 0.975)),
                    float(p_counts[li, ci]),
                )
            )
    p_mono = upper_p(null_mono, obs_mono[0])
    for i, language in enumerate(layout.languages):
        d = null_mono[:, i]
        rows.append(
            (
                None,
                language,
                "monolingual",
                int(obs_mono[0, i]),
                float(d.mean()),
                float(np.quantile(d, 0.025)),
                float(np.quantile(d, 0.975)),
                float(p_mono[i]),
            )
        )
    counts = pl.DataFrame(
        rows,
        schema={  # typed: with hundreds of labels the first rows' null languages would set no type
            "label": pl.String,
            "language": pl.String,
            "neuron_class": pl.String,
            "observed": pl.Int64,
            "null_mean": pl.Float64,
            "null_low": pl.Float64,
            "null_high": pl.Float64,
            "p_value": pl.Float64,
        },
        orient="row",
    )
    p_var = upper_p(null_var, obs_var[0])
    neurons = pl.DataFrame(
        {"neuron": layout.neurons, "variance": obs_var[0], "p_value": p_var, "q_value": benjamini_hochberg(p_var)}
    )

    correlation = correlation_intervals(layout, P_obs, rng, bootstraps, progress)

    anova = wh.sql(
        "select language, neuron, f, eta_squared, omega_squared, df_between, df_within from label_anova "
        "where run = ? and layer = ? order by language nulls first, neuron",
        [rl.run, rl.layer],
    )
    f = anova["f"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    dfs = [anova[c].cast(pl.Float64).to_numpy() for c in ("df_between", "df_within")]
    anova = anova.with_columns(pl.Series("p_value", stats.f.sf(f, *dfs)).fill_nan(None))
    pooled = anova.filter(pl.col("language").is_null()).select(
        "neuron", *(pl.col(c).cast(pl.Float64) for c in ("eta_squared", "omega_squared"))
    )
    neurons = neurons.join(pooled, on="neuron", how="left")
    settings = {
        **asdict(o),
        "interval_method": INTERVAL_METHOD,
        "n_sentences": layout.z.shape[0],
        "n_neurons": layout.z.shape[1],
    }
    return Significance(rl.run, rl.layer, settings, counts, neurons, correlation, anova, time.perf_counter() - start)


INTERVAL_METHOD = "basic"
EFFECT_MEASURE = "omega_squared"  # what min_effect bounds (definition 10)


def basic_interval(draws: np.ndarray, estimate: float, level: float = 0.95) -> tuple[float, float, float]:
    """(low, high, bias) of the basic bootstrap interval [2 est - q_hi, 2 est - q_lo] (Davison & Hinkley 1997,
    eq. 5.6; definition 11). Resampling a cell's sentences adds noise to its profile, which attenuates a
    correlation once more, so the draws lie below the estimate; reflecting them around the estimate undoes
    that first-order bias, where percentile intervals (the draws' own quantiles) miss the truth. A correlation
    lies in [-1, 1], so the interval is cut to that range (which cannot lower its coverage)."""
    draws = draws[np.isfinite(draws)]
    if not draws.size or not np.isfinite(estimate):
        return float("nan"), float("nan"), float("nan")
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    low, high = np.clip([2 * estimate - hi, 2 * estimate - lo], -1.0, 1.0)
    return float(low), float(high), float(draws.mean() - estimate)


def correlation_intervals(
    layout: Layout, P_obs: np.ndarray, rng: np.random.Generator, bootstraps: int, progress=None
) -> pl.DataFrame:
    """Spearman's rho per label and language pair, and each pair's mean over labels (label None), with basic
    bootstrap 95 % intervals (sentences resampled within each language x label cell), the bootstrap bias and
    the smallest cell behind each interval."""
    obs_rho = spearman_pairs(layout, P_obs)
    boot: dict[tuple[str, str, str], list[np.ndarray]] = {k: [] for k in obs_rho}
    for b in batches(bootstraps, layout) if bootstraps else []:
        for k, v in spearman_pairs(layout, profiles(layout, bootstrap_rows(layout, rng, b))).items():
            boot[k].append(v)
        if progress:
            progress(b)
    size = {
        (layout.languages[li], layout.labels[lb]): int(n)
        for li, lb, n in zip(layout.cell_language, layout.cell_label, layout.counts)
    }
    nothing = np.array([np.nan])
    rows = []
    for (label, a, b), value in sorted(obs_rho.items()):
        draws = np.concatenate(boot[(label, a, b)]) if bootstraps else nothing
        rows.append(
            (
                label,
                a,
                b,
                float(value[0]),
                *basic_interval(draws, float(value[0])),
                min(size[(a, label)], size[(b, label)]),
            )
        )
    for a, b in sorted({(a, b) for _, a, b in obs_rho}):
        keys = [k for k in obs_rho if k[1:] == (a, b)]
        mean_obs = float(np.mean([obs_rho[k][0] for k in keys]))
        draws = np.mean([np.concatenate(boot[k]) for k in keys], axis=0) if bootstraps else nothing
        rows.append(
            (
                None,
                a,
                b,
                mean_obs,
                *basic_interval(draws, mean_obs),
                min(min(size[(a, k[0])], size[(b, k[0])]) for k in keys),
            )
        )
    return pl.DataFrame(
        rows,
        schema={
            "label": pl.String,
            "language_a": pl.String,
            "language_b": pl.String,
            "spearman": pl.Float64,
            "low": pl.Float64,
            "high": pl.Float64,
            "bias": pl.Float64,
            "min_cell": pl.Int32,
        },
        orient="row",
    )


def store(wh: Warehouse, result: Significance) -> int:
    """Replace the run and layer's stored significance results with RESULT, in one transaction."""
    run_id = wh.run_id(result.run)
    with wh.transaction() as con:
        old = "select analysis_id from significance where run_id = ? and layer = ?"
        for table in ("significance_counts", "significance_neurons", "significance_correlation", "significance_anova"):
            con.execute(f"delete from {table} where analysis_id in ({old})", [run_id, result.layer])
        con.execute("delete from significance where run_id = ? and layer = ?", [run_id, result.layer])
        analysis_id = wh.next_id("significance", "analysis_id")
        s = result.settings
        row = {
            "analysis_id": analysis_id,
            "run_id": run_id,
            "layer": result.layer,
            **{
                k: s[k]
                for k in (
                    "permutations",
                    "bootstraps",
                    "seed",
                    "threshold",
                    "absolute",
                    "alpha",
                    "n_sentences",
                    "n_neurons",
                    "min_effect",
                    "interval_method",
                )
            },
            "effect_measure": EFFECT_MEASURE,
            "seconds": result.seconds,
            "created_at": datetime.now(),
            "toolkit_version": __version__,
        }
        con.execute(
            f"insert into significance ({', '.join(row)}) values ({', '.join('?' for _ in row)})", list(row.values())
        )
        for table, frame in (
            ("significance_counts", result.counts),
            ("significance_neurons", result.neurons),
            ("significance_correlation", result.correlation),
            ("significance_anova", result.anova),
        ):
            insert_table(con, table, frame.to_arrow(), "analysis_id", analysis_id)
    return analysis_id
