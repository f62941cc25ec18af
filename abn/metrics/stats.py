"""Summaries with confidence intervals."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import t as student_t


def t_quantile(dof: int) -> float:
    """Two-sided 95% Student-t quantile for ``dof`` degrees of freedom (NaN below 1)."""
    if dof <= 0:
        return math.nan
    return float(student_t.ppf(0.975, dof))


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
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
