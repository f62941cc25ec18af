"""Summaries with confidence intervals."""

from __future__ import annotations

import math

import numpy as np

# Two-sided 95% Student-t quantiles for small samples; 1.96 beyond.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}  # fmt: skip


def t_quantile(dof: int) -> float:
    if dof <= 0:
        return math.nan
    keys = [k for k in _T95 if k >= dof]
    return _T95[min(keys)] if keys else 1.96


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
