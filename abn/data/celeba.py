"""CelebA in its original aligned layout (40 binary facial attributes, multi-label).

Expected under ``<root>/celeba``::

    img_align_celeba/000001.jpg ...
    list_attr_celeba.txt      [count line], names line, rows "000001.jpg -1  1 ..." ({-1, 1})
    list_eval_partition.txt   rows "000001.jpg 0"  (0 train, 1 valid, 2 test)

The label files may list every image (202,599 rows) or just a subset (e.g. the 1,440-image
sample pack); every image listed for the requested split must exist on disk. Targets are float
tensors of 40 values in {0, 1}.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2.functional import pil_to_tensor

from abn.data.errors import DataError
from abn.data.images import read_image
from abn.data.paths import file_stamp

Transform = Callable[[Any], Any]

NUM_ATTRIBUTES = 40
#: split name → value in ``list_eval_partition.txt``
PARTITIONS = {"train": 0, "valid": 1, "test": 2}
_SPLIT_ALIASES = {"val": "valid", "validation": "valid"}


@dataclass(frozen=True)
class AttributeTable:
    """A parsed attribute file: image names, attribute names and an N×40 {0, 1} uint8 tensor."""

    path: Path
    names: list[str]
    attribute_names: list[str]
    values: torch.Tensor
    lines: list[int]  # 1-based line number of each row, for error messages

    def index(self) -> dict[str, int]:
        """Image name → row."""
        return {n: i for i, n in enumerate(self.names)}


def parse_attribute_file(path: str | os.PathLike[str]) -> AttributeTable:
    """Parse a CelebA / CelebAMask-HQ attribute file (count line optional, 1+ spaces).

    Raises:
        DataError: naming the file and line for a bad count, a wrong field count, a value
            other than -1/1, or a duplicate image name.
    """
    path = Path(path)
    lines = _read_lines(path)
    pos = 0
    count: int | None = None
    if lines and lines[0][1].strip().isdigit():
        count, pos = int(lines[0][1].strip()), 1
    if pos >= len(lines):
        raise DataError(f"{path}: no attribute-names line")
    header_no, header = lines[pos]
    attribute_names = header.split()
    if len(attribute_names) != NUM_ATTRIBUTES:
        raise DataError(
            f"{path}, line {header_no}: expected {NUM_ATTRIBUTES} attribute names, "
            f"found {len(attribute_names)}"
        )
    names, rows, numbers = _parse_rows(path, lines[pos + 1 :])
    if count is not None and count != len(names):
        raise DataError(
            f"{path}, line 1: count line says {count} images but {len(names)} rows follow"
        )
    values = torch.tensor(rows, dtype=torch.uint8).reshape(-1, NUM_ATTRIBUTES)
    return AttributeTable(path, names, attribute_names, values, numbers)


def _read_lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise DataError(f"{path}: label file does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read label file ({exc})") from exc
    return [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def _parse_rows(
    path: Path, lines: list[tuple[int, str]]
) -> tuple[list[str], list[list[int]], list[int]]:
    names: list[str] = []
    rows: list[list[int]] = []
    numbers: list[int] = []
    seen: set[str] = set()
    for number, line in lines:
        fields = line.split()
        if len(fields) != NUM_ATTRIBUTES + 1:
            raise DataError(
                f"{path}, line {number}: expected an image name and {NUM_ATTRIBUTES} values, "
                f"found {len(fields)} fields"
            )
        name = fields[0]
        if name in seen:
            raise DataError(f"{path}, line {number}: image {name} is listed twice")
        bad = [v for v in fields[1:] if v not in ("1", "-1")]
        if bad:
            raise DataError(f"{path}, line {number}: value {bad[0]!r} is not -1 or 1")
        seen.add(name)
        names.append(name)
        rows.append([v == "1" for v in fields[1:]])
        numbers.append(number)
    return names, rows, numbers


def parse_partition_file(path: str | os.PathLike[str]) -> dict[str, tuple[int, int]]:
    """Parse ``list_eval_partition.txt`` into image name → (partition, line number)."""
    path = Path(path)
    out: dict[str, tuple[int, int]] = {}
    for number, line in _read_lines(path):
        fields = line.split()
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DataError(
                f"{path}, line {number}: expected '<image> <0|1|2>', found {line.strip()!r}"
            )
        if fields[0] in out:
            raise DataError(f"{path}, line {number}: image {fields[0]} is listed twice")
        out[fields[0]] = (int(fields[1]), number)
    return out


def normalize_split(
    split: str, splits: dict[str, Any], dataset: str, aliases: dict[str, str] | None = None
) -> str:
    """Canonical split name (e.g. ``val`` → ``valid``), or DataError listing the valid ones."""
    canonical = (_SPLIT_ALIASES if aliases is None else aliases).get(split, split)
    if canonical != "all" and canonical not in splits:
        raise DataError(f"{dataset}: unknown split {split!r}; choose from {[*splits, 'all']}")
    return canonical


def list_files(folder: Path) -> set[str]:
    """Names of the files in ``folder``; DataError if it is missing."""
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder does not exist")
    return {e.name for e in os.scandir(folder) if e.is_file()}


class AttributeDataset(Dataset):
    """Shared ``(image, 40 attributes)`` dataset over an image folder and selected rows."""

    def __init__(
        self,
        image_dir: Path,
        table: AttributeTable,
        rows: list[int],
        transform: Transform | None,
    ) -> None:
        self.image_dir = image_dir
        self.transform = transform
        self.attribute_names = list(table.attribute_names)
        self.class_names = self.attribute_names
        self.files = [table.names[r] for r in rows]
        self.attributes = table.values[rows] if rows else table.values[:0]
        on_disk = list_files(image_dir)
        for r in rows:
            if table.names[r] not in on_disk:
                raise DataError(
                    f"{table.path}, line {table.lines[r]}: image {table.names[r]} is listed "
                    f"but missing from {image_dir}"
                )

    @property
    def targets(self) -> torch.Tensor:
        """All targets, N×40 float in {0, 1}."""
        return self.attributes.float()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        image = read_image(self.image_dir / self.files[index])
        x = self.transform(image) if self.transform else pil_to_tensor(image)
        return x, self.attributes[index].float()

    def fingerprint(self) -> list[str]:
        """Image names, sizes and modification times (to detect a changed dataset)."""
        return [f"{name}:{file_stamp(self.image_dir / name)}" for name in self.files]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.image_dir}, {len(self)} images)"


class CelebA(AttributeDataset):
    """Aligned CelebA from the original files (``split``: train, valid/val, test or all)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = normalize_split(split, PARTITIONS, "celeba")
        if not self.root.is_dir():
            raise DataError(f"{self.root}: CelebA folder does not exist")
        table = parse_attribute_file(self.root / "list_attr_celeba.txt")
        rows = self._select(table)
        super().__init__(self.root / "img_align_celeba", table, rows, transform)

    def _select(self, table: AttributeTable) -> list[int]:
        partition_path = self.root / "list_eval_partition.txt"
        partition = parse_partition_file(partition_path)
        index = table.index()
        if self.split == "all":
            return list(range(len(table.names)))
        wanted = PARTITIONS[self.split]
        rows: list[int] = []
        for name, (part, number) in partition.items():
            if part != wanted:
                continue
            if name not in index:
                raise DataError(
                    f"{partition_path}, line {number}: image {name} has no row in {table.path}"
                )
            rows.append(index[name])
        if not rows:
            raise DataError(
                f"{partition_path}: no images in split {self.split!r} (partition {wanted})"
            )
        return sorted(rows)
