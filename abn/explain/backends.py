"""Backends: how a method gets its raw map, as a small strategy on the method's class.

The engine groups the methods of one call by ``(backend, backend.group_key(method))`` and asks
each group's backend to :meth:`~Backend.compute` it; it never asks what kind of method it runs.
Three strategies cover the methods here:

* :data:`READ_FORWARD` — the map is part of the model's own output (``abn``, ``abn-class``,
  ``cam``): read from the shared forward pass, no hooks, no gradients.
* :class:`~abn.explain.gradcam.LayerCapture` — one capture of a layer's activations and gradients
  shared by all Grad-CAM-family methods on that layer (pytorch-grad-cam).
* :data:`ON_REPLICA` — the method queries the model as a function (masked copies, input
  gradients), alone, on a replica borrowed for the call (:mod:`.replica`), so a shared model is
  never touched.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from typing import Any

from torch import nn

from .core import Computed, ForwardPass, Method
from .replica import borrowed_replica


class Backend:
    """A strategy computing the raw maps of a group of methods for one batch."""

    def group_key(self, explainer: Method) -> Hashable:
        """Methods with equal keys are computed together (default: each alone)."""
        return id(explainer)

    def gives_output(self, model: nn.Module) -> bool:
        """Whether :meth:`compute` runs the model's full forward pass itself and returns its
        output (and the predicted targets when none were asked), so the engine need not."""
        return False

    def compute(self, group: Sequence[Method], batch: ForwardPass) -> Computed:
        """Raw B×h×w maps and seconds of every method of ``group``."""
        raise NotImplementedError

    def forward_passes(self, group: Sequence[Method], size: tuple[int, int]) -> float:
        """Forward passes per image of ``size`` that computing ``group`` costs (progress and
        cost estimates; a backward pass counts as two)."""
        return float(sum(e.forward_passes(size) for e in group))


class ReadForward(Backend):
    """Maps read from the shared forward pass by each method's ``raw_maps(batch)``; each is
    charged the forward pass's time plus its own."""

    def group_key(self, explainer: Method) -> Hashable:
        return None

    def compute(self, group: Sequence[Any], batch: ForwardPass) -> Computed:
        raws, seconds = {}, {}
        for e in group:
            start = time.perf_counter()
            raws[e.name] = e.raw_maps(batch)
            seconds[e.name] = batch.seconds + time.perf_counter() - start
        return Computed(raws, seconds)


class OnReplica(Backend):
    """Each method's ``attribute(replica, images, targets)`` on a replica borrowed for the call:
    for methods that run the model on altered inputs or back-propagate to the input."""

    def compute(self, group: Sequence[Any], batch: ForwardPass) -> Computed:
        raws, seconds = {}, {}
        for e in group:
            start = time.perf_counter()
            with borrowed_replica(e.model) as replica:
                raws[e.name] = e.attribute(replica, batch.images, batch.targets).detach()
            seconds[e.name] = time.perf_counter() - start
        return Computed(raws, seconds)


READ_FORWARD = ReadForward()
ON_REPLICA = OnReplica()
