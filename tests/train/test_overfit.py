"""A tiny ABN memorises a few dozen real images: the loss, loop and optimizer work together."""

from __future__ import annotations

from pathlib import Path

import torch

from abn.data.memory import load_into_memory
from abn.models import create
from abn.train.engine import train_one_epoch


def test_resnet20_abn_reaches_100_percent_train_accuracy_on_both_branches(data_root: Path) -> None:
    mem = load_into_memory("cifar10", "train", root=data_root, limit=32, progress=False)
    batches = mem.loader(32, train=True, seed=0, padding=0, flip=False)  # nothing to generalise
    torch.manual_seed(0)
    model = create("resnet20", "abn", 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    device = torch.device("cpu")
    history = []
    for epoch in range(60):
        batches.set_epoch(epoch)
        stats = train_one_epoch(model, batches, opt, device, "fp32")  # the same on every CPU
        history.append((stats.acc_per, stats.acc_att))
        if stats.acc_per == 100.0 and stats.acc_att == 100.0:
            break
    assert history[0][0] < 50.0  # it did not start out knowing the answers
    assert history[-1] == (100.0, 100.0), history[-5:]
    assert stats.loss < 1.0
