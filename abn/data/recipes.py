"""Per-image preprocessing pipelines for the paper's recipes (torchvision.transforms.v2).

The bottom of the data layer: it knows recipes, not datasets or model cards (those build on it:
:mod:`abn.data.registry` gives each dataset a recipe, :mod:`abn.data.transforms` a checkpoint).

Every pipeline takes a ``PIL.Image`` or uint8 tensor and returns a normalised float32
``3×H×W`` tensor of exactly ``input_size``.

=========  ===========================================  ==========================
recipe     train                                        eval
=========  ===========================================  ==========================
cifar      pad 4 + random crop + horizontal flip        (resize if needed)
imagenet   resize shorter side to s·256/224, random     same resize + center crop
           crop, horizontal flip
compcars   resize to 323×224 (W×H), horizontal flip     resize
celeba     resize to input size, horizontal flip        resize
=========  ===========================================  ==========================

``resized_crop=(lo, hi)`` replaces the 'imagenet' recipe's training crop with an Inception-style
random resized crop (a box of ``lo``–``hi`` of the area, aspect 3/4–4/3, resized to the input
size; torchvision's reference ImageNet recipe). Evaluation is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

RECIPES = ("cifar", "imagenet", "compcars", "celeba")
#: Aspect-ratio range (w/h) of the random resized crop.
RESIZED_CROP_RATIO = (3 / 4, 4 / 3)
#: Input size (H, W) of each recipe when none is given.
DEFAULT_INPUT_SIZE: dict[str, tuple[int, int]] = {
    "cifar": (32, 32),
    "imagenet": (224, 224),
    "compcars": (224, 323),
    "celeba": (224, 224),
}


def as_size(size: int | Sequence[int]) -> tuple[int, int]:
    """``(H, W)`` from an int or a pair."""
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def resize_size(input_size: tuple[int, int]) -> int:
    """Shorter-side size before cropping in the 'imagenet' recipe (256 for 224)."""
    return round(max(input_size) * 256 / 224)


def build_transform(
    recipe: str,
    train: bool,
    input_size: int | Sequence[int] | None = None,
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
    resized_crop: Sequence[float] | None = None,
) -> v2.Compose:
    """The preprocessing pipeline for ``recipe`` (see the module docstring)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {RECIPES}")
    check_resized_crop(recipe, resized_crop)
    size = as_size(input_size) if input_size is not None else DEFAULT_INPUT_SIZE[recipe]
    if train and resized_crop is not None:
        crop = v2.RandomResizedCrop(size, tuple(resized_crop), RESIZED_CROP_RATIO, antialias=True)
        geometry: list[v2.Transform] = [crop, v2.RandomHorizontalFlip()]
    else:
        geometry = _geometry(recipe, train, size)
    steps: list[v2.Transform] = [v2.ToImage(), *geometry]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def check_resized_crop(recipe: str, resized_crop: Sequence[float] | None) -> None:
    """Refuse a random resized crop outside the 'imagenet' recipe or with a bad area range."""
    if resized_crop is None:
        return
    if recipe != "imagenet":
        raise ValueError(f"the random resized crop is for the 'imagenet' recipe, not {recipe!r}")
    lo, hi = resized_crop
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"resized crop area range must satisfy 0 < lo <= hi <= 1, not {lo}, {hi}")


def _geometry(recipe: str, train: bool, size: tuple[int, int]) -> list[v2.Transform]:
    flip = [v2.RandomHorizontalFlip()] if train else []
    if recipe == "cifar":
        crop = [v2.RandomCrop(size, padding=4)] if train else []
        return [v2.Resize(size, antialias=True), *crop, *flip]
    if recipe == "imagenet":
        resize = v2.Resize(resize_size(size), antialias=True)
        crop = v2.RandomCrop(size, pad_if_needed=True) if train else v2.CenterCrop(size)
        return [resize, crop, *flip]
    # compcars, celeba: plain resize to the input size (+ flip when training)
    return [v2.Resize(size, antialias=True), *flip]
