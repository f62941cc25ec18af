"""augment = "random-resized-crop": trains through both loaders, recorded in the card; refused
for recipes it does not fit before any data is read."""

from __future__ import annotations

import pytest

from abn import read_card
from abn.train import train


@pytest.mark.parametrize("loader", ["memory", "folder"])
def test_imagenette_trains_with_the_random_resized_crop(tiny_config, loader: str) -> None:
    cfg = tiny_config(
        name=f"rrc-{loader}", data="imagenette", model="resnet18", input_size=[64, 64],
        limit_train=16, limit_test=8, batch_size=8, epochs=1, loader=loader,
        augment="random-resized-crop", crop_scale=[0.35, 1.0],
    )  # fmt: skip
    result = train(cfg)
    assert result.epochs[0].images == 16
    card = read_card(result.final)
    assert (card.recipe["augment"], card.recipe["crop_scale"]) == ("random-resized-crop", [0.35, 1])
    assert card.metrics["imagenette/val (sample of 8)"]["n"] == 8


def test_the_random_resized_crop_is_refused_for_cifar(tiny_config) -> None:
    cfg = tiny_config(name="rrc-cifar", augment="random-resized-crop")
    with pytest.raises(ValueError, match="'imagenet' recipe; cifar10 uses 'cifar'"):
        train(cfg)
    assert not (cfg.run_dir() / "metrics.csv").exists()
