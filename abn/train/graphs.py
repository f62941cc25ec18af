"""A whole training step replayed as one CUDA graph (``cuda_graphs = true``).

Small CIFAR-style networks are bound by the host launching their kernels, not by the GPU: a
CIFAR ResNet-56 ABN training step dispatches about 1,600 operators (ResNet-110: 3,100). Capturing forward, loss, backward and the SGD update once and replaying them
(PyTorch's "whole-network capture") launches them all at once. The numbers are those of the
eager step: the same kernels run on the same values.

How it works: the first ``warmup`` steps run eagerly on a side stream (cuDNN picks its
algorithms, SGD creates its momentum buffers); the next step is captured with static input
buffers, and every later batch is copied into them before a replay. SGD's learning rate is a
constant of the captured kernels, so a new rate (the step schedule's drops) captures anew. A
batch of another shape (training drops its last incomplete batch, so none in practice) runs
eagerly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

StepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class GraphCaptureError(ValueError):
    """The training step could not be captured as a CUDA graph; the message says why."""


class GraphBackend(Protocol):
    """How steps run eagerly before capture, are captured, and are replayed."""

    def eager(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor: ...

    def capture(self, fn: Callable[[], object]) -> None: ...

    def replay(self) -> None: ...


class CudaGraphBackend:
    """:class:`torch.cuda.CUDAGraph` capture; eager warm-up on a side stream, as capture needs."""

    def __init__(self, device: torch.device) -> None:
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {device}")
        self.stream = torch.cuda.Stream(device)
        self.graph: torch.cuda.CUDAGraph | None = None

    def eager(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            out = fn()
        torch.cuda.current_stream().wait_stream(self.stream)
        return out

    def capture(self, fn: Callable[[], object]) -> None:
        self.graph = None  # frees the previous graph's memory pool before the next capture
        graph = torch.cuda.CUDAGraph()
        # thread_local: a loader's pin-memory thread may use CUDA while this thread captures
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            fn()
        self.graph = graph

    def replay(self) -> None:
        assert self.graph is not None, "replay before capture"
        self.graph.replay()


class GraphedStep:
    """``step(x, y) → statistics row`` replayed as a graph after ``warmup`` eager calls.

    ``step`` must clear the gradients itself (``zero_grad(set_to_none=True)``) so that the
    captured backward writes them afresh, and must not synchronise with the host. The row
    returned by a replay is a static buffer, overwritten by the next call.
    """

    def __init__(
        self,
        step: StepFn,
        optimizer: torch.optim.Optimizer,
        backend: GraphBackend,
        warmup: int = 3,
    ) -> None:
        if warmup < 1:
            raise ValueError(
                "warmup must be >= 1: capture needs the kernels chosen and SGD's state"
            )
        self.step, self.optimizer, self.backend, self.warmup = step, optimizer, backend, warmup
        self.calls = 0
        self.captures = 0
        self.replays = 0
        self._x: torch.Tensor | None = None
        self._y: torch.Tensor | None = None
        self._row: torch.Tensor | None = None
        self._lrs: tuple[float, ...] | None = None

    @property
    def has_att(self) -> bool:
        """Whether the model has an attention branch (as the wrapped step saw)."""
        return bool(getattr(self.step, "has_att", False))

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls <= self.warmup:
            return self.backend.eager(lambda: self.step(x, y))
        if self._x is not None and (x.shape != self._x.shape or y.shape != self._y.shape):
            return self.step(x, y)  # another batch shape: eager
        if self._x is None or self._lrs != self._current_lrs():
            self._capture(x, y)
        self._x.copy_(x)
        self._y.copy_(y)
        self.backend.replay()
        self.replays += 1
        return self._row

    def _current_lrs(self) -> tuple[float, ...]:
        return tuple(float(g["lr"]) for g in self.optimizer.param_groups)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self._x = torch.empty_like(x)  # keeps the batch's memory format (channels-last)
        self._y = torch.empty_like(y)
        self._row = torch.zeros(6, dtype=torch.float64, device=x.device)
        x_static, y_static, row = self._x, self._y, self._row
        try:
            self.backend.capture(lambda: row.copy_(self.step(x_static, y_static)))
        except RuntimeError as exc:
            self._x = None  # nothing captured: a later call tries again
            raise GraphCaptureError(
                f"could not capture the training step as a CUDA graph ({exc}); "
                "train without cuda_graphs"
            ) from exc
        self._lrs = self._current_lrs()
        self.captures += 1
