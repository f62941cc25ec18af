"""abn.agreement: Spearman rank correlation and top-20% IoU of saliency maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from abn.agreement import agreement_matrix, spearman, top_fraction_iou, top_mask


def test_spearman_matches_scipy_and_is_rank_based():
    rng = np.random.default_rng(0)
    a, b = rng.random((8, 8)), rng.random((8, 8))
    assert spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic)
    assert spearman(a, a**3) == pytest.approx(1.0)  # monotone transform: same ranking
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(torch.tensor(a), torch.tensor(b)) == pytest.approx(spearman(a, b))


def test_spearman_constant_maps():
    flat, ramp = np.zeros((4, 4)), np.arange(16.0).reshape(4, 4)
    assert spearman(flat, flat) == 1.0
    assert spearman(flat, ramp) == 0.0


def test_top_fraction_iou():
    a = np.arange(100.0).reshape(10, 10)
    assert top_mask(a, 0.2).sum() == 20 and top_mask(a, 0.2)[-2:].all()
    assert top_fraction_iou(a, a) == 1.0
    assert top_fraction_iou(a, -a) == 0.0
    shifted = np.roll(a.ravel(), 10).reshape(10, 10)  # top 20 → 10 shared of 30 in union
    assert top_fraction_iou(a, shifted) == pytest.approx(10 / 30)


def test_shape_mismatch_and_bad_fraction_are_refused():
    with pytest.raises(ValueError, match="differ in size"):
        spearman(np.zeros((4, 4)), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="fraction"):
        top_fraction_iou(np.zeros((4, 4)), np.zeros((4, 4)), 0.0)


def test_agreement_matrix_is_symmetric_with_unit_diagonal():
    rng = np.random.default_rng(1)
    maps = {"a": rng.random((6, 6)), "b": rng.random((6, 6)), "c": rng.random((6, 6))}
    for metric in ("spearman", "iou"):
        names, m = agreement_matrix(maps, metric)
        assert names == ["a", "b", "c"]
        assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1.0)
    assert agreement_matrix(maps)[1][0, 1] == pytest.approx(spearman(maps["a"], maps["b"]))
    with pytest.raises(ValueError):
        agreement_matrix(maps, "pearson")
