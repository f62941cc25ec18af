"""Running methods: one forward pass shared by all methods that can share it.

The engine groups the methods of a call by their backend (:mod:`.backends`) and lets each
backend compute its group; it knows nothing of any method or library:

* When a backend runs the model's full forward pass itself (the Grad-CAM family's layer capture,
  :meth:`~abn.explain.backends.Backend.gives_output`), its group goes first and its output
  serves every other method, so ``explain_many(model, x, ["abn", "gradcam", "gradcam++"])`` costs
  one forward and one backward.
* Otherwise the engine runs the shared model under ``torch.inference_mode`` with no hooks (a
  read-only forward any number of threads can run at once) for the predictions and targets.

With a ``progress`` callback the engine counts the forward passes it expects (:func:`passes`)
and reports per method and chunk, and within slow methods per batch of passes
(:mod:`.progress`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from . import progress as _progress
from .core import (
    Explanation,
    ForwardPass,
    Method,
    TargetSpec,
    as_batch,
    check_ready,
    maps_at_input_size,
    num_outputs,
    predictions,
    resolve_targets,
    target_scores,
)

if TYPE_CHECKING:
    from .backends import Backend


def run(
    explainers: Sequence[Method],
    images: torch.Tensor,
    target: TargetSpec = None,
    *,
    batch_size: int | None = None,
    progress: _progress.ProgressFn | None = None,
) -> dict[str, Explanation]:
    """Explain ``images`` with every explainer (all built for the same model); ``progress``
    (``callback(fraction, message)``) is told the fraction done per method and batch."""
    model = explainers[0].model
    if any(e.model is not model for e in explainers):
        raise ValueError("all explainers of one run must explain the same model")
    check_ready(model)
    x = as_batch(images, model)
    size = (x.shape[-2], x.shape[-1])
    total = passes(explainers, size) * x.shape[0]
    with _progress.tracking(progress, total):
        return _run_chunks(explainers, x, target, batch_size)


def passes(explainers: Sequence[Method], size: tuple[int, int]) -> float:
    """Forward passes (one image through the model) the engine expects per image of ``size``:
    the shared pass when the engine runs it, plus each group's own."""
    model = explainers[0].model
    groups = groups_of(explainers, model)
    shared = 0.0 if groups[0][0].gives_output(model) else 1.0
    return shared + sum(backend.forward_passes(group, size) for backend, group in groups)


def _run_chunks(
    explainers: Sequence[Method], x: torch.Tensor, target: TargetSpec, batch_size: int | None
) -> dict[str, Explanation]:
    if batch_size is None or batch_size >= x.shape[0]:
        return _run_batch(explainers, x, target)
    per_image = target is not None and not isinstance(target, (int, str))
    if per_image and isinstance(target, torch.Tensor) and target.dim() == 0:
        per_image = False
    parts: list[dict[str, Explanation]] = []
    start = 0
    for chunk in x.split(batch_size):
        t = list(target)[start : start + len(chunk)] if per_image else target
        parts.append(_run_batch(explainers, chunk, t))
        start += len(chunk)
    return {e.name: Explanation.concat([p[e.name] for p in parts]) for e in explainers}


def groups_of(explainers: Sequence[Method], model: nn.Module) -> list[tuple[Backend, list[Method]]]:
    """Methods grouped by backend and group key; groups that run the forward pass first."""
    groups: dict[tuple, tuple[Backend, list[Method]]] = {}
    for e in explainers:
        key = (id(e.backend), e.backend.group_key(e))
        groups.setdefault(key, (e.backend, []))[1].append(e)
    return sorted(groups.values(), key=lambda g: not g[0].gives_output(model))


def _inference_forward(model: nn.Module, batch: ForwardPass) -> ForwardPass:
    start = time.perf_counter()
    with torch.inference_mode():
        output = model(batch.images)
    targets = batch.targets if batch.targets is not None else predictions(model, output)[0]
    return ForwardPass(batch.images, output, targets, time.perf_counter() - start)


def _run_batch(
    explainers: Sequence[Method], x: torch.Tensor, target: TargetSpec
) -> dict[str, Explanation]:
    model = explainers[0].model
    names = explainers[0].class_names
    explicit = resolve_targets(target, x.shape[0], num_outputs(model), names, None, x.device)
    groups = groups_of(explainers, model)
    batch = ForwardPass(x, None, explicit)
    tracker = _progress.current()
    if not groups[0][0].gives_output(model):
        batch = _inference_forward(model, batch)
        _progress.step(len(x))
    raws: dict[str, torch.Tensor] = {}
    seconds: dict[str, float] = {}
    size = (x.shape[-2], x.shape[-1])
    for backend, group in groups:
        start = time.perf_counter()
        if tracker is None:
            done = backend.compute(group, batch)
        else:
            titles = ", ".join(getattr(e, "title", e.name) for e in group)
            with tracker.section(titles, backend.forward_passes(group, size) * len(x)):
                done = backend.compute(group, batch)
        if batch.output is None:  # the other methods read this backend's forward pass
            batch = ForwardPass(x, done.output, done.targets, time.perf_counter() - start)
        raws.update(done.raws)
        seconds.update(done.seconds)
    return _explanations(explainers, batch, raws, seconds)


def _explanations(
    explainers: Sequence[Method],
    batch: ForwardPass,
    raws: dict[str, torch.Tensor],
    seconds: dict[str, float],
) -> dict[str, Explanation]:
    """Each method's maps at the input's size, with the pass's predictions and scores."""
    model = explainers[0].model
    predicted, probs = predictions(model, batch.output)
    scores = target_scores(batch.output, batch.targets)
    size = (batch.images.shape[-2], batch.images.shape[-1])
    results = {}
    for e in explainers:
        start = time.perf_counter()
        maps = maps_at_input_size(raws[e.name], size, e.normalize)
        results[e.name] = Explanation(
            method=e.name,
            maps=maps,
            raw=raws[e.name],
            targets=batch.targets,
            scores=scores,
            predicted=predicted,
            probabilities=probs,
            class_names=e.class_names,
            seconds=seconds[e.name] + time.perf_counter() - start,
        )
    return results
