"""A full disk stops training early with a clear message; the last checkpoint stays intact."""

from __future__ import annotations

import csv
import errno
import os
from pathlib import Path

import pytest

import abn
import abn.checkpoint
import abn.train.run
from abn.checkpoint import read_card
from abn.cli import main
from abn.train.state import STATE_NAME, WEIGHTS_NAME, load_state

pytestmark = pytest.mark.usefixtures("one_thread")


def _argv(data_root: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data-root", str(data_root), "--limit-train", "32", "--limit-test", "8",
            "--batch-size", "16", "--workers", "0", "--out", str(out), "--quiet", *extra]  # fmt: skip


def test_too_little_free_space_fails_before_training(
    tmp_path: Path, data_root: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(abn.train.run, "free_bytes", lambda path: 10 * 2**20)
    assert main(_argv(data_root, tmp_path, "--name", "small")) == 1
    err = capsys.readouterr().err
    run = tmp_path / "small"
    assert f"error: not enough free disk space in {run}: 10 MiB free, 50 MiB needed" in err
    assert "Traceback" not in err
    assert not list(run.iterdir())  # nothing written, not even config.toml


class _FullDisk:
    """``os`` as :mod:`abn.checkpoint` sees it, on a disk that fills up half-way through the
    ``nth`` write of ``name`` (the first half of the bytes land in the temp file)."""

    def __init__(self, name: str, nth: int) -> None:
        self.name, self.nth, self.seen, self.wrote = name, nth, 0, 0

    def __getattr__(self, attr: str):
        return getattr(os, attr)

    def fdopen(self, fd: int, *args, **kwargs):
        f = os.fdopen(fd, *args, **kwargs)
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(f".{self.name}."):
            self.seen += 1
            if self.seen == self.nth:
                return _HalfThenENOSPC(f, self)
        return f


class _HalfThenENOSPC:
    def __init__(self, f, disk: _FullDisk) -> None:
        self.f, self.disk = f, disk

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()

    def write(self, data: bytes) -> int:
        self.disk.wrote = self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd (Linux)")
def test_disk_full_during_a_checkpoint_keeps_the_previous_one(
    tmp_path: Path, data_root: Path, monkeypatch, capsys
) -> None:
    disk = _FullDisk(STATE_NAME, nth=2)  # epoch 2's state
    monkeypatch.setattr(abn.checkpoint, "os", disk)
    argv = _argv(data_root, tmp_path, "--name", "full", "--epochs", "3")
    assert main(argv) == 1
    run = tmp_path / "full"
    err = capsys.readouterr().err
    assert (
        f"error: cannot write {STATE_NAME} in {run}: No space left on device; the checkpoint of "
        f"epoch 1 is intact: free space, then continue with `python -m abn train --resume {run}`"
    ) in err
    assert "Traceback" not in err
    assert disk.wrote > 0  # the failure came mid-write, with half the bytes on disk
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert load_state(run / STATE_NAME)["epoch"] == 1
    assert abn.load(run / WEIGHTS_NAME).card.training["epochs"] == 1

    monkeypatch.undo()  # space freed
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert read_card(run / "final.safetensors").training["epochs"] == 3
    with (run / "metrics.csv").open(newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd (Linux)")
def test_disk_full_in_the_first_epoch_says_nothing_was_saved(
    tmp_path: Path, data_root: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(abn.checkpoint, "os", _FullDisk(STATE_NAME, nth=1))
    assert main(_argv(data_root, tmp_path, "--name", "first", "--epochs", "1")) == 1
    err = capsys.readouterr().err
    assert "No space left on device; no epoch was saved yet" in err and "Traceback" not in err
    assert not (tmp_path / "first" / STATE_NAME).exists()
