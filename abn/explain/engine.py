"""Running methods: one forward pass shared by all methods that can share it.

* Forward-pass methods (``abn``, ``abn-class``, ``cam``) read the model's own output. Alone, they
  run the shared model under ``torch.inference_mode`` with no hooks: a read-only forward that
  any number of threads can run at once.
* The Grad-CAM family runs on a replica borrowed for the call (:mod:`.replica`). One capture
  (pytorch-grad-cam's ``ActivationsAndGradients``) records the target layer's activations and
  gradients in one forward and one backward pass; each method then computes its map from them
  with pytorch-grad-cam's own ``compute_cam_per_layer``. The forward-pass methods read the same
  forward's output, so ``explain_many(model, x, ["abn", "gradcam", "gradcam++"])`` costs one
  forward and one backward.
* A hook on the target layer makes its output the root of the graph: the backward pass runs
  from the logits to the target layer only, and no input or parameter needs a gradient.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from abn.models.output import ModelOutput

from .base import (
    Explainer,
    Explanation,
    Pass,
    TargetSpec,
    finish,
    get_explainer,
    num_outputs,
    predictions,
    resolve_targets,
    target_scores,
)
from .methods import GradCamFamily
from .replica import borrowed_replica, cut_graph_hook, session_cache


class LogitsView(nn.Module):
    """What pytorch-grad-cam sees: the model's logits as a plain tensor.

    Multi-task ABN runs only ``task``'s perception pass and returns its B×2 logits (target 1
    is "present"). The last :class:`ModelOutput` is kept in ``output`` for the caller.
    """

    def __init__(self, model: nn.Module, task: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.output: ModelOutput | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.task is None:
            self.output = self.model(x)
            return self.output.logits
        self.output = self.model(x, tasks=[self.task])
        return self.output.logits[:, 0]


def check_ready(model: nn.Module) -> None:
    """Explaining needs eval mode (fixed BatchNorm statistics, no dropout); it is not forced
    here because switching a shared model's mode would affect other threads."""
    if model.training:
        raise RuntimeError(
            "explaining needs the model in eval mode: call model.eval() first "
            "(abn.load returns models in eval mode)"
        )


def as_batch(images: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """B×3×H×W float tensor on the model's device."""
    if not isinstance(images, torch.Tensor):
        raise TypeError("images must be a preprocessed tensor (see abn.explain.preprocess)")
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be B×C×H×W with B ≥ 1, got {tuple(images.shape)}")
    device = next(model.parameters()).device
    return images.to(device=device, dtype=torch.float32 if not images.is_floating_point() else None)


def run(
    explainers: Sequence[Explainer],
    images: torch.Tensor,
    target: TargetSpec = None,
    *,
    batch_size: int | None = None,
) -> dict[str, Explanation]:
    """Explain ``images`` with every explainer (all built for the same model)."""
    model = explainers[0].model
    if any(e.model is not model for e in explainers):
        raise ValueError("all explainers of one run must explain the same model")
    check_ready(model)
    x = as_batch(images, model)
    if batch_size is None or batch_size >= x.shape[0]:
        return _run_batch(explainers, x, target)
    chunks = list(x.split(batch_size))
    per_image = target is not None and not isinstance(target, (int, str))
    if per_image and isinstance(target, torch.Tensor) and target.dim() == 0:
        per_image = False
    parts: list[dict[str, Explanation]] = []
    start = 0
    for chunk in chunks:
        t = list(target)[start : start + len(chunk)] if per_image else target
        parts.append(_run_batch(explainers, chunk, t))
        start += len(chunk)
    return {e.name: Explanation.concat([p[e.name] for p in parts]) for e in explainers}


def _run_batch(
    explainers: Sequence[Explainer], x: torch.Tensor, target: TargetSpec
) -> dict[str, Explanation]:
    model = explainers[0].model
    names = explainers[0].class_names
    count = num_outputs(model)
    forward = [e for e in explainers if e.from_forward]
    family = [e for e in explainers if not e.from_forward]
    explicit = resolve_targets(target, x.shape[0], count, names, None, x.device)

    start = time.perf_counter()
    raws: dict[str, torch.Tensor] = {}
    timings: dict[str, float] = {}
    output, targets = None, explicit
    full_forward = not family or (model.is_multitask and model.is_abn)
    if full_forward:
        with torch.inference_mode():
            output = model(x)
        predicted, probs = predictions(model, output)
        targets = explicit if explicit is not None else predicted
    shared = time.perf_counter() - start
    layers = sorted({e.layer_name for e in family})
    for layer in layers:
        group = [e for e in family if e.layer_name == layer]
        out, targets, group_raws, group_times = _family_pass(model, x, group, layer, targets)
        if output is None:  # the forward-pass methods read this pass's output
            output, shared = out, time.perf_counter() - start
        raws.update(group_raws)
        timings.update(group_times)
    for e in forward:
        t0 = time.perf_counter()
        raws[e.name] = e.raw_maps(Pass(x, output, targets))
        timings[e.name] = shared + time.perf_counter() - t0
    if not full_forward:
        predicted, probs = predictions(model, output)
    scores = target_scores(model, output, targets)
    size = (x.shape[-2], x.shape[-1])
    results = {}
    for e in explainers:
        t0 = time.perf_counter()
        maps = finish(raws[e.name], size, e.normalize)
        results[e.name] = Explanation(
            method=e.name,
            maps=maps,
            raw=raws[e.name],
            targets=targets,
            scores=scores,
            predicted=predicted,
            probabilities=probs,
            class_names=names,
            seconds=timings[e.name] + time.perf_counter() - t0,
        )
    return results


def _family_pass(
    model: nn.Module,
    x: torch.Tensor,
    group: Sequence[GradCamFamily],
    layer: str,
    targets: torch.Tensor | None,
) -> tuple[ModelOutput, torch.Tensor, dict[str, torch.Tensor], dict[str, float]]:
    """One capture (forward + backward) per task, every method of ``group`` computed from it."""
    if model.is_multitask and model.is_abn:
        raws: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {e.name: [] for e in group}
        times = dict.fromkeys(raws, 0.0)
        for task in targets.unique().tolist():
            rows = (targets == task).nonzero()[:, 0]
            _, _, part, part_times = _capture(model, x[rows], group, layer, targets[rows], task)
            for name, raw in part.items():
                raws[name].append((rows, raw))
                times[name] += part_times[name]
        return None, targets, {n: _scatter(parts, len(x)) for n, parts in raws.items()}, times
    return _capture(model, x, group, layer, targets, None)


def _scatter(parts: list[tuple[torch.Tensor, torch.Tensor]], n: int) -> torch.Tensor:
    first = parts[0][1]
    out = first.new_empty((n, *first.shape[1:]))
    for rows, raw in parts:
        out[rows.to(out.device)] = raw
    return out


@contextmanager
def unchunked(replica: nn.Module) -> Iterator[None]:
    """Run a multi-task ABN replica's perception passes as one batch: pytorch-grad-cam reads one
    activation per hooked layer, and ``chunk_size`` would call the layer once per chunk."""
    chunk = getattr(replica, "chunk_size", None)
    if chunk is None:
        yield
        return
    replica.chunk_size = 0
    try:
        yield
    finally:
        replica.chunk_size = chunk


def _capture(
    model: nn.Module,
    x: torch.Tensor,
    group: Sequence[GradCamFamily],
    layer_name: str,
    targets: torch.Tensor | None,
    task: int | None,
):
    from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    needs_grad = any(e.uses_gradients for e in group)
    start = time.perf_counter()
    with borrowed_replica(model) as replica, unchunked(replica):
        cache = session_cache(replica)
        view = cache.get("view") or cache.setdefault("view", LogitsView(replica))
        view.task = task
        layer = replica.get_submodule(layer_name)
        cut = layer.register_forward_hook(cut_graph_hook(needs_grad))
        capture = ActivationsAndGradients(view, [layer], None)
        try:
            with torch.enable_grad():
                logits = capture(x)
                output = view.output
                if targets is None:
                    targets = predictions(model, output)[0]
                classes = targets if task is None else torch.ones_like(targets)
                if needs_grad:
                    logits.gather(1, classes[:, None]).sum().backward()
            cut.remove()
            for handle in capture.handles:
                handle.remove()
            output = output.detach()
            shared = time.perf_counter() - start
            cam_targets = [ClassifierOutputTarget(c) for c in classes.tolist()]
            raws, times = {}, {}
            for e in group:
                t0 = time.perf_counter()
                raws[e.name] = _cam_map(e, cache, view, layer, capture, x, cam_targets)
                times[e.name] = shared + time.perf_counter() - t0
        finally:
            cut.remove()
            capture.release()
            view.output = None
    return output, targets, raws, times


def _cam_map(e, cache, view, layer, capture, x, cam_targets) -> torch.Tensor:
    # pytorch-grad-cam objects are reused per replica (one borrower at a time): building one
    # costs a traversal of the model (``model.eval()``) and test-time-augmentation setup.
    key = (type(e), e.__dict__.get("batch_size"))
    cam = cache.get(key)
    if cam is None:
        cam = cache[key] = e.make_cam(view)
    own, cam.activations_and_grads = cam.activations_and_grads, capture
    cam.target_layers = [layer]
    try:
        with torch.no_grad():
            per_layer = cam.compute_cam_per_layer(x, cam_targets, False)
        low = cam.aggregate_multi_layers(per_layer)
    finally:
        cam.activations_and_grads = own  # its __del__ must not release the shared capture
    return torch.from_numpy(low).to(x.device)


def explain_many(
    model: nn.Module,
    images: torch.Tensor,
    methods: Sequence[str],
    target: TargetSpec = None,
    *,
    target_layer: nn.Module | str | None = None,
    class_names: Sequence[str] | None = None,
    batch_size: int | None = None,
) -> dict[str, Explanation]:
    """Explain ``images`` with several methods, sharing the forward (and backward) pass."""
    explainers = [
        get_explainer(m, model, target_layer=target_layer, class_names=class_names)
        for m in dict.fromkeys(methods)
    ]
    return run(explainers, images, target, batch_size=batch_size)


def explain(
    model: nn.Module,
    images: torch.Tensor,
    method: str = "abn",
    target: TargetSpec = None,
    *,
    target_layer: nn.Module | str | None = None,
    class_names: Sequence[str] | None = None,
    batch_size: int | None = None,
) -> Explanation:
    """Explain a batch of preprocessed images (B×3×H×W or 3×H×W) with one method.

    Args:
        model: an eval-mode model from :func:`abn.models.create` or :func:`abn.load`.
        images: preprocessed input on any device (moved to the model's).
        method: a name from :func:`list_methods`, e.g. ``"abn"``, ``"gradcam"``.
        target: class index or name for all images, one per image, or ``None`` for the
            predicted class; for multi-task models an attribute (index or name).
        target_layer: Grad-CAM family layer (module or dotted name); default per architecture.
        class_names: names for string targets (default ``model.card.class_names``).
        batch_size: explain in chunks of this many images (bounds memory).
    """
    explainer = get_explainer(method, model, target_layer=target_layer, class_names=class_names)
    return run([explainer], images, target, batch_size=batch_size)[explainer.name]
