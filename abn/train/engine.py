"""One training epoch: forward under autocast, L_att + L_per, SGD step; running statistics."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from abn.evaluate import attribute_predictions
from abn.precision import autocast_for

from .distributed import all_reduce_sum
from .loss import abn_loss

# sums kept on the device during an epoch (no host sync per step)
_LOSS, _ATT, _PER, _CORRECT_PER, _CORRECT_ATT, _N = range(6)


@dataclass
class EpochStats:
    """Mean losses and train accuracies (percent) of one epoch over all processes."""

    loss: float
    loss_att: float
    loss_per: float
    acc_per: float
    acc_att: float | None
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def _correct(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Correct top-1 predictions (multi-label: correct attributes / T) in the batch."""
    logits = logits.detach()
    if target.dim() == 2:
        return attribute_predictions(logits).eq(target.long()).float().mean(dim=1).sum()
    return logits.argmax(dim=1).eq(target).sum().float()


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    precision: str = "auto",
    bar: object = None,
) -> EpochStats:
    """Train for one pass over ``batches``; returns statistics reduced across processes."""
    model.train()
    sums = torch.zeros(6, dtype=torch.float64, device=device)
    has_att = False
    start = time.perf_counter()
    for step, (x, y) in enumerate(batches):
        with autocast_for(device, precision):
            out = model(x)
        parts = abn_loss(out, y)
        optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        optimizer.step()
        b = y.shape[0]
        row = [parts.total.detach() * b, parts.att.detach() * b, parts.per.detach() * b]
        row.append(_correct(out.logits, y))
        has_att = out.att_logits is not None
        row.append(_correct(out.att_logits, y) if has_att else torch.zeros((), device=device))
        row.append(torch.tensor(float(b), device=device))
        sums += torch.stack([v.double() for v in row])
        if bar is not None and step % 10 == 0:
            bar.set_postfix(loss=f"{parts.total.item():.3f}")  # type: ignore[attr-defined]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    totals = all_reduce_sum(sums.cpu()).tolist()
    n = max(totals[_N], 1.0)
    return EpochStats(
        loss=totals[_LOSS] / n,
        loss_att=totals[_ATT] / n,
        loss_per=totals[_PER] / n,
        acc_per=100.0 * totals[_CORRECT_PER] / n,
        acc_att=100.0 * totals[_CORRECT_ATT] / n if has_att else None,
        images=int(totals[_N]),
        seconds=seconds,
    )
