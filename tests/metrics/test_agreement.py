"""How much two maps agree (the Compare page's tables): Spearman and top-20% IoU."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from abn.metrics import agreement_matrix, spearman, top_overlap


def test_spearman_matches_scipy_and_is_rank_based():
    rng = np.random.default_rng(0)
    a, b = torch.tensor(rng.random((1, 8, 8))), torch.tensor(rng.random((1, 8, 8)))
    assert spearman(a, b)[0] == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic, abs=1e-6)
    assert spearman(a, a**3)[0] == pytest.approx(1.0)
    assert spearman(a, -a)[0] == pytest.approx(-1.0)


def test_spearman_constant_maps():
    flat, ramp = torch.zeros(1, 4, 4), torch.arange(16.0).view(1, 4, 4)
    assert spearman(flat, flat)[0] == 1.0
    assert spearman(flat, ramp)[0] == 0.0


def test_top_overlap():
    a = torch.arange(100.0).view(1, 10, 10)
    assert top_overlap(a, a)[0] == 1.0
    assert top_overlap(a, -a)[0] == 0.0
    shifted = a.flatten().roll(10).view(1, 10, 10)  # top 20 → 10 shared of 30 in the union
    assert top_overlap(a, shifted)[0] == pytest.approx(10 / 30)


def test_shape_mismatch_and_bad_fraction_are_refused():
    with pytest.raises(ValueError, match="differ in size"):
        spearman(torch.zeros(1, 4, 4), torch.zeros(1, 5, 5))
    with pytest.raises(ValueError, match="fraction"):
        top_overlap(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), 0.0)


def test_agreement_matrix_is_symmetric_with_unit_diagonal():
    rng = np.random.default_rng(1)
    maps = {"a": rng.random((6, 6)), "b": rng.random((6, 6)), "c": rng.random((6, 6))}
    for metric in ("spearman", "iou"):
        names, m = agreement_matrix(maps, metric)
        assert names == ["a", "b", "c"]
        assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1.0)
    expected = spearmanr(maps["a"].ravel(), maps["b"].ravel()).statistic
    assert agreement_matrix(maps)[1][0, 1] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError):
        agreement_matrix(maps, "pearson")
