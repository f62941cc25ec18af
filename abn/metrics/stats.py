"""Summaries with confidence intervals: :mod:`abn.stats`'s, under their metrics-layer name."""

from abn.stats import ALPHA, holm, mean_ci, paired_t, t_quantile

__all__ = ["ALPHA", "holm", "mean_ci", "paired_t", "t_quantile"]
