"""An interrupted run resumed from its folder ends bitwise equal to an uninterrupted one."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from abn.checkpoint import card_for, read_card, save
from abn.models import create
from abn.precision import resolve_precision
from abn.train import load_config, resolve_resume, train
from abn.train.state import STATE_NAME, ResumeError, load_state

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


class Interrupt(Exception):
    pass


def _stop_after_first_epoch(epoch: int, _stats) -> None:
    if epoch == 0:
        raise Interrupt


def _losses(run: Path) -> list[str]:
    with (run / "metrics.csv").open() as f:
        return [(r["epoch"], r["train_loss"], r["test_acc_per"]) for r in csv.DictReader(f)]


def test_resume_matches_uninterrupted_run(tiny_config, tmp_path: Path) -> None:
    full = train(tiny_config(name="full", limit_train=48, batch_size=16))
    cfg = tiny_config(name="cut", limit_train=48, batch_size=16)
    with pytest.raises(Interrupt):
        train(cfg, on_epoch_end=_stop_after_first_epoch)
    run = cfg.run_dir()
    assert not (run / "final.safetensors").exists()
    assert load_state(run / STATE_NAME)["epoch"] == 1  # loads with weights_only=True
    resumed = train(load_config(run / "config.toml"), resume=resolve_resume(run))

    a, b = load_file(full.final), load_file(resumed.final)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(full.run_dir) == _losses(run)
    assert read_card(resumed.final).metrics == read_card(full.final).metrics
    assert read_card(resumed.final).training["epochs"] == 2
    # the card keeps the recipe's "auto" and records what it resolved to on this CPU
    assert read_card(resumed.final).recipe["precision"] == "auto"
    assert read_card(resumed.final).training["precision"] == resolve_precision("auto", CPU)


def test_resume_needs_the_state_file(tmp_path: Path) -> None:
    (tmp_path / "last.safetensors").write_bytes(b"")
    with pytest.raises(ResumeError, match="last.state.pt is missing"):
        resolve_resume(tmp_path)
    with pytest.raises(ResumeError, match="nothing to resume"):
        resolve_resume(tmp_path / "missing")


def test_state_file_refuses_pickled_code(tmp_path: Path) -> None:
    path = tmp_path / "last.state.pt"
    torch.save({"version": 1, "evil": Interrupt()}, path)
    with pytest.raises(ResumeError, match="not a readable training state"):
        load_state(path)


def test_resume_takes_the_weights_from_the_state_not_last_safetensors(tiny_config) -> None:
    """A kill between the two writes leaves last.safetensors an epoch off: resume is unaffected.

    The state file holds weights, optimizer and RNG of one epoch (one atomic write), so the
    resumed run equals an uninterrupted one whatever last.safetensors holds; temp files that a
    kill mid-write left behind are ignored and removed.
    """
    full = train(tiny_config(name="full", limit_train=32, batch_size=16))
    cfg = tiny_config(name="torn", limit_train=32, batch_size=16)
    with pytest.raises(Interrupt):
        train(cfg, on_epoch_end=_stop_after_first_epoch)
    run = cfg.run_dir()
    assert load_state(run / STATE_NAME)["epoch"] == 1
    other = create("resnet20", "abn", num_classes=10)  # other weights, "from epoch 2"
    save(other, run / "last.safetensors", card_for(other, training={"epochs": 2}))
    (run / ".last.state.pt.killed.tmp").write_bytes(b"\x80half a state")
    (run / ".last.safetensors.killed.tmp").write_bytes((run / "last.safetensors").read_bytes()[:99])

    resumed = train(load_config(run / "config.toml"), resume=resolve_resume(run))
    a, b = load_file(full.final), load_file(resumed.final)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(full.run_dir) == _losses(run)
    assert not list(run.glob(".*.tmp"))
    assert read_card(run / "last.safetensors").training["epochs"] == 2


def test_version_1_state_resumes_only_with_weights_of_its_epoch(tiny_config) -> None:
    """Runs saved before the state held the weights resume from last.safetensors of its epoch."""
    cfg = tiny_config(name="v1", limit_train=32, batch_size=16)
    with pytest.raises(Interrupt):
        train(cfg, on_epoch_end=_stop_after_first_epoch)
    run = cfg.run_dir()
    state = load_state(run / STATE_NAME)
    del state["model"]
    torch.save({**state, "version": 1}, run / STATE_NAME)
    assert read_card(run / "last.safetensors").training["epochs"] == 1
    resumed = train(load_config(run / "config.toml"), resume=resolve_resume(run))
    assert read_card(resumed.final).training["epochs"] == 2

    torch.save({**state, "version": 1, "epoch": 0}, run / STATE_NAME)
    with pytest.raises(ResumeError, match="epoch 2 but last.state.pt .* from epoch 0"):
        train(load_config(run / "config.toml"), resume=resolve_resume(run))


def test_a_run_is_not_shortened_on_resume(tiny_config) -> None:
    cfg = tiny_config(name="two", limit_train=16, limit_test=8, batch_size=16)
    full = train(cfg)
    before = full.final.read_bytes()
    with pytest.raises(ResumeError, match="has trained 2 epochs: resume with --epochs >= 2"):
        train(
            load_config(full.run_dir / "config.toml", ["epochs=1"]),
            resume=resolve_resume(full.run_dir),
        )
    assert full.final.read_bytes() == before and read_card(full.final).training["epochs"] == 2


def test_a_folder_loader_run_resumed_with_other_workers_ends_the_same(tiny_config) -> None:
    """Augmentation draws follow the images, not the worker processes: resuming with
    ``workers=2`` what ran with 0 ends bitwise equal to the uninterrupted run."""
    kw = {"limit_train": 32, "limit_test": 8, "batch_size": 16, "loader": "folder"}
    full = train(tiny_config(name="full-folder", **kw))
    cfg = tiny_config(name="cut-folder", **kw)
    with pytest.raises(Interrupt):
        train(cfg, on_epoch_end=_stop_after_first_epoch)
    more = load_config(cfg.run_dir() / "config.toml", ["workers=2"])
    resumed = train(more, resume=resolve_resume(cfg.run_dir()))
    a, b = load_file(full.final), load_file(resumed.final)
    assert all(torch.equal(a[k], b[k]) for k in a)
