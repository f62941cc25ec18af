"""torchvision formats: read a CIFAR-10 folder in torchvision's layout; download only on request."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets
from torchvision.datasets import cifar as cifar_module

from abn.data.errors import DataError
from abn.data.registry import build_dataset
from abn.data.torchvision_sets import TorchvisionDataset


def write_cifar10(root: Path, per_batch: int = 4) -> np.ndarray:
    """cifar-10-batches-py with tiny batches in torchvision's pickle format; returns test data."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    data = None
    for i, name in enumerate(names):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batch = {"data": data, "labels": [(i + j) % 10 for j in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                            "horse", "ship", "truck"]}  # fmt: skip
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return data


def test_reads_torchvision_cifar10_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    test_data = write_cifar10(tmp_path)
    # the fake files cannot match torchvision's MD5s: skip that check only
    monkeypatch.setattr(datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar_module, "check_integrity", lambda *a, **k: True)
    train = build_dataset("cifar10-torchvision", "train", root=tmp_path)
    test = build_dataset("cifar10-torchvision", "test", root=tmp_path)
    assert len(train) == 20 and len(test) == 4
    image, target = test[1]
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
    assert torch.equal(image, torch.from_numpy(test_data[1].reshape(3, 32, 32)))
    assert target == (5 + 1) % 10
    assert test.classes[0] == "airplane"


def test_missing_gives_hint_and_never_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(datasets.CIFAR100, "download", lambda self: calls.append("dl"))
    with pytest.raises(DataError, match="--download --only cifar100") as info:
        build_dataset("cifar100", "train", root=tmp_path)
    assert str(tmp_path / "cifar-100-python") in str(info.value)
    assert calls == []
    with pytest.raises(DataError):  # the stub downloads nothing, but it was asked to
        build_dataset("cifar100", "train", root=tmp_path, download=True)
    assert calls == ["dl"]


def test_svhn_split_check(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown split 'val'"):
        TorchvisionDataset("svhn", tmp_path, "val")
    with pytest.raises(DataError, match=str(tmp_path / "svhn")):
        TorchvisionDataset("svhn", tmp_path, "extra")


def write_svhn(folder: Path, split: str, labels: list[int]) -> None:
    """``<split>_32x32.mat`` as torchvision's SVHN reads it (X: 32×32×3×N, y: N×1, 10 for 0)."""
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    x = np.full((32, 32, 3, len(labels)), len(labels), dtype=np.uint8)
    y = np.array([[label or 10] for label in labels], dtype=np.uint8)
    savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})


def test_svhn_train_plus_extra_is_both_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The paper's SVHN training set: ``train`` followed by ``extra``."""
    write_svhn(tmp_path / "svhn", "train", [1, 2, 0])
    write_svhn(tmp_path / "svhn", "extra", [5, 6])
    monkeypatch.setattr(datasets.SVHN, "_check_integrity", lambda self: True)
    both = build_dataset("svhn", "train+extra", root=tmp_path)
    assert len(both) == 5 and both.targets == [1, 2, 0, 5, 6]
    assert [int(both[i][1]) for i in range(5)] == both.targets
    assert int(both[3][0][0, 0, 0]) == 2 and int(both[0][0][0, 0, 0]) == 3  # extra's pixels
    assert len(build_dataset("svhn", "train", root=tmp_path)) == 3
