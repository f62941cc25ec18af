"""The methods: ABN's own maps, CAM, and the Grad-CAM family through pytorch-grad-cam.

Each is a thin :class:`~abn.explain.base.Explainer` subclass. The Grad-CAM family never
reimplements a method: :meth:`GradCamFamily.make_cam` builds pytorch-grad-cam's own class (a
tiny subclass whose ``get_target_width_height`` returns the activation size, so it yields the
low-resolution map scaled to [0, 1]; upsampling is done once, in torch).
"""

from __future__ import annotations

import types
from functools import cache, partial
from types import ModuleType
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from .base import Explainer, Pass, pick, register_method

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


class LibraryClass:
    """A pytorch-grad-cam class by name, resolved on first access (from the class or from an
    instance), so registering the family costs no import."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, instance: object, owner: type) -> type[BaseCAM]:
        return getattr(grad_cam_library(), self.name)


@register_method
class AbnExplainer(Explainer):
    """ABN's attention map M(x) from the forward pass itself: no gradients, no second pass.

    Multi-task ABN: the target attribute's map. The map keeps its values (already in [0, 1]).
    """

    name = "abn"
    normalize = False

    @classmethod
    def unsupported(cls, model: nn.Module) -> str | None:
        return None if model.is_abn else "it has no attention branch (not an ABN model)"

    def raw_maps(self, batch: Pass) -> torch.Tensor:
        attention = batch.output.attention
        if attention.shape[1] == 1:
            return attention[:, 0]
        return pick(attention, batch.targets)


@register_method
class AbnClassExplainer(Explainer):
    """ABN's class-specific map: the attention branch's K-channel response (CAM-style)."""

    name = "abn-class"

    @classmethod
    def unsupported(cls, model: nn.Module) -> str | None:
        if not model.is_abn or model.is_multitask:
            return "only single-task ABN models have class-specific attention responses"
        return None

    def raw_maps(self, batch: Pass) -> torch.Tensor:
        return pick(batch.output.class_maps, batch.targets)


@register_method
class CamExplainer(Explainer):
    """Class activation map of a CAM-variant model (K×1×1 conv before GAP, Zhou et al.)."""

    name = "cam"

    @classmethod
    def unsupported(cls, model: nn.Module) -> str | None:
        spec = getattr(model, "spec", None)
        return None if spec is not None and spec.variant == "cam" else "it is not a CAM model"

    def raw_maps(self, batch: Pass) -> torch.Tensor:
        return pick(batch.output.class_maps, batch.targets)


class GradCamFamily(Explainer):
    """A pytorch-grad-cam method on the perception branch's logits, on any model."""

    from_forward = False
    #: pytorch-grad-cam's class (a :class:`LibraryClass` in each method).
    cam_class: ClassVar[type[BaseCAM]]
    #: needs the backward pass (gradient-free methods are computed from activations/scores).
    uses_gradients: ClassVar[bool] = True

    def make_cam(self, model: nn.Module) -> BaseCAM:
        """pytorch-grad-cam's object for ``model``, without hooks (the engine captures)."""
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


def _family(name: str, cam_class: str, uses_gradients: bool = True, doc: str = ""):
    cls = type(
        cam_class + "Explainer",
        (GradCamFamily,),
        {
            "name": name,
            "cam_class": LibraryClass(cam_class),
            "uses_gradients": uses_gradients,
            "__doc__": doc or f"{cam_class} through pytorch-grad-cam.",
            "__module__": __name__,
        },
    )
    return register_method(cls)


GradCAMExplainer = _family("gradcam", "GradCAM")
GradCAMPlusPlusExplainer = _family("gradcam++", "GradCAMPlusPlus")
XGradCAMExplainer = _family("xgradcam", "XGradCAM")
LayerCAMExplainer = _family("layercam", "LayerCAM")
HiResCAMExplainer = _family("hirescam", "HiResCAM")
EigenCAMExplainer = _family("eigencam", "EigenCAM", uses_gradients=False)


@register_method
class ScoreCAMExplainer(GradCamFamily):
    """Score-CAM through pytorch-grad-cam (one forward per channel: slow)."""

    name = "scorecam"
    cam_class = LibraryClass("ScoreCAM")
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
    cam_class = LibraryClass("AblationCAM")
    uses_gradients = False
    batch_size: int = 32

    def make_cam(self, model: nn.Module) -> BaseCAM:
        # A fresh AblationLayer per call: the library's default argument is one shared,
        # stateful module, unsafe across threads.
        from pytorch_grad_cam.ablation_layer import AblationLayer

        return _low_res(self.cam_class)(
            model, [], ablation_layer=AblationLayer(), batch_size=self.batch_size
        )
