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


def test_an_image_folder_of_small_images_trains_with_the_cifar_recipe(tmp_path) -> None:
    """``recipe = "cifar"`` for a small-image tree: both loaders test on the same resized
    images (no centre crop that hides the edges), and the card records the recipe."""
    import torch
    from PIL import Image

    from abn.data.transforms import recipe_for
    from abn.train import load_config
    from abn.train.data import build_data
    from abn.train.distributed import DistInfo

    gen = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / "tree" / split / c).mkdir(parents=True)
            for i in range(3):
                pixels = torch.randint(0, 256, (20, 28, 3), generator=gen, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(tmp_path / "tree" / split / c / f"{i}.png")
    overrides = [f'data_root="{tmp_path / "tree"}"', 'data="imagefolder"', "input_size=[16,16]",
                 'recipe="cifar"', "workers=0", "batch_size=6", "epochs=1", "quiet=true",
                 f'out="{tmp_path / "runs"}"', 'channels_last="false"']  # fmt: skip
    tests = {}
    for loader in ("memory", "folder"):
        cfg = load_config(None, [*overrides, f'loader="{loader}"'])
        data = build_data(cfg, torch.device("cpu"), DistInfo())
        assert data.info.recipe == "cifar" and data.test_split == "val"
        tests[loader] = next(iter(data.test))[0]
    # the same stretched 16×16 images (resizing a PIL image or a tensor: a level or two apart)
    torch.testing.assert_close(tests["memory"], tests["folder"], atol=0.1, rtol=0)
    result = train(load_config(None, [*overrides, 'name="small"']))
    card = read_card(result.final)
    assert card.recipe["recipe"] == "cifar" and recipe_for(card) == "cifar"


class _Draws:
    """Item i: (a random draw, as an augmentation makes, and i)."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int):
        import torch

        return torch.rand(()), i


def test_folder_augmentation_does_not_depend_on_the_workers() -> None:
    """Each image's random draws come from (seed, epoch, index): the same batches with 0 or 2
    worker processes, new draws each epoch, and the caller's RNG untouched."""
    import torch

    from abn.train.data import LoaderBatches
    from abn.train.distributed import DistInfo

    def epoch(workers: int, e: int) -> list[tuple[float, int]]:
        loader = LoaderBatches(_Draws(), 4, True, torch.device("cpu"), workers, 0, DistInfo())
        loader.set_epoch(e)
        return [(float(v), int(i)) for x, y in loader for v, i in zip(x, y, strict=True)]

    torch.manual_seed(5)
    before = torch.rand(3)
    torch.manual_seed(5)
    first = epoch(0, 0)
    assert torch.equal(torch.rand(3), before)  # the training RNG (dropout) is not disturbed
    assert first == epoch(2, 0)
    assert epoch(2, 1) != first and sorted(i for _, i in first) == list(range(12))


def test_folder_workers_are_capped_at_the_usable_cpus(tmp_path, monkeypatch) -> None:
    """More DataLoader workers than CPUs only queue up (and torch warns each epoch); the
    images are the same whatever the number."""
    import torch
    from PIL import Image

    import abn.train.data as data_module
    from abn.train import load_config
    from abn.train.distributed import DistInfo

    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / split / c / "0.png")
    monkeypatch.setattr(data_module, "usable_cpus", lambda: 1)
    cfg = load_config(None, [f'data_root="{tmp_path}"', 'data="imagefolder"', "workers=8",
                             'loader="folder"', "input_size=[8,8]", "batch_size=2"])  # fmt: skip
    data = data_module.build_data(cfg, torch.device("cpu"), DistInfo())
    assert data.train.loader.num_workers == 1 and data.test.loader.num_workers == 1
