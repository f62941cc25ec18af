"""Deletion and insertion curves (Petsiuk et al., RISE, 2018) and their areas.

Pixels are removed (deletion) or revealed (insertion) in the order the map ranks them, in
``steps`` equal steps, and the explained class's probability is tracked. A faithful map makes the
deletion curve fall fast (low AUC) and the insertion curve rise fast (high AUC). Every perturbed
image of every step is built as one tensor operation and scored in large batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torchvision.transforms.v2.functional as TF
from torch import nn

from ._model import target_probability

Mode = Literal["deletion", "insertion"]
Baseline = Literal["zeros", "blur", "mean"]
DEFAULT_BASELINE: dict[str, Baseline] = {"deletion": "zeros", "insertion": "blur"}


@dataclass
class PerturbationCurves:
    """Per-image curves: ``scores[b, s]`` is P(target) after step ``s`` of ``fractions``."""

    mode: Mode
    fractions: torch.Tensor  # (S+1,)
    scores: torch.Tensor  # (B, S+1)

    @property
    def auc(self) -> torch.Tensor:
        """Area under each curve (trapezoid rule over the fraction of pixels)."""
        return torch.trapezoid(self.scores, self.fractions, dim=-1)


def baseline_image(images: torch.Tensor, kind: Baseline | torch.Tensor) -> torch.Tensor:
    """What removed pixels become: ``zeros`` (model-input zero, the dataset mean colour after
    normalisation), ``blur`` (a strong Gaussian blur of the image) or ``mean`` (each image's
    mean colour); or an explicit tensor broadcastable to ``images``."""
    if isinstance(kind, torch.Tensor):
        return kind.to(images).expand_as(images)
    if kind == "zeros":
        return torch.zeros_like(images)
    if kind == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    if kind == "blur":
        side = min(images.shape[-2:])
        kernel = max(3, (side // 4) | 1)
        return TF.gaussian_blur(images, [kernel, kernel], [side / 8.0, side / 8.0])
    raise ValueError(f"unknown baseline {kind!r}; choose zeros, blur or mean")


def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """Rank of each pixel, 0 = most important (ties broken by position), B×H×W."""
    flat = maps.flatten(1)
    order = flat.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=maps.device).expand_as(order))
    return ranks.view_as(maps)


def step_counts(num_pixels: int, steps: int) -> torch.Tensor:
    """How many pixels are perturbed after each of the ``steps`` steps (starting at 0)."""
    return torch.linspace(0, num_pixels, steps + 1).round().long()


def perturbed_images(
    images: torch.Tensor,
    maps: torch.Tensor,
    mode: Mode,
    steps: int,
    baseline: Baseline | torch.Tensor,
) -> torch.Tensor:
    """All perturbed images, (B, S+1, C, H, W); ``baseline`` as :func:`baseline_image` takes it."""
    h, w = images.shape[-2:]
    counts = step_counts(h * w, steps).to(images.device)
    removed = pixel_ranks(maps).unsqueeze(1) < counts.view(1, -1, 1, 1)  # B×(S+1)×H×W
    base = baseline_image(images, baseline)
    src, dst = (images, base) if mode == "deletion" else (base, images)
    return torch.where(removed.unsqueeze(2), dst.unsqueeze(1), src.unsqueeze(1))


def perturbation_curves(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    mode: Mode = "deletion",
    steps: int = 16,
    baseline: Baseline | torch.Tensor | None = None,
    batch_size: int = 256,
    images_per_chunk: int = 16,
) -> PerturbationCurves:
    """Deletion or insertion curves of ``maps`` (B×H×W, input resolution) for ``targets``."""
    if maps.shape[-2:] != images.shape[-2:]:
        raise ValueError(
            f"maps {tuple(maps.shape[-2:])} must match the images' size {tuple(images.shape[-2:])}"
        )
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    baseline = DEFAULT_BASELINE[mode] if baseline is None else baseline
    maps = maps.to(images.device)
    targets = torch.as_tensor(targets, device=images.device).view(-1)
    base = baseline_image(images, baseline)  # B×C×H×W: each chunk takes its own rows
    rows = []
    for sl in _chunks(images.shape[0], images_per_chunk):
        pert = perturbed_images(images[sl], maps[sl], mode, steps, base[sl])
        n = pert.shape[1]
        t = targets[sl].repeat_interleave(n)
        rows.append(target_probability(model, pert.flatten(0, 1), t, batch_size).view(-1, n))
    fractions = step_counts(images.shape[-2] * images.shape[-1], steps).double()
    fractions = (fractions / fractions[-1]).float()
    return PerturbationCurves(mode, fractions, torch.cat(rows).cpu())


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
