"""CelebA-HQ faces with the 40 CelebA attributes (CelebAMask-HQ annotation file).

Expected under ``<root>/celeba-hq-64``: ``images/N.jpg`` (N = 1…30000),
``CelebAMask-HQ-attribute-anno.txt`` (count line, names line, ``N.jpg`` + 40 values in {-1, 1})
and, for the official split, :data:`SPLIT_FILE` (``abn data prepare`` copies it from the packs
folder): a header line, then per image ``N.jpg <original CelebA file> <partition> <identity>``.

Two splits of the same 30,000 images, registered as two dataset names:

=====  =================================  ==================================
split  ``celeba-hq`` (:class:`CelebAHQ`)  ``celeba-hq-by-number``
                                          (:class:`CelebAHQByNumber`)
=====  =================================  ==================================
train  CelebA partition 0: 24,183         images 1 – 24,000: 24,000
val    CelebA partition 1:  2,993         images 24,001 – 27,000: 3,000
test   CelebA partition 2:  2,824         images 27,001 – 30,000: 3,000
=====  =================================  ==================================

The official split is CelebA's own (``list_eval_partition.txt``, through each image's original
CelebA file) and identity-disjoint: no person appears in two parts. The split by image number
is not (2,472 of its 3,000 test faces show a person seen in training); it is kept so that
models trained on it before are evaluated on the split they were trained with. (The source copy
renamed the original ``0.jpg`` to ``30000.jpg``.) Targets are float tensors of 40 values in
{0, 1}.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from abn.data.celeba import (
    AttributeDataset,
    AttributeTable,
    Transform,
    normalize_split,
    parse_attribute_file,
)
from abn.data.errors import DataError

ANNOTATION_FILE = "CelebAMask-HQ-attribute-anno.txt"
#: the official split's file, beside the packs and (after ``abn data prepare``) the images
SPLIT_FILE = "celeba-hq-64-split.txt"
#: split name → CelebA's partition value in :data:`SPLIT_FILE`
PARTITIONS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
#: split name → inclusive range of image numbers N in ``images/N.jpg`` (``celeba-hq-by-number``)
NUMBER_RANGES: dict[str, tuple[int, int]] = {
    "train": (1, 24_000),
    "val": (24_001, 27_000),
    "test": (27_001, 30_000),
}
_ALIASES = {"valid": "val", "validation": "val"}
_NUMBER = re.compile(r"^(\d+)\.jpg$")
_SPLIT_HEADER = ["file", "orig_file", "partition", "identity"]


@dataclass(frozen=True)
class SplitRow:
    """One image's line of :data:`SPLIT_FILE`."""

    partition: int
    identity: int
    orig_file: str
    line: int


def split_of(number: int) -> str | None:
    """The ``celeba-hq-by-number`` split of image number ``number`` (``None`` outside them)."""
    for name, (lo, hi) in NUMBER_RANGES.items():
        if lo <= number <= hi:
            return name
    return None


def missing_split_file(path: Path) -> DataError:
    """The error for an absent :data:`SPLIT_FILE`: what it is and how to get it."""
    return DataError(
        f"{path}: CelebA-HQ split file missing (it gives each image's official CelebA partition "
        f"and identity). Run `python -m abn data prepare --only celeba-hq`, which copies "
        f"{SPLIT_FILE} from the packs folder next to the images, or copy it there by hand; "
        "models trained on the old split by image number use the dataset 'celeba-hq-by-number'"
    )


def parse_split_file(path: str | os.PathLike[str]) -> dict[str, SplitRow]:
    """Parse :data:`SPLIT_FILE` into image name → :class:`SplitRow`.

    Raises:
        DataError: a missing file (with the fix), or, naming the line, a wrong field count, a
            partition other than 0/1/2, a non-numeric identity or a repeated image.
    """
    path = Path(path)
    if not path.is_file():
        raise missing_split_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the split file ({exc})") from exc
    rows: dict[str, SplitRow] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields == _SPLIT_HEADER:
            continue
        name, row = _split_row(path, number, fields)
        if name in rows:
            raise DataError(f"{path}, line {number}: image {name} is listed twice")
        rows[name] = row
    return rows


def _split_row(path: Path, number: int, fields: list[str]) -> tuple[str, SplitRow]:
    where = f"{path}, line {number}"
    if len(fields) != 4:
        raise DataError(f"{where}: expected 'N.jpg <orig_file> <0|1|2> <identity>'")
    name, orig, partition, identity = fields
    if partition not in ("0", "1", "2"):
        raise DataError(f"{where}: partition {partition!r} is not 0, 1 or 2")
    if not identity.isdigit():
        raise DataError(f"{where}: identity {identity!r} is not a number")
    return name, SplitRow(int(partition), int(identity), orig, number)


class _CelebAHQBase(AttributeDataset):
    """Shared loading; subclasses say which annotation rows a split holds (:meth:`_select`)."""

    dataset_name = "celeba-hq"

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = normalize_split(split, PARTITIONS, self.dataset_name, _ALIASES)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: CelebA-HQ folder does not exist")
        table = parse_attribute_file(self.root / ANNOTATION_FILE)
        super().__init__(self.root / "images", table, self._select(table), transform)

    def _select(self, table: AttributeTable) -> list[int]:
        raise NotImplementedError


class CelebAHQ(_CelebAHQBase):
    """CelebA-HQ split by CelebA's official, identity-disjoint partition (or ``split='all'``).

    ``identities`` holds each selected image's CelebA identity number.
    """

    def _select(self, table: AttributeTable) -> list[int]:
        split_path = self.root / SPLIT_FILE
        split = parse_split_file(split_path)
        rows: list[int] = []
        self.identities: list[int] = []
        for row, name in enumerate(table.names):
            entry = split.get(name)
            if entry is None:
                raise DataError(
                    f"{table.path}, line {table.lines[row]}: image {name} has no line in "
                    f"{split_path}"
                )
            if self.split == "all" or entry.partition == PARTITIONS[self.split]:
                rows.append(row)
                self.identities.append(entry.identity)
        return rows


class CelebAHQByNumber(_CelebAHQBase):
    """CelebA-HQ split by image number (:data:`NUMBER_RANGES`; not identity-disjoint)."""

    dataset_name = "celeba-hq-by-number"

    def _select(self, table: AttributeTable) -> list[int]:
        rows: list[int] = []
        for row, name in enumerate(table.names):
            match = _NUMBER.match(name)
            if match is None:
                raise DataError(
                    f"{table.path}, line {table.lines[row]}: image name {name!r} is not 'N.jpg'"
                )
            if self.split == "all" or split_of(int(match.group(1))) == self.split:
                rows.append(row)
        return rows
