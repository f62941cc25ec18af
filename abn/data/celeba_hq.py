"""CelebA-HQ faces with the 40 CelebA attributes (CelebAMask-HQ annotation file).

Expected under ``<root>/celeba-hq-64``: ``images/N.jpg`` (N = 1…30000) and
``CelebAMask-HQ-attribute-anno.txt`` (count line, names line, ``N.jpg`` + 40 values in {-1, 1}).

CelebA-HQ has no official split. This project's split is fixed, by image number N:

=====  ===============  ======
split  image numbers    images
=====  ===============  ======
train  1 – 24,000       24,000
val    24,001 – 27,000   3,000
test   27,001 – 30,000   3,000
=====  ===============  ======

The ranges are disjoint, so the test part is never trained on. (The source copy renamed the
original ``0.jpg`` to ``30000.jpg``; it falls in test.) Every attribute has positives in every
part. Targets are float tensors of 40 values in {0, 1}.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from abn.data.celeba import (
    AttributeDataset,
    AttributeTable,
    Transform,
    normalize_split,
    parse_attribute_file,
)
from abn.data.errors import DataError

#: split name → inclusive range of image numbers N in ``images/N.jpg``
SPLITS: dict[str, tuple[int, int]] = {
    "train": (1, 24_000),
    "val": (24_001, 27_000),
    "test": (27_001, 30_000),
}
ANNOTATION_FILE = "CelebAMask-HQ-attribute-anno.txt"
_ALIASES = {"valid": "val", "validation": "val"}
_NUMBER = re.compile(r"^(\d+)\.jpg$")


def split_of(number: int) -> str | None:
    """The split image number ``number`` belongs to (``None`` outside every range)."""
    for name, (lo, hi) in SPLITS.items():
        if lo <= number <= hi:
            return name
    return None


class CelebAHQ(AttributeDataset):
    """CelebA-HQ (any resolution copy) split by :data:`SPLITS` (or ``split='all'``)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = normalize_split(split, SPLITS, "celeba-hq", _ALIASES)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: CelebA-HQ folder does not exist")
        table = parse_attribute_file(self.root / ANNOTATION_FILE)
        super().__init__(self.root / "images", table, self._select(table), transform)

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
