"""ImageFolderDataset on the real packs and on broken trees."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from abn.data.errors import DataError, ImageReadError
from abn.data.folder import ImageFolderDataset
from abn.data.registry import CIFAR10_CLASSES, IMAGENETTE_CLASSES


def make_tree(root: Path, layout: dict[str, dict[str, int]]) -> Path:
    """root/<split>/<class>/<i>.png with ``layout[split][class]`` tiny images."""
    for split, classes in layout.items():
        for cls, count in classes.items():
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.new("RGB", (6, 4), (i * 40 % 256, 0, 0)).save(folder / f"{i}.png")
    return root


def test_cifar10_pack(data_root: Path) -> None:
    ds = ImageFolderDataset(data_root / "cifar10", "test", classes=CIFAR10_CLASSES)
    assert len(ds) == 10_000
    assert ds.classes == list(CIFAR10_CLASSES)
    assert torch.bincount(torch.tensor(ds.targets)).tolist() == [1000] * 10
    image, target = ds[len(ds) - 1]
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
    assert target == 9  # truck is last in label order


def test_imagenette_pack_greyscale_to_rgb(data_root: Path) -> None:
    names = tuple(IMAGENETTE_CLASSES.values())
    ds = ImageFolderDataset(
        data_root / "imagenette2-160", "val", classes=tuple(IMAGENETTE_CLASSES), class_names=names
    )
    assert len(ds) == 3925
    assert ds.class_names[0] == "tench"
    for index in (0, len(ds) // 2, len(ds) - 1):
        image, _ = ds[index]
        assert image.shape[0] == 3 and max(image.shape[1:]) == 160


def test_transform_and_sorted_classes(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"train": {"b": 2, "a": 3}})
    ds = ImageFolderDataset(root, "train", transform=lambda im: im.size)
    assert ds.classes == ["a", "b"] and ds.targets == [0, 0, 0, 1, 1]
    assert ds[0] == ((6, 4), 0)


def test_non_images_and_hidden_files_ignored(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"train": {"a": 1}})
    (root / "train" / "a" / "notes.txt").write_text("x")
    (root / "train" / "a" / ".DS_Store").write_bytes(b"\0")
    (root / "train" / ".hidden").mkdir()
    ds = ImageFolderDataset(root, "train")
    assert len(ds) == 1 and ds.classes == ["a"]


def test_images_in_a_class_folders_subfolders_belong_to_the_class(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"train": {"a": 1, "b": 1}})
    deep = root / "train" / "b" / "2024" / "june"
    deep.mkdir(parents=True)
    Image.new("RGB", (6, 4)).save(deep / "x.jpg")
    (root / "train" / "b" / ".thumbs").mkdir()
    Image.new("RGB", (6, 4)).save(root / "train" / "b" / ".thumbs" / "t.png")
    nested_only = root / "train" / "c" / "more"
    nested_only.mkdir(parents=True)
    Image.new("RGB", (6, 4)).save(nested_only / "y.png")
    ds = ImageFolderDataset(root, "train")
    assert ds.classes == ["a", "b", "c"] and ds.targets == [0, 1, 1, 2]
    assert [p.relative_to(root / "train").as_posix() for p, _ in ds.samples] == [
        "a/0.png", "b/0.png", "b/2024/june/x.jpg", "c/more/y.png"
    ]  # fmt: skip


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"{tmp_path / 'nope'}: dataset root does not exist"):
        ImageFolderDataset(tmp_path / "nope", "train")


def test_missing_split(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"train": {"a": 1}})
    with pytest.raises(DataError, match="split folder 'test' does not exist") as info:
        ImageFolderDataset(root, "test")
    assert str(root / "test") in str(info.value)


def test_empty_class_folder(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"train": {"a": 1}})
    (root / "train" / "b").mkdir()
    (root / "train" / "b" / "readme.txt").write_text("no images")
    with pytest.raises(DataError, match="holds no images") as info:
        ImageFolderDataset(root, "train")
    assert str(root / "train" / "b") in str(info.value)


def test_no_class_folders(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        ImageFolderDataset(tmp_path, "train")


def test_expected_class_missing(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"train": {"cat": 1}})
    with pytest.raises(DataError, match="class folder 'dog' does not exist"):
        ImageFolderDataset(root, "train", classes=["cat", "dog"])


def test_corrupt_image_names_file(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"train": {"a": 2}})
    bad = root / "train" / "a" / "1.png"
    bad.write_bytes(bad.read_bytes()[:40])
    ds = ImageFolderDataset(root, "train")
    image, target = ds[0]  # the good one still loads
    assert image.dtype == torch.uint8 and image.shape[0] == 3 and target == 0
    with pytest.raises(ImageReadError) as info:
        ds[1]
    assert str(bad) in str(info.value)
