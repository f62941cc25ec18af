"""The training loop steps with the paper's schedule: lr 0.1, ÷10 at 50% and 75% of training."""

from __future__ import annotations

import csv

import pytest
import torch

from abn.train import load_config, train
from abn.train.optim import build_optimizer
from abn.train.state import STATE_NAME, load_state

pytestmark = pytest.mark.usefixtures("one_thread")


def test_training_steps_with_the_step_schedule(tiny_config) -> None:
    cfg = tiny_config(name="sched", epochs=4, limit_train=16, limit_test=8, batch_size=16,
                      eval_every=4)  # fmt: skip
    result = train(cfg)
    with (result.run_dir / "metrics.csv").open() as f:
        logged = [float(r["lr"]) for r in csv.DictReader(f)]
    # metrics.csv records the optimizer's own rate after each epoch
    assert logged == pytest.approx([0.1, 0.1, 0.01, 0.001])
    group = load_state(result.run_dir / STATE_NAME)["optimizer"]["param_groups"][0]
    assert group["lr"] == pytest.approx(0.001)
    assert (group["momentum"], group["weight_decay"], group["nesterov"]) == (0.9, 1e-4, False)


def test_optimizer_takes_the_recipe() -> None:
    cfg = load_config(None, ["lr=0.05", "momentum=0.8", "weight_decay=5e-4", "nesterov=true"])
    opt = build_optimizer(torch.nn.Linear(2, 2), cfg, torch.device("cpu"))
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (
        0.05, 0.8, 5e-4, True,
    )  # fmt: skip
