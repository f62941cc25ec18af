"""``abn data check``: read every image of a split up front and report each that cannot be read.

Training reads an image when a batch first draws it, so a corrupt file in a large tree can stop
a run hours in, and only the first one shows. This decodes them all (threads: PIL's decoders
release the GIL) and lists every failure with its reason.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tqdm import tqdm

from abn.data.errors import DataError
from abn.data.registry import build_dataset

CHUNK = 1024


@dataclass
class SplitReport:
    """What reading one split found: its size and classes, and each problem as a line."""

    split: str
    images: int = 0
    per_class: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.images and self.problems:
            return f"{self.split}: cannot be read"
        counts = sorted(self.per_class.values())
        spread = f" ({counts[0]}–{counts[-1]} per class)" if counts else ""
        bad = f", {len(self.problems)} unreadable" if self.problems else ""
        return f"{self.split}: {self.images} images in {len(self.per_class)} classes{spread}{bad}"


def check_split(
    name: str,
    split: str,
    root: str | os.PathLike[str] | None = None,
    workers: int = 4,
    progress: bool = True,
) -> SplitReport:
    """Build ``split`` of dataset ``name`` and decode each of its images."""
    report = SplitReport(split)
    try:
        ds = build_dataset(name, split, root=root)
    except (DataError, OSError) as exc:
        report.problems.append(str(exc))
        return report
    report.images = len(ds)
    targets = getattr(ds, "targets", None)
    if targets is not None and all(isinstance(t, int) for t in targets):
        report.per_class = Counter(targets)

    def read(index: int) -> str | None:
        try:
            ds[index]
        except (DataError, OSError) as exc:
            return str(exc)
        return None

    bar = tqdm(total=len(ds), desc=f"checking {split}", unit="img", disable=not progress)
    with ThreadPoolExecutor(max(1, workers)) as pool, bar:
        for start in range(0, len(ds), CHUNK):  # a chunk at a time: no million futures at once
            chunk = range(start, min(start + CHUNK, len(ds)))
            report.problems.extend(problem for problem in pool.map(read, chunk) if problem)
            bar.update(len(chunk))
    return report
