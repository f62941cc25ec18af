"""Statistics for comparing models and explanation methods: intervals and paired tests.

Everything here is plain numpy/scipy and sits below :mod:`abn.evaluate` and :mod:`abn.metrics`
(scipy is imported only where a t-distribution is needed: it costs most of a second to import,
and training imports this module):

- :func:`mean_ci`: a mean with its Student-t 95% interval;
- :func:`mcnemar_exact`: McNemar's exact test of two classifiers on the same images (a two-sided
  binomial test of the discordant pairs);
- :func:`holm`: Holm's step-down adjustment of p-values for several tests;
- :func:`paired_bootstrap_ci`: a seeded percentile bootstrap interval of a mean paired difference;
- :func:`paired_t`: the mean paired difference, its t-interval and the paired t-test's p-value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

RESAMPLES = 10_000
#: The significance level of the project's tests.
ALPHA = 0.05
#: Numbers drawn per chunk of bootstrap resamples (bounds the memory of one chunk).
_CHUNK = 4_000_000
#: Up to this many distinct differences the bootstrap draws multinomial counts, not indices.
_FEW_VALUES = 256


def t_quantile(dof: int) -> float:
    """Two-sided 95% Student-t quantile for ``dof`` degrees of freedom (NaN below 1)."""
    if dof <= 0:
        return math.nan
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.975, dof))


def mean_ci(values, level: float = 0.95) -> tuple[float, float, int]:
    """Mean and the half-width of its 95% t-interval; NaNs are ignored."""
    if level != 0.95:
        raise ValueError("only 95% intervals are supported")
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan, 0
    if x.size == 1:
        return float(x[0]), math.nan, 1
    half = t_quantile(x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(half), int(x.size)


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts ``b`` and ``c``.

    Under the null hypothesis each discordant pair is equally likely to favour either model, so
    ``min(b, c)`` is Binomial(b + c, 1/2): p = min(1, 2·Σ_{k ≤ min(b,c)} C(b+c, k) / 2^(b+c)),
    computed in exact integer arithmetic (1 when there are no discordant pairs).
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, not {b} and {c}")
    n, k = int(b) + int(c), min(int(b), int(c))
    if n == 0:
        return 1.0
    term = tail = 1  # C(n, 0)
    for i in range(k):
        term = term * (n - i) // (i + 1)  # C(n, i + 1), exactly
        tail += term
    return min(1.0, 2 * tail / 2**n)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values, in the given order: reject test i at level α when ``adj[i] <= α``.

    Sorted ascending, the j-th smallest (j = 1…m) becomes max over i ≤ j of min(1, (m − i + 1)·p_(i)).
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError("holm expects a 1-D sequence of p-values")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def paired_bootstrap_ci(
    differences,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Mean of per-item paired ``differences`` and its percentile bootstrap interval.

    Items (images) are resampled with replacement, ``resamples`` times, from a seeded generator.
    With few distinct values (−1/0/+1 for two classifiers' hits) a resample is drawn as their
    multinomial counts, the same distribution as drawing indices at a fraction of the memory and
    time. Returns ``(mean, low, high)``.
    """
    d = np.asarray(differences, dtype=float).ravel()
    if d.size == 0 or np.isnan(d).any():
        raise ValueError("paired_bootstrap_ci needs at least one difference and no NaN")
    values, counts = np.unique(d, return_counts=True)
    rng = np.random.default_rng(seed)
    if values.size <= _FEW_VALUES:  # e.g. the -1/0/+1 differences of two classifiers
        chunk = max(1, _CHUNK // values.size)
        draws = (rng.multinomial(d.size, counts / d.size, size=k) @ values for k in
                 _chunks(resamples, chunk))  # fmt: skip
    else:
        chunk = max(1, _CHUNK // d.size)
        draws = (d[rng.integers(0, d.size, (k, d.size))].sum(axis=1) for k in
                 _chunks(resamples, chunk))  # fmt: skip
    means = np.concatenate(list(draws)) / d.size
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(d.mean()), float(low), float(high)


def _chunks(total: int, size: int):
    """Sizes of consecutive chunks of at most ``size`` that add up to ``total``."""
    for start in range(0, total, size):
        yield min(size, total - start)


def paired_t(differences) -> tuple[float, float, float, int]:
    """Mean paired difference, its 95% t half-width, the two-sided paired t-test p-value and n.

    NaNs are dropped; with no spread the p-value is 1 for a zero mean and 0 otherwise.
    """
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    mean, half, n = mean_ci(d)
    if n < 2:
        return mean, half, math.nan, n
    se = d.std(ddof=1) / math.sqrt(n)
    if se == 0:
        return mean, 0.0, 1.0 if mean == 0 else 0.0, n
    from scipy.stats import t as student_t

    p = 2 * float(student_t.sf(abs(mean) / se, n - 1))
    return mean, half, p, n
