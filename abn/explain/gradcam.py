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

import time
import types
import weakref
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache, partial
from types import ModuleType
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from abn.models.output import ModelOutput

from .backends import Backend
from .base import Explainer, register_method
from .core import Computed, ForwardPass, LazyClass, predictions
from .replica import borrowed_replica, cut_graph_hook, session_cache

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
        with torch.no_grad():
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


@register_method
class ScoreCAMExplainer(GradCamFamily):
    """Score-CAM through pytorch-grad-cam (one forward per channel: slow)."""

    name = "scorecam"
    title = "Score-CAM"
    short = "Score"
    description = "Channels weighted by the class score of the image masked by each (Wang et al.)."
    slow = True
    cam_class = LazyClass(grad_cam_library, "ScoreCAM")
    uses_gradients = False
    batch_size: int = 32

    def make_cam(self, model: nn.Module) -> BaseCAM:
        cam = super().make_cam(model)
        cam.batch_size = self.batch_size
        return cam


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
