"""SIGKILL a real ``python -m abn train`` at several moments; ``--resume`` always finishes it.

After every kill each ``*.safetensors`` of the run loads (its SHA-256 verified), the state file
loads, ``metrics.csv`` has epochs 1..N with no gap or duplicate, and temp files a kill left
mid-write carry names the run never reads (and the next resume removes them).
"""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import abn
from abn.checkpoint import read_card
from abn.train.state import STATE_NAME, WEIGHTS_NAME, load_state

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 10
# one thread: the parent polls on the other core, and the run stays fast on a busy machine
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.fixture
def start(tmp_path: Path):
    """Start ``python -m abn train ARGS`` (output appended to ``tmp_path/train.log``); every
    run still alive when the test ends is killed."""
    procs: list[subprocess.Popen] = []

    def run(args: list[str]) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "abn", "train", *args]
        with (tmp_path / "train.log").open("ab") as out:
            proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 180) -> None:
    """SIGKILL ``proc`` the moment ``ready()`` holds (polled as fast as Python can)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run exited ({proc.returncode}) before it could be killed")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the run made no progress")
    proc.kill()  # SIGKILL: no cleanup, no finally blocks
    proc.wait(timeout=30)


def _writing(run: Path, name: str, old: set[str]) -> Callable[[], bool]:
    """True while a new temp file of ``name`` exists: its atomic write is under way."""
    return lambda: any(n.startswith(f".{name}.") and n not in old for n in os.listdir(run))


def _epochs(run: Path) -> list[int]:
    with (run / "metrics.csv").open(newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def _check_after_kill(run: Path) -> tuple[int, set[str]]:
    """Everything under a final name is complete; returns the resume epoch and the temp files."""
    names = {p.name for p in run.iterdir()}
    temps = {n for n in names if n.endswith(".tmp")}
    assert all(n.startswith(".") for n in temps), temps  # never a final name
    for name in names - temps:
        if name.endswith(".safetensors"):
            abn.load(run / name)  # parses, rebuilds and checks the stored SHA-256
    epoch = load_state(run / STATE_NAME)["epoch"]
    # the state is written first, then last.safetensors: never ahead of it (and a run killed
    # between the two writes, then again before its next epoch's, leaves it further behind)
    if (run / WEIGHTS_NAME).exists():
        assert 1 <= read_card(run / WEIGHTS_NAME).training["epochs"] <= epoch
    else:
        assert epoch == 1
    rows = _epochs(run)  # written just before the state: the kill may leave one row ahead
    assert rows in (list(range(1, epoch + 1)), list(range(1, epoch + 2))), (epoch, rows)
    return epoch, temps


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume_finishes(tmp_path: Path, data_root: Path, start) -> None:
    out, log = tmp_path / "runs", tmp_path / "train.log"
    run = out / "killed"
    args = ["--data-root", str(data_root), "--limit-train", "16", "--limit-test", "8",
            "--epochs", str(EPOCHS), "--batch-size", "8", "--workers", "0",
            "--set", "eval_every=4", "--out", str(out), "--name", "killed"]  # fmt: skip
    resume = ["--resume", str(run)]
    state = run / STATE_NAME

    # 1. mid-write of the state: a random moment after the first checkpoint, then the instant
    # the next state's temp file shows up
    # a moment drawn from ABN_KILL_SEED (default 0), so a failing moment can be replayed
    seed = int(os.environ.get("ABN_KILL_SEED", "0"))
    delay, saved_at = random.Random(seed).uniform(0, 0.3), []
    print(f"kill 1: {delay:.3f} s after the first state (ABN_KILL_SEED={seed})")
    mid_state = _writing(run, STATE_NAME, old=set())

    def writing_state_after_delay() -> bool:
        if not saved_at and state.exists():
            saved_at.append(time.monotonic())
        return bool(saved_at) and time.monotonic() - saved_at[0] >= delay and mid_state()

    proc = start(args)
    _kill_when(proc, writing_state_after_delay)
    epoch, temps = _check_after_kill(run)
    seen = [(epoch, temps)]

    # 2. mid-write of last.safetensors, so right between the two writes: the new state is in
    # place, the weights are not (the pair a kill tears apart)
    proc = start(resume)
    _kill_when(proc, _writing(run, WEIGHTS_NAME, old=temps))
    epoch, temps = _check_after_kill(run)
    assert not temps & seen[-1][1], "resuming removes the temp files a kill left"
    torn = read_card(run / WEIGHTS_NAME).training["epochs"] < epoch  # unless the kill came late
    seen.append((epoch, temps))

    # 3. resume to the end
    proc = start(resume)
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    text = log.read_text()
    for epoch, _ in seen:  # every resume says where it continues from
        assert f"from the checkpoint of epoch {epoch}: epoch {epoch + 1}/{EPOCHS} next" in text
    assert "Traceback" not in text
    assert read_card(run / "final.safetensors").training["epochs"] == EPOCHS
    abn.load(run / "final.safetensors")
    assert load_state(state)["epoch"] == EPOCHS
    assert _epochs(run) == list(range(1, EPOCHS + 1))
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    print(f"random delay {delay:.2f} s; resumed from epochs {[e for e, _ in seen]}; temp files "
          f"left {[t for _, t in seen]}; weights behind the state: {torn}")  # fmt: skip
