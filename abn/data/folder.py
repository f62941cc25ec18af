"""Image-folder trees ``root/<split>/<class>/*.jpg`` read through :func:`read_image`.

Used for the CIFAR-10 JPEG pack, Imagenette, ImageNet, CompCars and any user tree. Unlike
torchvision's ``ImageFolder`` it validates the tree up front and names the folder at fault.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision.transforms.v2.functional import pil_to_tensor

from abn.data.errors import DataError
from abn.data.images import is_image_file, read_image
from abn.data.paths import file_stamp

Transform = Callable[[Any], Any]


def find_classes(folder: Path) -> list[str]:
    """Sorted names of the visible sub-folders of ``folder`` (the class names)."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def scan_images(folder: Path) -> list[Path]:
    """Sorted image files inside ``folder`` and its visible sub-folders, at any depth (as
    torchvision's ``ImageFolder`` reads a class; see :func:`is_image_file`)."""
    found = []
    for parent, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(parent, f) for f in files if is_image_file(f))
    return sorted(found)


class ImageFolderDataset(Dataset):
    """``(image, class index)`` pairs from ``root/split/<class>/<image>``.

    Args:
        root: the tree's root (holding the split folders).
        split: sub-folder to read (``None``: ``root`` itself holds the class folders).
        transform: applied to the RGB ``PIL.Image``; default: a uint8 ``C×H×W`` tensor.
        classes: expected class folder names in label order; default: sorted folder names.
        class_names: human-readable names (default: the folder names).
        missing_ok: a class folder of ``classes`` may be missing or empty here (an evaluation
            split without images of some class); default: that is an error.

    Raises:
        DataError: missing root or split folder, a missing or empty class folder, no images.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str | None = None,
        transform: Transform | None = None,
        *,
        classes: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
        missing_ok: bool = False,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.folder = self.root / split if split else self.root
        self.transform = transform
        self.missing_ok = missing_ok
        _check_folder(self.root, "dataset root")
        _check_folder(self.folder, f"split folder {split!r}")
        self.classes = list(classes) if classes is not None else find_classes(self.folder)
        if not self.classes:
            raise DataError(f"{self.folder}: no class folders found (expected <class>/<image>)")
        self.class_names = list(class_names) if class_names is not None else list(self.classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = self._scan()
        self.targets = [t for _, t in self.samples]

    def _scan(self) -> list[tuple[Path, int]]:
        samples: list[tuple[Path, int]] = []
        for idx, cls in enumerate(self.classes):
            class_dir = self.folder / cls
            if self.missing_ok and not class_dir.is_dir():
                continue
            _check_folder(class_dir, f"class folder {cls!r}")
            files = scan_images(class_dir)
            if not files and not self.missing_ok:
                raise DataError(f"{class_dir}: class folder holds no images")
            samples.extend((f, idx) for f in files)
        if not samples:
            raise DataError(f"{self.folder}: no images in its class folders")
        return samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, target = self.samples[index]
        image = read_image(path)
        return (self.transform(image) if self.transform else pil_to_tensor(image)), target

    def fingerprint(self) -> list[str]:
        """Relative path, label, size and modification time of every sample (to detect a
        changed tree, including an image rewritten under the same name)."""
        return [
            f"{p.relative_to(self.folder).as_posix()}:{t}:{file_stamp(p)}" for p, t in self.samples
        ]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.folder}, {len(self)} images, {len(self.classes)} classes)"
        )


def _check_folder(path: Path, what: str) -> None:
    if not path.exists():
        raise DataError(f"{path}: {what} does not exist")
    if not path.is_dir():
        raise DataError(f"{path}: {what} is not a folder")
