"""build_transform: output shapes, dtype, normalisation and train-time randomness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from abn.data.transforms import RECIPES, build_transform, transform_for

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


@pytest.mark.parametrize(
    ("recipe", "size", "source"),
    [
        ("cifar", (32, 32), (32, 32)),
        ("imagenet", (224, 224), (300, 200)),
        ("imagenet", (128, 128), (160, 160)),
        ("compcars", (224, 323), (500, 375)),
        ("celeba", (64, 64), (178, 218)),
    ],
)
@pytest.mark.parametrize("train", [True, False])
def test_shapes(recipe: str, size: tuple[int, int], source: tuple[int, int], train: bool) -> None:
    image = Image.new("RGB", source, (10, 200, 90))
    out = build_transform(recipe, train, size, MEAN, STD)(image)
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, *size)


def test_normalisation_and_tensor_input() -> None:
    x = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    out = build_transform("cifar", False, 32, MEAN, STD)(x)
    expected = torch.tensor([(1 - m) / s for m, s in zip(MEAN, STD, strict=True)])
    assert torch.allclose(out[:, 16, 16], expected)


def test_train_is_random_eval_is_not() -> None:
    image = Image.effect_noise((32, 32), 64).convert("RGB")
    train = build_transform("cifar", True, 32, MEAN, STD)
    evaluate = build_transform("cifar", False, 32, MEAN, STD)
    torch.manual_seed(0)
    outs = [train(image) for _ in range(6)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    assert torch.equal(evaluate(image), evaluate(image))


def test_cifar_eval_keeps_pixels() -> None:
    x = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    out = build_transform("cifar", False, 32, (0, 0, 0), (1, 1, 1))(x)
    assert torch.allclose(out, x.float() / 255)


def test_unknown_recipe() -> None:
    assert set(RECIPES) == {"cifar", "imagenet", "compcars", "celeba"}
    with pytest.raises(ValueError, match="unknown recipe"):
        build_transform("mnist", True)


def test_random_resized_crop_replaces_the_imagenet_training_crop_only() -> None:
    image = Image.effect_noise((300, 200), 64).convert("RGB")
    train = build_transform("imagenet", True, 128, MEAN, STD, resized_crop=(0.3, 1.0))
    assert any(
        isinstance(t, v2.RandomResizedCrop) and t.scale == (0.3, 1.0) for t in train.transforms
    )
    assert tuple(train(image).shape) == (3, 128, 128)
    paper_eval = build_transform("imagenet", False, 128, MEAN, STD)
    rrc_eval = build_transform("imagenet", False, 128, MEAN, STD, resized_crop=(0.3, 1.0))
    assert torch.equal(paper_eval(image), rrc_eval(image))  # evaluation is the recipe's own
    with pytest.raises(ValueError, match="for the 'imagenet' recipe, not 'celeba'"):
        build_transform("celeba", True, 64, resized_crop=(0.3, 1.0))


def _card(dataset: str, size: tuple[int, int]):
    from types import SimpleNamespace

    return SimpleNamespace(recipe={}, dataset=dataset, input_size=list(size))


@pytest.mark.parametrize(
    ("dataset", "size", "image", "expected"),
    [
        ("cifar10", (32, 32), (32, 32), "32×32 image → model input 32×32 px"),
        ("cifar10", (32, 32), (64, 32), "stretched to fit"),
        ("imagenette", (160, 160), (160, 160), "the middle 76% of the image"),  # (160/183)²
        ("imagenette", (160, 160), (1600, 120), "the middle 6% of the image"),  # 6.6% × 87%
        ("cifar10", (32, 32), (4, 4), "a very small image"),
    ],
)
def test_fit_note_says_what_the_model_sees(dataset, size, image, expected) -> None:
    from abn.data.transforms import fit_note

    assert expected in fit_note(image, _card(dataset, size))


@pytest.mark.parametrize(
    ("dataset", "size", "image"),
    [("imagenette", (160, 160), (600, 400)), ("imagenette", (96, 128), (90, 200)),
     ("celeba-hq", (64, 64), (90, 60))],
)  # fmt: skip
def test_seen_box_is_what_the_evaluation_transform_shows(dataset, size, image) -> None:
    """Cropping the box and resizing it to the input gives the transform's own input."""
    from abn.data.transforms import seen_box

    card = _card(dataset, size)
    card.mean, card.std = [0.0] * 3, [1.0] * 3
    w, h = image
    yy, xx = np.mgrid[0:h, 0:w]
    ramps = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], axis=-1)
    picture = Image.fromarray((255 * ramps).astype(np.uint8))
    box = seen_box(image, card)
    seen = picture.crop(box).resize(size[::-1], Image.Resampling.BILINEAR)
    expected = torch.from_numpy(np.asarray(seen, np.float32) / 255).permute(2, 0, 1)
    shown = transform_for(card)(picture)
    assert shown.shape == expected.shape
    assert (shown - expected).abs().mean() < 0.01  # same region: only resampling differs
    if dataset == "imagenette":
        assert box[2] - box[0] < w or box[3] - box[1] < h  # a centre crop, not the whole image
