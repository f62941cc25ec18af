"""Progress bars, the per-epoch metrics CSV and (when installed) TensorBoard."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from abn.checkpoint import atomic_write_bytes

COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_loss_att",
    "train_loss_per",
    "train_acc_per",
    "train_acc_att",
    "test_acc_per",
    "test_acc_att",
    "test_top5_acc_per",
    "test_top5_acc_att",
    "time_s",
    "images_per_s",
)


def progress(iterable: Iterable, enabled: bool, **kwargs: Any) -> Iterable:
    """A tqdm bar on stderr when ``enabled`` and stderr is a terminal; else the iterable."""
    if not enabled or not sys.stderr.isatty():
        return iterable
    return tqdm(iterable, leave=False, dynamic_ncols=True, **kwargs)


class MetricsLog:
    """``metrics.csv`` (one row per epoch, rewritten atomically) plus optional TensorBoard."""

    def __init__(self, run_dir: Path, start_epoch: int = 0, tensorboard: bool = True) -> None:
        self.path = run_dir / "metrics.csv"
        self.rows = [r for r in self._read() if int(r["epoch"]) <= start_epoch]  # 1-based
        self.writer = _tensorboard(run_dir) if tensorboard else None

    def _read(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def log(self, row: dict[str, Any]) -> None:
        """Append one epoch's numbers (missing columns stay empty)."""
        self.rows.append({k: _fmt(row.get(k)) for k in COLUMNS})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_bytes(self.path, buffer.getvalue().encode())
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, int(row["epoch"]))
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(run_dir / "tb"))
