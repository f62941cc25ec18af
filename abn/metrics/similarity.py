"""Similarity of two maps: Spearman rank correlation, SSIM, overlap of their top pixels."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from skimage.metrics import structural_similarity


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share their mean rank) of each row of ``x`` flattened, B×N."""
    flat = x.flatten(1).double()
    order = flat.argsort(dim=1, stable=True)
    sorted_vals = flat.gather(1, order)
    ranks = torch.empty_like(flat)
    for b in range(flat.shape[0]):
        _, counts = torch.unique_consecutive(sorted_vals[b], return_counts=True)
        mean_rank = counts.cumsum(0).double() - (counts.double() + 1) / 2
        ranks[b, order[b]] = torch.repeat_interleave(mean_rank, counts)
    return ranks


def _pair(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = torch.as_tensor(np.asarray(a)), torch.as_tensor(np.asarray(b))
    if a.shape != b.shape:
        raise ValueError(
            f"maps differ in size ({tuple(a.shape)} vs {tuple(b.shape)}); resize them to one grid"
        )
    if a.numel() == 0:
        raise ValueError("maps are empty")
    return a, b


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation between paired maps (B×H×W → B), ties at average ranks.

    A constant map has no ranking: 1 if both maps are constant, else 0.
    """
    a, b = _pair(a, b)
    ra, rb = _ranks(a), _ranks(b)
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    na, nb = ra.norm(dim=1), rb.norm(dim=1)
    rho = ((ra * rb).sum(dim=1) / (na * nb).clamp(min=1e-12)).clamp(-1, 1)
    rho = torch.where((na > 0) & (nb > 0), rho, ((na == 0) & (nb == 0)).double())
    return rho.float()


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Structural similarity of paired maps in [0, 1] (B×H×W → B), via scikit-image."""
    out = []
    for x, y in zip(
        a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy(), strict=True
    ):
        side = min(x.shape)
        win = min(7, side if side % 2 else side - 1)
        out.append(
            structural_similarity(x, y, data_range=1.0, win_size=max(win, 3))
            if side >= 3
            else float(np.allclose(x, y))
        )
    return torch.tensor(out, dtype=torch.float32)


def top_overlap(a: torch.Tensor, b: torch.Tensor, fraction: float = 0.2) -> torch.Tensor:
    """IoU of the top ``fraction`` of pixels of paired maps (B×H×W → B; ties by position)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    a, b = _pair(a, b)
    k = max(1, round(fraction * a[0].numel()))

    def top(m: torch.Tensor) -> torch.Tensor:
        flat = m.flatten(1)
        mask = torch.zeros_like(flat, dtype=torch.bool)
        mask.scatter_(1, flat.argsort(dim=1, descending=True, stable=True)[:, :k], True)
        return mask

    ta, tb = top(a), top(b)
    return ((ta & tb).sum(1).float() / (ta | tb).sum(1).float()).cpu()


def agreement_matrix(
    maps: Mapping[str, object], metric: str = "spearman", fraction: float = 0.2
) -> tuple[list[str], np.ndarray]:
    """Pairwise agreement of named H×W maps: ``(names, N×N matrix)`` with a unit diagonal.

    ``metric`` is ``"spearman"`` or ``"iou"`` (overlap of the top ``fraction`` pixels).
    """
    if metric not in ("spearman", "iou"):
        raise ValueError(f"unknown metric {metric!r}; choose 'spearman' or 'iou'")
    names = list(maps)
    out = np.ones((len(names), len(names)))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a = torch.as_tensor(np.asarray(maps[names[i]]))[None]
            b = torch.as_tensor(np.asarray(maps[names[j]]))[None]
            value = spearman(a, b) if metric == "spearman" else top_overlap(a, b, fraction)
            out[i, j] = out[j, i] = float(value[0])
    return names, out
