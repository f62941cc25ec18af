"""CIFAR-10, CIFAR-100 and SVHN in torchvision's own on-disk formats.

Thin wrappers over ``torchvision.datasets`` that never download unless asked
(``download=True``) and turn "not found" into a :class:`DataError` naming the folder.
Files live directly under the data root, where torchvision puts them:
``<root>/cifar-10-batches-py``, ``<root>/cifar-100-python``, ``<root>/svhn/*.mat``.

SVHN's ``train+extra`` split is its ``train`` (73,257 images) followed by ``extra`` (531,131):
the 604,388 training images the ABN paper trains on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import ConcatDataset, Dataset
from torchvision import datasets
from torchvision.transforms.v2.functional import pil_to_tensor

from abn.data.errors import DataError

Transform = Callable[[Any], Any]

#: dataset name → (torchvision class, folder under the root it reads, valid splits)
TORCHVISION_SETS: dict[str, tuple[type, str, tuple[str, ...]]] = {
    "cifar10-torchvision": (datasets.CIFAR10, "cifar-10-batches-py", ("train", "test")),
    "cifar100": (datasets.CIFAR100, "cifar-100-python", ("train", "test")),
    "svhn": (datasets.SVHN, "svhn", ("train", "test", "extra", "train+extra")),
}


class TorchvisionDataset(Dataset):
    """``(image tensor, class index)`` from a torchvision dataset (see :data:`TORCHVISION_SETS`).

    ``transform`` receives an RGB ``PIL.Image``; default: a uint8 ``C×H×W`` tensor.
    """

    def __init__(
        self,
        name: str,
        root: str | os.PathLike[str],
        split: str = "train",
        transform: Transform | None = None,
        download: bool = False,
    ) -> None:
        if name not in TORCHVISION_SETS:
            raise DataError(
                f"unknown torchvision dataset {name!r}; known: {sorted(TORCHVISION_SETS)}"
            )
        cls, folder, splits = TORCHVISION_SETS[name]
        if split not in splits:
            raise DataError(f"{name}: unknown split {split!r}; choose from {splits}")
        self.name, self.split, self.transform = name, split, transform
        self.root = Path(root)
        self.location = self.root / folder
        parts = [self._build(cls, part, download) for part in split.split("+")]
        self.base = parts[0] if len(parts) == 1 else ConcatDataset(parts)
        self.targets = [int(t) for part in parts for t in _targets(part)]
        self.classes = list(getattr(parts[0], "classes", [str(i) for i in range(10)]))

    def _build(self, cls: type, split: str, download: bool) -> Any:
        if cls is datasets.SVHN:
            args: dict[str, Any] = {"root": str(self.location), "split": split}
        else:
            args = {"root": str(self.root), "train": split == "train"}
        try:
            return cls(download=download, **args)
        except RuntimeError as exc:
            hint = (
                ""
                if download
                else f"; run `python -m abn data prepare --download --only {self.name}`"
            )
            raise DataError(
                f"{self.location}: {self.name} not found or corrupt ({exc}){hint}"
            ) from exc

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, target = self.base[index]
        image = image.convert("RGB")
        return (self.transform(image) if self.transform else pil_to_tensor(image)), int(target)

    def fingerprint(self) -> list[str]:
        """Labels of every sample (to detect a changed dataset)."""
        return [str(t) for t in self.targets]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, {self.split}, {len(self)} images)"


def _targets(base: Any) -> Any:
    """A torchvision dataset's labels (``targets``, or SVHN's ``labels``)."""
    targets = getattr(base, "targets", None)
    return getattr(base, "labels", []) if targets is None else targets
