"""``abn.stats``: McNemar's exact test, Holm's adjustment, the paired bootstrap and paired t."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from abn.stats import holm, mcnemar_exact, paired_bootstrap_ci, paired_t


def test_mcnemar_matches_the_hand_computed_binomial_tail() -> None:
    # b=10, c=2: p = 2 * sum_{k<=2} C(12, k) / 2^12 = 2 * (1 + 12 + 66) / 4096
    assert mcnemar_exact(10, 2) == pytest.approx(2 * 79 / 4096, rel=1e-12)
    assert mcnemar_exact(2, 10) == mcnemar_exact(10, 2)
    assert mcnemar_exact(0, 0) == 1.0  # no discordant pair: no evidence either way
    assert mcnemar_exact(5, 5) == 1.0  # the doubled tail is capped at 1
    assert mcnemar_exact(0, 7) == pytest.approx(2 / 2**7)


@pytest.mark.parametrize(("b", "c"), [(10, 2), (3, 4), (0, 9), (408, 385), (120, 60), (700, 900)])
def test_mcnemar_agrees_with_scipy_binomtest(b: int, c: int) -> None:
    expected = sps.binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="discordant counts"):
        mcnemar_exact(-1, 3)


def test_holm_against_a_hand_worked_example() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> kept at 0.06
    got = holm([0.01, 0.04, 0.03, 0.005])
    assert got == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == pytest.approx([0.02])  # one test: unchanged
    assert holm([]).size == 0


def test_holm_is_monotone_and_never_below_the_raw_p() -> None:
    p = np.random.default_rng(3).uniform(0, 0.2, 30)
    adj = holm(p)
    assert (adj >= p).all()
    order = np.argsort(p)
    assert (np.diff(adj[order]) >= 0).all()


def _plant(plus: int, minus: int, n: int) -> np.ndarray:
    return np.r_[np.ones(plus), -np.ones(minus), np.zeros(n - plus - minus)]


def test_bootstrap_ci_excludes_zero_for_a_planted_difference() -> None:
    mean, low, high = paired_bootstrap_ci(_plant(600, 300, 10_000))
    assert mean == pytest.approx(0.03)
    assert 0 < low < mean < high


def test_bootstrap_ci_includes_zero_under_the_null() -> None:
    mean, low, high = paired_bootstrap_ci(_plant(400, 400, 10_000))
    assert mean == 0 and low < 0 < high


def test_bootstrap_is_seeded_and_matches_the_normal_interval() -> None:
    d = np.random.default_rng(0).normal(0.3, 2.0, 2000)
    first = paired_bootstrap_ci(d, seed=5)
    assert paired_bootstrap_ci(d, seed=5) == first
    assert paired_bootstrap_ci(d, seed=6) != first
    # a percentile bootstrap of a mean of 2000 values is close to mean ± 1.96·sd/√n
    half = 1.96 * d.std(ddof=1) / math.sqrt(d.size)
    assert first[1] == pytest.approx(d.mean() - half, abs=0.2 * half)
    assert first[2] == pytest.approx(d.mean() + half, abs=0.2 * half)


def test_bootstrap_matches_resampling_indices() -> None:
    """The multinomial shortcut has the distribution of drawing images with replacement."""
    d = _plant(60, 30, 1000)
    rng = np.random.default_rng(1)
    means = d[rng.integers(0, d.size, (4000, d.size))].mean(axis=1)
    naive = np.quantile(means, [0.025, 0.975])
    _, low, high = paired_bootstrap_ci(d, resamples=4000)
    assert low == pytest.approx(naive[0], abs=0.004) and high == pytest.approx(naive[1], abs=0.004)


def test_bootstrap_refuses_empty_or_nan() -> None:
    with pytest.raises(ValueError, match="at least one"):
        paired_bootstrap_ci([])
    with pytest.raises(ValueError, match="no NaN"):
        paired_bootstrap_ci([1.0, math.nan])


def test_paired_t_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 50), rng.normal(0.4, 1, 50)
    mean, half, p, n = paired_t(b - a)
    ref = sps.ttest_rel(b, a)
    assert p == pytest.approx(ref.pvalue) and n == 50
    ci = ref.confidence_interval()
    assert mean - half == pytest.approx(ci.low) and mean + half == pytest.approx(ci.high)
    assert paired_t([0.0, 0.0, 0.0])[2] == 1.0
    assert math.isnan(paired_t([1.0])[2])
