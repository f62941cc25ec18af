"""SGD with momentum and the paper's step schedule (lr ÷ 10 at 50% and 75% of the epochs)."""

from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.SGD:
    """SGD (momentum, weight decay on every parameter as in the reference code).

    Uses the fused kernel on GPU and the multi-tensor (foreach) one elsewhere.
    """
    kwargs = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr_at(0),
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
        **kwargs,
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group (the schedule is a function of the epoch)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
