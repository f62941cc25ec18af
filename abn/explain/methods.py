"""The methods: ABN's own maps, CAM, and the Grad-CAM family through pytorch-grad-cam.

Each is a thin :class:`~abn.explain.base.Explainer` subclass. The Grad-CAM family never
reimplements a method: :meth:`GradCamFamily.make_cam` builds pytorch-grad-cam's own class (a
tiny subclass whose ``get_target_width_height`` returns the activation size, so it yields the
low-resolution map scaled to [0, 1]; upsampling is done once, in torch).
"""

from __future__ import annotations

import types
from functools import cache, partial
from typing import ClassVar

import pytorch_grad_cam as pgc
import pytorch_grad_cam.ablation_cam
import pytorch_grad_cam.score_cam
import torch
import tqdm
from pytorch_grad_cam.ablation_layer import AblationLayer
from pytorch_grad_cam.base_cam import BaseCAM
from torch import nn

from .base import Explainer, Pass, pick, register_method

# Score-CAM and Ablation-CAM draw a progress bar per image batch, which floods the terminal and
# the server log; callers (the CLI, the scorecard, the app) show progress of their own.
_SILENT_TQDM = types.SimpleNamespace(tqdm=partial(tqdm.tqdm, disable=True))
for _module in (pytorch_grad_cam.score_cam, pytorch_grad_cam.ablation_cam):
    _module.tqdm = _SILENT_TQDM


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


def _family(name: str, cam_class: type[BaseCAM], uses_gradients: bool = True, doc: str = ""):
    cls = type(
        cam_class.__name__ + "Explainer",
        (GradCamFamily,),
        {
            "name": name,
            "cam_class": cam_class,
            "uses_gradients": uses_gradients,
            "__doc__": doc or f"{cam_class.__name__} through pytorch-grad-cam.",
            "__module__": __name__,
        },
    )
    return register_method(cls)


GradCAMExplainer = _family("gradcam", pgc.GradCAM)
GradCAMPlusPlusExplainer = _family("gradcam++", pgc.GradCAMPlusPlus)
XGradCAMExplainer = _family("xgradcam", pgc.XGradCAM)
LayerCAMExplainer = _family("layercam", pgc.LayerCAM)
HiResCAMExplainer = _family("hirescam", pgc.HiResCAM)
EigenCAMExplainer = _family("eigencam", pgc.EigenCAM, uses_gradients=False)


@register_method
class ScoreCAMExplainer(GradCamFamily):
    """Score-CAM through pytorch-grad-cam (one forward per channel: slow)."""

    name = "scorecam"
    cam_class = pgc.ScoreCAM
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
    cam_class = pgc.AblationCAM
    uses_gradients = False
    batch_size: int = 32

    def make_cam(self, model: nn.Module) -> BaseCAM:
        # A fresh AblationLayer per call: the library's default argument is one shared,
        # stateful module, unsafe across threads.
        return _low_res(self.cam_class)(
            model, [], ablation_layer=AblationLayer(), batch_size=self.batch_size
        )
