"""Registry: DatasetInfo facts and build_dataset on the real packs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from abn.data.errors import DataError
from abn.data.paths import DATA_ROOT_ENV, default_data_root
from abn.data.registry import (
    build_dataset,
    dataset_info,
    dataset_location,
    evaluation_split,
    list_datasets,
)

REQUIRED = {
    "cifar10", "cifar10-torchvision", "cifar100", "svhn", "imagenette", "imagefolder", "celeba",
    "celeba-hq", "celeba-hq-by-number",
}  # fmt: skip


def test_names_and_info_consistency() -> None:
    assert set(list_datasets()) >= REQUIRED
    for name in list_datasets():
        info = dataset_info(name)
        assert info.name == name
        assert info.task in ("multiclass", "multilabel")
        assert len(info.mean) == 3 and len(info.std) == 3 and all(s > 0 for s in info.std)
        assert info.train_split in info.splits and info.eval_split in info.splits
        if info.num_classes is not None:
            assert info.num_classes == len(info.class_names) == len(set(info.class_names))
        with pytest.raises(dataclasses.FrozenInstanceError):
            info.name = "x"  # type: ignore[misc]


def test_published_values() -> None:
    c10 = dataset_info("cifar10")
    assert c10.mean == (0.4914, 0.4822, 0.4465) and c10.std == (0.2470, 0.2435, 0.2616)
    assert c10.input_size == (32, 32) and c10.recipe == "cifar" and c10.splits == ("train", "test")
    assert c10.class_names[0] == "airplane" and c10.class_names[-1] == "truck"
    assert dataset_info("cifar100").num_classes == 100
    nette = dataset_info("imagenette")
    assert nette.class_names[:2] == ("tench", "English springer")
    assert nette.mean == (0.485, 0.456, 0.406) and nette.recipe == "imagenet"
    for name in ("celeba", "celeba-hq", "celeba-hq-by-number"):
        info = dataset_info(name)
        assert info.task == "multilabel" and info.num_classes == 40
        assert info.class_names[-1] == "Young" and info.mean == nette.mean


def test_build_real_packs(data_root: Path) -> None:
    expect = {
        ("cifar10", "train"): (50_000, (3, 32, 32)),
        ("imagenette", "train"): (9_469, (3, 160, 160)),
        ("celeba", "test"): (660, (3, 218, 178)),
        ("celeba-hq", "val"): (2_993, (3, 64, 64)),
        ("celeba-hq-by-number", "val"): (3_000, (3, 64, 64)),
    }
    for (name, split), (n, shape) in expect.items():
        ds = build_dataset(name, split, root=data_root)
        assert len(ds) == n, name
        image, target = ds[0]
        assert tuple(image.shape) == shape, name
        if dataset_info(name).task == "multilabel":
            assert target.shape == (40,)
        else:
            assert 0 <= int(target) < dataset_info(name).num_classes


def test_with_recipe_transform(data_root: Path) -> None:
    info = dataset_info("imagenette")
    ds = build_dataset("imagenette", "val", root=data_root, transform=info.transform(train=False))
    image, _ = ds[0]
    assert image.dtype == torch.float32 and tuple(image.shape) == (3, *info.input_size)


def test_imagefolder_needs_root_and_reads_classes(data_root: Path) -> None:
    with pytest.raises(DataError, match="pass root="):
        build_dataset("imagefolder", "train")
    info = dataset_info("imagefolder", root=data_root / "imagenette2-160")
    assert info.num_classes == 10 and info.class_names[0] == "n01440764"
    assert dataset_info("imagefolder").num_classes is None
    ds = build_dataset("imagefolder", "val", root=data_root / "imagenette2-160")
    assert len(ds) == 3925


def test_an_image_tree_names_its_own_splits(tmp_path: Path) -> None:
    """``train/`` + ``val/`` evaluates on ``val``; without an evaluation folder the split stays
    ``test`` (reading it then says it is missing), never the training split."""
    for split in ("train", "val", ".cache"):
        (tmp_path / "a" / split / "cat").mkdir(parents=True)
    info = dataset_info("imagefolder", root=tmp_path / "a")
    assert (info.splits, info.train_split, info.eval_split) == (("train", "val"), "train", "val")
    assert evaluation_split("imagefolder", "val", tmp_path / "a") == "val"
    assert evaluation_split("imagefolder", None, tmp_path / "a") == "val"
    (tmp_path / "b" / "train" / "cat").mkdir(parents=True)
    assert dataset_info("imagefolder", root=tmp_path / "b").eval_split == "test"
    assert dataset_info("imagefolder").splits == ("train", "test")  # no tree: the defaults


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        build_dataset("mnist", "train")
    with pytest.raises(DataError, match="cannot be downloaded"):
        build_dataset("cifar10", "train", root=tmp_path, download=True)
    with pytest.raises(DataError, match=str(tmp_path / "cifar10")):
        build_dataset("cifar10", "train", root=tmp_path)


def test_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_data_root() == tmp_path / "data"
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "elsewhere"))
    assert default_data_root() == tmp_path / "elsewhere"
    assert dataset_location("celeba-hq") == tmp_path / "elsewhere" / "celeba-hq-64"


def _png(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (9, 9, 9)).save(path)


def test_a_tree_labels_every_split_with_the_training_classes(tmp_path: Path) -> None:
    """Label i is the same class in every split, even where a split lacks a class (and a
    stray folder sorting before ``train/`` does not set the classes)."""
    for split, classes in {"train": ("ant", "bee", "cow"), "test": ("ant", "cow"),
                           "__MACOSX": ("zzz",)}.items():  # fmt: skip
        for c in classes:
            _png(tmp_path / split / c / "0.png")
    info = dataset_info("imagefolder", root=tmp_path)
    assert info.class_names == ("ant", "bee", "cow")
    test = build_dataset("imagefolder", "test", root=tmp_path)
    assert [(p.parent.name, t) for p, t in test.samples] == [("ant", 0), ("cow", 2)]
    _png(tmp_path / "test" / "dog" / "0.png")
    with pytest.raises(DataError, match=r"class folder\(s\) dog are not in .*train"):
        build_dataset("imagefolder", "test", root=tmp_path)
    (tmp_path / "train" / "bee" / "0.png").unlink()
    with pytest.raises(DataError, match="class folder holds no images"):
        build_dataset("imagefolder", "train", root=tmp_path)


def test_a_tree_without_the_split_says_what_a_tree_is_and_what_it_holds(tmp_path: Path) -> None:
    for c in ("ant", "bee"):
        _png(tmp_path / "mine" / "train" / c / "0.png")
        _png(tmp_path / "mine" / "val" / c / "0.png")
    with pytest.raises(DataError, match=r"no split folder 'test' .*test_split=NAME.*holds train/"):
        build_dataset("imagefolder", "test", root=tmp_path / "mine")
    # --data-root one level too deep: the split's class folders are not splits
    deep = tmp_path / "mine" / "val"
    assert dataset_info("imagefolder", root=deep).num_classes is None  # not 0 classes
    with pytest.raises(
        DataError, match=r"val: its folders ant/, bee/ hold images, so it looks like a split"
    ):
        build_dataset("imagefolder", "test", root=deep)
