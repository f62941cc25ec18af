"""The Grad-CAM family through pytorch-grad-cam, and its backend: one layer capture per group.

The family never reimplements a method: :meth:`GradCamFamily.make_cam` builds pytorch-grad-cam's
own class (a tiny subclass whose ``get_target_width_height`` returns the activation size, so it
yields the low-resolution map scaled to [0, 1]; upsampling is done once, in torch).

:class:`LayerCapture` runs on a replica borrowed for the call (:mod:`.replica`). One capture
(pytorch-grad-cam's ``ActivationsAndGradients``) records the target layer's activations and
gradients in one forward and one backward pass; each method then computes its map from them with
pytorch-grad-cam's own ``compute_cam_per_layer``. A hook on the target layer makes its output the
root of the graph: the backward pass runs from the logits to the target layer only, and no input
or parameter needs a gradient.
"""

from __future__ import annotations

import threading
import time
import types
import weakref
from collections.abc import Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cache, partial
from types import ModuleType
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from abn.models.output import ModelOutput

from .backends import Backend
from .base import Explainer, register_method
from .core import Computed, ForwardPass, LazyClass, predictions
from .progress import step
from .replica import borrowed_replica, cut_graph_hook, fingerprint, replicate, session_cache

if TYPE_CHECKING:
    from pytorch_grad_cam.base_cam import BaseCAM


@cache
def grad_cam_library() -> ModuleType:
    """``pytorch_grad_cam``, imported on first use: it pulls in scikit-learn and OpenCV (about
    5 s on a 2-core CPU), which ABN's and CAM's own maps, and ``--help``, never need."""
    import pytorch_grad_cam
    import pytorch_grad_cam.ablation_cam
    import pytorch_grad_cam.score_cam
    import tqdm

    # Score-CAM and Ablation-CAM draw a progress bar per image batch, which floods the terminal
    # and the server log; callers (the CLI, the scorecard, the app) show progress of their own.
    silent = types.SimpleNamespace(tqdm=partial(tqdm.tqdm, disable=True))
    for module in (pytorch_grad_cam.score_cam, pytorch_grad_cam.ablation_cam):
        module.tqdm = silent
    return pytorch_grad_cam


_LAYER_NAMES: weakref.WeakKeyDictionary[nn.Module, dict[int, str]] = weakref.WeakKeyDictionary()


def layer_name(model: nn.Module, layer: nn.Module | str | None) -> str:
    """The dotted name of the Grad-CAM target layer within ``model``."""
    if layer is None:
        layer = model.default_target_layer()
    if isinstance(layer, str):
        try:
            model.get_submodule(layer)
        except AttributeError:
            raise ValueError(f"model has no layer named {layer!r}") from None
        return layer
    names = _LAYER_NAMES.get(model)
    name = names.get(id(layer)) if names else None
    if name is None or model.get_submodule(name) is not layer:
        names = {id(m): n for n, m in model.named_modules()}
        _LAYER_NAMES[model] = names
        name = names.get(id(layer))
    if name is None:
        raise ValueError("target_layer is not a module of the model being explained")
    return name


# ----------------------------------------------------------------------------- the backend


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


def _per_task(model: nn.Module) -> bool:
    return bool(model.is_multitask and model.is_abn)


class LayerCapture(Backend):
    """One capture (forward + backward) of a layer shared by every method on that layer.

    Single-task and plain models: the capture's forward is the full forward pass, so it also
    serves the other methods. Multi-task ABN: one capture per explained attribute, running only
    that attribute's perception pass (targets come from the engine's forward pass).
    """

    def group_key(self, explainer: GradCamFamily) -> Hashable:
        return explainer.layer_name

    def forward_passes(self, group: Sequence[GradCamFamily], size: tuple[int, int]) -> float:
        """The capture (a backward pass counts as two) and each method's own passes."""
        capture = 3.0 if any(e.uses_gradients for e in group) else 1.0
        return capture + super().forward_passes(group, size)

    def gives_output(self, model: nn.Module) -> bool:
        return not _per_task(model)

    def compute(self, group: Sequence[GradCamFamily], batch: ForwardPass) -> Computed:
        model, layer, x = group[0].model, group[0].layer_name, batch.images
        if not _per_task(model):
            return _capture(model, x, group, layer, batch.targets, None)
        targets = batch.targets
        raws: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {e.name: [] for e in group}
        seconds = dict.fromkeys(raws, 0.0)
        for task in targets.unique().tolist():
            rows = (targets == task).nonzero()[:, 0]
            part = _capture(model, x[rows], group, layer, targets[rows], task)
            for name, raw in part.raws.items():
                raws[name].append((rows, raw))
                seconds[name] += part.seconds[name]
        return Computed({n: _scatter(parts, len(x)) for n, parts in raws.items()}, seconds)


def _scatter(parts: list[tuple[torch.Tensor, torch.Tensor]], n: int) -> torch.Tensor:
    first = parts[0][1]
    out = first.new_empty((n, *first.shape[1:]))
    for rows, raw in parts:
        out[rows.to(out.device)] = raw
    return out


def _capture(
    model: nn.Module,
    x: torch.Tensor,
    group: Sequence[GradCamFamily],
    layer_name: str,
    targets: torch.Tensor | None,
    task: int | None,
) -> Computed:
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
            raws, seconds = {}, {}
            for e in group:
                t0 = time.perf_counter()
                raws[e.name] = _cam_map(e, cache, view, layer, capture, x, cam_targets)
                seconds[e.name] = shared + time.perf_counter() - t0
        finally:
            cut.remove()
            capture.release()
            view.output = None
    return Computed(raws, seconds, output if task is None else None, targets)


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
        with torch.no_grad(), e.masked_passes(cam, view):
            per_layer = cam.compute_cam_per_layer(x, cam_targets, False)
        low = cam.aggregate_multi_layers(per_layer)
    finally:
        cam.activations_and_grads = own  # its __del__ must not release the shared capture
    return torch.from_numpy(low).to(x.device)


LAYER_CAPTURE = LayerCapture()


# ----------------------------------------------------------------------------- the methods


class GradCamFamily(Explainer):
    """A pytorch-grad-cam method on the perception branch's logits, on any model."""

    post_hoc = True
    backend = LAYER_CAPTURE
    #: pytorch-grad-cam's class (a :class:`~abn.explain.core.LazyClass` in each method).
    cam_class: ClassVar[type[BaseCAM]]
    #: needs the backward pass (gradient-free methods are computed from activations/scores).
    uses_gradients: ClassVar[bool] = True

    def resolve_layer(self, model: nn.Module, target_layer: nn.Module | str | None) -> str:
        """The target layer's name (the architecture's default when ``None``)."""
        return layer_name(model, target_layer)

    def make_cam(self, model: nn.Module) -> BaseCAM:
        """pytorch-grad-cam's object for ``model``, without hooks (the backend captures)."""
        return _low_res(self.cam_class)(model, [])

    def masked_passes(self, cam: BaseCAM, view: LogitsView) -> AbstractContextManager:
        """A context around the library's computation of the map from the capture (methods
        that run the model again, once per channel, set how those passes run)."""
        return nullcontext()

    def layer_shape(self, size: tuple[int, int]) -> tuple[int, ...]:
        """C×h×w of the target layer's output for an image of ``size``."""
        return layer_shape(self.model, self.layer_name, size)


def _activation_size(self: BaseCAM, input_tensor: torch.Tensor) -> tuple[int, int]:
    activation = self.activations_and_grads.activations[0]
    return activation.shape[-1], activation.shape[-2]


@cache
def _low_res(cam_class: type[BaseCAM]) -> type[BaseCAM]:
    """``cam_class`` returning maps at the target layer's resolution."""
    return type(
        f"LowRes{cam_class.__name__}", (cam_class,), {"get_target_width_height": _activation_size}
    )


def _family(
    name: str,
    cam_class: str,
    title: str,
    short: str,
    description: str,
    uses_gradients: bool = True,
    aliases: tuple[str, ...] = (),
    class_agnostic: bool = False,
) -> type[GradCamFamily]:
    cls = type(
        cam_class + "Explainer",
        (GradCamFamily,),
        {
            "name": name,
            "aliases": aliases,
            "title": title,
            "short": short,
            "description": description,
            "cam_class": LazyClass(grad_cam_library, cam_class),
            "uses_gradients": uses_gradients,
            "class_agnostic": class_agnostic,
            "__doc__": f"{cam_class} through pytorch-grad-cam.",
            "__module__": __name__,
        },
    )
    return register_method(cls)


GradCAMExplainer = _family(
    "gradcam", "GradCAM", "Grad-CAM", "GC",
    "The layer's channels weighted by the mean gradient of the class score (Selvaraju et al.).",
)  # fmt: skip
GradCAMPlusPlusExplainer = _family(
    "gradcam++", "GradCAMPlusPlus", "Grad-CAM++", "GC++",
    "Grad-CAM with channel weights from positive higher-order gradients (Chattopadhay et al.).",
    aliases=("gradcampp", "gradcamplusplus"),
)  # fmt: skip
XGradCAMExplainer = _family(
    "xgradcam", "XGradCAM", "XGrad-CAM", "XGC",
    "Grad-CAM with gradients weighted by the normalised activations (Fu et al.).",
)  # fmt: skip
LayerCAMExplainer = _family(
    "layercam", "LayerCAM", "LayerCAM", "Layer",
    "Each position's activation weighted by its own positive gradient (Jiang et al.).",
)  # fmt: skip
HiResCAMExplainer = _family(
    "hirescam", "HiResCAM", "HiResCAM", "HiRes",
    "Activations times gradients position by position, summed over channels (Draelos & Carin).",
)  # fmt: skip
EigenCAMExplainer = _family(
    "eigencam", "EigenCAM", "EigenCAM", "Eigen",
    "The first principal component of the layer's activations; the same for every class.",
    uses_gradients=False,
    class_agnostic=True,
)  # fmt: skip


# ----------------------------------------------------------------------------- channel loops


_SHAPES: weakref.WeakKeyDictionary[nn.Module, dict[tuple, tuple[int, ...]]] = (
    weakref.WeakKeyDictionary()
)


def layer_shape(model: nn.Module, name: str, size: tuple[int, int]) -> tuple[int, ...]:
    """C×h×w of layer ``name``'s output for one image of ``size`` (one forward of a blank image
    on a replica, cached per model)."""
    shapes = _SHAPES.setdefault(model, {})
    key = (name, tuple(size))
    if key not in shapes:
        seen: list[torch.Tensor] = []
        device = next(model.parameters()).device
        with borrowed_replica(model) as replica, torch.inference_mode():
            hook = replica.get_submodule(name).register_forward_hook(
                lambda module, inputs, out: seen.append(out)
            )
            try:
                replica(torch.zeros(1, 3, *size, device=device))
            finally:
                hook.remove()
        shapes[key] = tuple(seen[0].shape[1:])
    return shapes[key]


class CountedPasses(nn.Module):
    """The model as a channel-loop method calls it, reporting each batch to the progress
    tracker (:func:`~abn.explain.progress.step`)."""

    def __init__(self, view: nn.Module) -> None:
        super().__init__()
        self.view = view

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.view(x)
        step(len(x))
        return out


class FastMaskedPasses(nn.Module):
    """Score-CAM's masked passes run fast: the target logits of a channels-last copy of the
    model under ``torch.inference_mode`` (autocast is entered by the caller, around the whole
    loop, so the weights are cast once); each all-zero masked image (a channel that is constant
    over the image, whose min-max mask is 0 everywhere) reuses the score of one blank image
    instead of another forward pass. Each batch is reported to the progress tracker."""

    def __init__(self, model: nn.Module, task: int | None, channels_last: bool) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.channels_last = channels_last
        self.blank: torch.Tensor | None = None
        self.skipped = 0

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.task is None:
            return self.model(x).logits.float()
        return self.model(x, tasks=[self.task]).logits[:, 0].float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            blank = x.flatten(1).abs().amax(1) == 0
            if not bool(blank.any()):
                out = self.logits(x)
            else:
                if self.blank is None:
                    self.blank = self.logits(torch.zeros_like(x[:1]))
                out = self.blank.expand(len(x), -1).clone()
                kept = ~blank
                if bool(kept.any()):
                    out[kept] = self.logits(x[kept])
                self.skipped += int(blank.sum())
        step(len(x))
        return out


_FAST: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, nn.Module]] = weakref.WeakKeyDictionary()
_FAST_LOCK = threading.Lock()


def fast_copy(model: nn.Module, channels_last: bool) -> nn.Module:
    """A read-only copy of ``model`` for the masked passes, shared by all threads (no hooks;
    run under ``torch.inference_mode``): its convolution weights in channels-last memory format
    when asked (new tensors; the others share the model's storage), and parameters that autocast
    may cast once per loop (``requires_grad``; no gradient is ever computed). Rebuilt when the
    model changes (:func:`~abn.explain.replica.fingerprint`)."""
    key = (fingerprint(model), channels_last)
    with _FAST_LOCK:
        held = _FAST.get(model)
        if held is not None and held[0] == key:
            return held[1]
    copy = replicate(model)
    if channels_last:
        copy = copy.to(memory_format=torch.channels_last)
    for p in copy.parameters():
        p.requires_grad_(True)
    with _FAST_LOCK:
        _FAST[model] = (key, copy)
    return copy


def fast_setting(precision: str, channels_last: bool | None, device: torch.device):
    """(autocast context, channels-last) of the fast masked passes on ``device``."""
    from abn.precision import autocast_for, resolve_precision

    resolved = resolve_precision(precision, device)
    if channels_last is None:  # measured faster on CPU in fp32 and bf16 (scorecam_speed.py)
        channels_last = device.type in ("cpu", "cuda")
    return autocast_for(device, resolved), channels_last


@register_method
class ScoreCAMExplainer(GradCamFamily):
    """Score-CAM through pytorch-grad-cam (one forward per channel: slow).

    pytorch-grad-cam computes the map; only how its masked passes run is set here. With
    ``fast`` (the default) they run in ``precision`` (``"auto"``: bf16 autocast where the
    hardware has a native bf16 path, see :mod:`abn.precision`), channels-last on CPU and CUDA
    (``channels_last=None``), under ``torch.inference_mode``, ``batch_size`` masked images at a
    time, and skip the forward pass of all-zero masked images (see :class:`FastMaskedPasses`).
    ``fast = False`` runs the library's own loop on the model in fp32. The maps of both agree
    (``tests/explain/test_scorecam_fast.py``; timings in ``benchmarks/scorecam_speed.py``).
    """

    name = "scorecam"
    title = "Score-CAM"
    short = "Score"
    description = "Channels weighted by the class score of the image masked by each (Wang et al.)."
    slow = True
    cam_class = LazyClass(grad_cam_library, "ScoreCAM")
    uses_gradients = False
    batch_size: int = 16
    fast: bool = True
    precision: str = "auto"
    channels_last: bool | None = None

    def make_cam(self, model: nn.Module) -> BaseCAM:
        cam = super().make_cam(model)
        cam.batch_size = self.batch_size
        return cam

    def forward_passes(self, size: tuple[int, int]) -> float:
        """One masked pass per channel of the target layer."""
        return float(self.layer_shape(size)[0])

    @contextmanager
    def masked_passes(self, cam: BaseCAM, view: LogitsView) -> Iterator[None]:
        cam.batch_size = self.batch_size
        if not self.fast:
            cam.model = CountedPasses(view)
            try:
                yield
            finally:
                cam.model = view
            return
        device = next(self.model.parameters()).device
        autocast, channels_last = fast_setting(self.precision, self.channels_last, device)
        cam.model = FastMaskedPasses(fast_copy(self.model, channels_last), view.task, channels_last)
        try:
            with autocast:
                yield
        finally:
            cam.model = view


@register_method
class AblationCAMExplainer(GradCamFamily):
    """Ablation-CAM through pytorch-grad-cam (one forward per channel: slow)."""

    name = "ablationcam"
    title = "Ablation-CAM"
    short = "Ablat"
    description = "Channels weighted by how much the class score drops when each is zeroed."
    slow = True
    cam_class = LazyClass(grad_cam_library, "AblationCAM")
    uses_gradients = False
    batch_size: int = 32

    def make_cam(self, model: nn.Module) -> BaseCAM:
        # A fresh AblationLayer per call: the library's default argument is one shared,
        # stateful module, unsafe across threads.
        from pytorch_grad_cam.ablation_layer import AblationLayer

        return _low_res(self.cam_class)(
            model, [], ablation_layer=AblationLayer(), batch_size=self.batch_size
        )

    def forward_passes(self, size: tuple[int, int]) -> float:
        """One forward with each channel of the target layer zeroed, and one without."""
        return float(self.layer_shape(size)[0]) + 1.0

    @contextmanager
    def masked_passes(self, cam: BaseCAM, view: LogitsView) -> Iterator[None]:
        cam.model = CountedPasses(view)  # the library swaps the layer inside: the same modules
        try:
            yield
        finally:
            cam.model = view
