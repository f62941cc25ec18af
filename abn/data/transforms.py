"""The preprocessing a checkpoint's model expects, from its model card.

The pipelines themselves live one layer down in :mod:`abn.data.recipes` (re-exported here, so
``from abn.data.transforms import build_transform`` keeps working); this module adds what needs a
model card and the dataset registry: the card's recipe (:func:`recipe_for`), its evaluation
transform (:func:`transform_for`) and what of an image the model sees (:func:`seen_box`,
:func:`fit_note`).
"""

from __future__ import annotations

from torchvision.transforms import v2

from abn.data.recipes import (
    DEFAULT_INPUT_SIZE,
    RECIPES,
    RESIZED_CROP_RATIO,
    as_size,
    build_transform,
    check_resized_crop,
    resize_size,
)
from abn.data.registry import dataset_info

__all__ = [
    "DEFAULT_INPUT_SIZE",
    "RECIPES",
    "RESIZED_CROP_RATIO",
    "as_size",
    "build_transform",
    "check_resized_crop",
    "fit_note",
    "recipe_for",
    "resize_size",
    "seen_box",
    "transform_for",
]


def recipe_for(card) -> str:
    """The recipe of a checkpoint's :class:`~abn.card.ModelCard`: the card's ``recipe["recipe"]``,
    else its dataset's; for an unknown dataset, ``cifar`` up to 64 px and ``imagenet`` above."""
    recipe = (card.recipe or {}).get("recipe")
    if recipe in RECIPES:
        return recipe
    try:
        return dataset_info(card.dataset).recipe
    except (KeyError, ValueError):
        return "cifar" if max(card.input_size) <= 64 else "imagenet"


def transform_for(card, train: bool = False) -> v2.Compose:
    """The preprocessing a checkpoint's model expects (:func:`recipe_for` at the card's input
    size and normalisation)."""
    return build_transform(recipe_for(card), train, card.input_size, card.mean, card.std)


def seen_box(image_size: tuple[int, int], card) -> tuple[int, int, int, int]:
    """The part of an image of ``image_size`` (W, H) that :func:`transform_for` shows the model,
    as a PIL box (left, top, right, bottom): the centre crop of the 'imagenet' recipe (its
    shorter side is resized first), else the whole image (resized as it is)."""
    w, h = image_size
    if recipe_for(card) != "imagenet":
        return (0, 0, w, h)
    th, tw = as_size(card.input_size)
    scale = resize_size((th, tw)) / min(w, h)
    cw, ch = min(w, round(tw / scale)), min(h, round(th / scale))
    left, top = (w - cw) // 2, (h - ch) // 2
    return (left, top, left + cw, top + ch)


def fit_note(image_size: tuple[int, int], card) -> str:
    """How an image of ``image_size`` (W, H) becomes the model's input, in words, saying when
    the model sees only part of it or a distorted copy."""
    w, h = image_size
    th, tw = as_size(card.input_size)
    note = f"{w}×{h} image → model input {tw}×{th} px"
    if recipe_for(card) == "imagenet":  # shorter side resized, then the centre cropped
        scale = resize_size((th, tw)) / min(w, h)
        seen = min(1.0, tw / (w * scale)) * min(1.0, th / (h * scale))  # seen_box, unrounded
        if seen < 0.98:
            note += f", centre crop: the model sees the middle {seen:.0%} of the image"
    elif abs((w / h) / (tw / th) - 1) > 0.02:  # resized to the input size as it is
        note += ", stretched to fit (the aspect ratio changes)"
    if min(w, h) < min(th, tw) / 4:
        note += "; a very small image, so its prediction may mean little"
    return note
