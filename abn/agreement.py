"""How much two saliency maps agree: rank correlation and overlap of their top pixels.

Both functions take two maps of the same shape (any array-like, e.g. H×W numpy arrays or
tensors) and compare them pixel by pixel; they never look at the image.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.stats import rankdata

__all__ = ["agreement_matrix", "spearman", "top_fraction_iou"]


def _flat_pair(a: object, b: object) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(
            f"maps differ in size ({np.shape(a)} vs {np.shape(b)}); resize them to one grid first"
        )
    if x.size == 0:
        raise ValueError("maps are empty")
    return x, y


def spearman(a: object, b: object) -> float:
    """Spearman rank correlation of two maps, in [-1, 1] (ties get average ranks).

    A constant map has no ranking: the result is 1.0 if both maps are constant, else 0.0.
    """
    x, y = _flat_pair(a, b)
    rx, ry = rankdata(x) - (x.size + 1) / 2, rankdata(y) - (y.size + 1) / 2
    nx, ny = float(np.sqrt((rx * rx).sum())), float(np.sqrt((ry * ry).sum()))
    if nx == 0.0 or ny == 0.0:
        return 1.0 if nx == ny else 0.0
    return float(np.clip((rx * ry).sum() / (nx * ny), -1.0, 1.0))


def top_mask(a: object, fraction: float = 0.2) -> np.ndarray:
    """Boolean mask of the ``fraction`` highest-valued pixels (ties broken by position)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    x = np.asarray(a, dtype=np.float64)
    flat = x.ravel()
    k = max(1, round(fraction * flat.size))
    mask = np.zeros(flat.size, dtype=bool)
    mask[np.argsort(-flat, kind="stable")[:k]] = True
    return mask.reshape(x.shape)


def top_fraction_iou(a: object, b: object, fraction: float = 0.2) -> float:
    """Intersection over union of the top-``fraction`` pixels of two maps, in [0, 1]."""
    x, y = _flat_pair(a, b)
    ma, mb = top_mask(x, fraction), top_mask(y, fraction)
    union = np.logical_or(ma, mb).sum()
    return float(np.logical_and(ma, mb).sum() / union)


def agreement_matrix(
    maps: Mapping[str, object], metric: str = "spearman", fraction: float = 0.2
) -> tuple[list[str], np.ndarray]:
    """Pairwise agreement of named maps: ``(names, N×N matrix)``, diagonal 1.

    ``metric`` is ``"spearman"`` or ``"iou"`` (top-``fraction`` overlap).
    """
    if metric not in ("spearman", "iou"):
        raise ValueError(f"unknown metric {metric!r}; choose 'spearman' or 'iou'")
    names = list(maps)
    out = np.ones((len(names), len(names)))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            b = names[j]
            if metric == "spearman":
                v = spearman(maps[a], maps[b])
            else:
                v = top_fraction_iou(maps[a], maps[b], fraction)
            out[i, j] = out[j, i] = v
    return names, out
