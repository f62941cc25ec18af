"""The maps a model computes itself: ABN's attention, its class-specific response, and CAM.

Each is a thin :class:`~abn.explain.base.Explainer` subclass that reads its map from the shared
forward pass (the default ``READ_FORWARD`` backend): no hooks, no gradients, no second pass.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Explainer, register_method
from .core import ForwardPass, pick


@register_method
class AbnExplainer(Explainer):
    """ABN's attention map M(x) from the forward pass itself: no gradients, no second pass.

    Multi-task ABN: the target attribute's map. The map keeps its values (already in [0, 1]).
    """

    name = "abn"
    title = "ABN attention"
    short = "ABN att"
    description = "The attention map the ABN model computes and applies in its own forward pass."
    normalize = False
    class_agnostic = True  # M(x) (multi-task ABN: the target attribute's map)

    @classmethod
    def unsupported(cls, model: nn.Module) -> str | None:
        return None if model.is_abn else "it has no attention branch (not an ABN model)"

    def raw_maps(self, batch: ForwardPass) -> torch.Tensor:
        attention = batch.output.attention
        if attention.shape[1] == 1:
            return attention[:, 0]
        return pick(attention, batch.targets)


@register_method
class AbnClassExplainer(Explainer):
    """ABN's class-specific map: the attention branch's K-channel response (CAM-style)."""

    name = "abn-class"
    title = "ABN class map"
    short = "ABN cls"
    description = "The attention branch's response for the explained class (CAM-style)."

    @classmethod
    def unsupported(cls, model: nn.Module) -> str | None:
        if not model.is_abn or model.is_multitask:
            return "only single-task ABN models have class-specific attention responses"
        return None

    def raw_maps(self, batch: ForwardPass) -> torch.Tensor:
        return pick(batch.output.class_maps, batch.targets)


@register_method
class CamExplainer(Explainer):
    """Class activation map of a CAM-variant model (K×1×1 conv before GAP, Zhou et al.)."""

    name = "cam"
    title = "CAM"
    short = "CAM"
    description = "A CAM model's class activation map: its classifier applied at every position."

    @classmethod
    def unsupported(cls, model: nn.Module) -> str | None:
        spec = getattr(model, "spec", None)
        return None if spec is not None and spec.variant == "cam" else "it is not a CAM model"

    def raw_maps(self, batch: ForwardPass) -> torch.Tensor:
        return pick(batch.output.class_maps, batch.targets)
