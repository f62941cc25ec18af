"""One training epoch: forward under autocast, L_att + L_per, SGD step; running statistics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from abn.distributed import all_reduce_sum
from abn.evaluate import attribute_predictions
from abn.precision import autocast_for

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


class TrainStep:
    """One SGD step on a batch: forward under autocast, L_att + L_per, backward, update.

    Returns the batch's statistics row (loss sums, correct counts, images) on the device, without
    synchronising with the host, so that :class:`~abn.train.graphs.GraphedStep` can capture it.
    ``cache_casts=False`` (needed under graph capture) re-casts the weights for bf16 each step.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        precision: str = "auto",
        cache_casts: bool = True,
    ) -> None:
        self.model, self.optimizer, self.device = model, optimizer, device
        self.precision, self.cache_casts = precision, cache_casts
        self.has_att = False

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        with autocast_for(self.device, self.precision, cache=self.cache_casts):
            out = self.model(x)
        parts = abn_loss(out, y)
        parts.total.backward()
        self.optimizer.step()
        b = float(y.shape[0])
        self.has_att = out.att_logits is not None
        att = _correct(out.att_logits, y) if self.has_att else parts.per.new_zeros(())
        row = [parts.total.detach() * b, parts.att.detach() * b, parts.per.detach() * b]
        row += [_correct(out.logits, y), att, parts.per.new_full((), b)]
        return torch.stack([v.float() for v in row]).double()


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    precision: str = "auto",
    bar: object = None,
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> EpochStats:
    """Train for one pass over ``batches``; returns statistics reduced across processes.

    ``step`` runs one batch (default: an eager :class:`TrainStep`); pass a
    :class:`~abn.train.graphs.GraphedStep` to replay it as a CUDA graph.
    """
    model.train()
    step = step or TrainStep(model, optimizer, device, precision)
    sums = torch.zeros(6, dtype=torch.float64, device=device)
    start = time.perf_counter()
    for i, (x, y) in enumerate(batches):
        row = step(x, y)
        sums += row
        if bar is not None and i % 10 == 0:
            bar.set_postfix(loss=f"{(row[_LOSS] / row[_N]).item():.3f}")  # type: ignore[attr-defined]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    totals = all_reduce_sum(sums.cpu()).tolist()
    n = max(totals[_N], 1.0)
    has_att = bool(getattr(step, "has_att", False))  # set by the step's model output
    return EpochStats(
        loss=totals[_LOSS] / n,
        loss_att=totals[_ATT] / n,
        loss_per=totals[_PER] / n,
        acc_per=100.0 * totals[_CORRECT_PER] / n,
        acc_att=100.0 * totals[_CORRECT_ATT] / n if has_att else None,
        images=int(totals[_N]),
        seconds=seconds,
    )
