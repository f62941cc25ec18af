"""Similarity of two maps: Spearman rank correlation, SSIM, overlap of their top pixels."""

from __future__ import annotations

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


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation between paired maps (B×H×W → B); 0 when a map is constant."""
    ra, rb = _ranks(a), _ranks(b)
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    denom = ra.norm(dim=1) * rb.norm(dim=1)
    rho = (ra * rb).sum(dim=1) / denom.clamp(min=1e-12)
    return torch.where(denom > 0, rho, torch.zeros_like(rho)).float()


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
    """IoU of the top ``fraction`` of pixels of paired maps (B×H×W → B)."""
    k = max(1, round(fraction * a[0].numel()))

    def top(m: torch.Tensor) -> torch.Tensor:
        flat = m.flatten(1)
        mask = torch.zeros_like(flat, dtype=torch.bool)
        mask.scatter_(1, flat.topk(k, dim=1).indices, True)
        return mask

    ta, tb = top(a), top(b)
    return ((ta & tb).sum(1).float() / (ta | tb).sum(1).float()).cpu()
