"""Turning images into the model's input: the card's evaluation transform, or a plain resize."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn


def preprocess(
    images: Image.Image | Sequence[Image.Image],
    *,
    input_size: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """PIL image(s) → B×3×H×W float tensor (bilinear resize to ``input_size`` = (H, W))."""
    pics = [images] if isinstance(images, Image.Image) else list(images)
    h, w = int(input_size[0]), int(input_size[1])
    arrays = [
        np.asarray(p.convert("RGB").resize((w, h), Image.Resampling.BILINEAR), np.float32)
        for p in pics
    ]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def input_spec(model: nn.Module) -> tuple[tuple[int, int], tuple[float, ...], tuple[float, ...]]:
    """(input_size, mean, std) from ``model.card``, else the registry's size and 0.5 stats."""
    card = getattr(model, "card", None)
    if card is not None:
        return tuple(card.input_size), tuple(card.mean), tuple(card.std)
    from abn.models import get_entry

    return tuple(get_entry(model.spec.name).input_size), (0.5,) * 3, (0.5,) * 3


def preprocess_for(model: nn.Module, images: Image.Image | Sequence[Image.Image]) -> torch.Tensor:
    """The model's input for ``images``: its card's evaluation transform (as ``abn eval`` and the
    dashboard use, :func:`~abn.data.transforms.transform_for`; the model sees the part
    :func:`~abn.data.transforms.seen_box` gives), or for a model without a card, a resize to
    its registry's input size with 0.5 stats."""
    card = getattr(model, "card", None)
    pics = [images] if isinstance(images, Image.Image) else list(images)
    if card is None:
        size, mean, std = input_spec(model)
        return preprocess(pics, input_size=size, mean=mean, std=std)
    from abn.data.transforms import transform_for

    transform = transform_for(card)
    return torch.stack([transform(p.convert("RGB")) for p in pics])
