"""Input attributions through Captum: Integrated Gradients and Occlusion.

Captum does the work; each method only says which Captum class to build and with which
arguments. Both attribute the target's logit (the ``scores`` of the explanation; multi-task ABN:
the attribute's "present" logit) at the input's resolution against a baseline of 0 in the
model's normalised input, i.e. the dataset's mean colour. The map is the attribution summed over
the colour channels, **positive part** (evidence for the target; pixels that speak against it
are 0), then min-max scaled like every other map. Captum is imported on first use.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .backends import ON_REPLICA
from .base import Explainer, register_method
from .core import LazyClass, captum_library, class_scores
from .progress import step


class CaptumMethod(Explainer):
    """A Captum attribution of the target's logit, summed over channels, positive part."""

    post_hoc = True
    slow = True
    backend = ON_REPLICA
    #: Captum's class (a :class:`~abn.explain.core.LazyClass`).
    captum_class: ClassVar[type]
    #: how many model inputs one forward pass may take (bounds memory).
    batch_size: int = 64
    #: forward-pass equivalents per model input (a backward pass counts as two).
    passes_per_input: ClassVar[float] = 1.0

    def attribute(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        def forward(x: torch.Tensor) -> torch.Tensor:
            scores = class_scores(model(x))
            step(len(x) * self.passes_per_input)
            return scores

        method = self.captum_class(forward)
        return self.run_captum(method, images, targets).sum(1).clamp_min(0)

    def run_captum(self, method, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Captum's B×C×H×W attribution of ``targets``."""
        raise NotImplementedError


@register_method
class IntegratedGradientsExplainer(CaptumMethod):
    """Integrated Gradients (Sundararajan et al. 2017) through Captum, ``steps`` Gauss-Legendre
    points on the straight path from the mean-colour image."""

    name = "integrated-gradients"
    aliases = ("ig",)
    title = "Integrated Gradients"
    short = "IG"
    description = (
        "Gradients of the class score summed along a path from a mean-colour image to the "
        "image (Sundararajan et al.)."
    )
    captum_class = LazyClass(captum_library, "IntegratedGradients")
    steps: int = 32
    passes_per_input = 3.0

    def forward_passes(self, size: tuple[int, int]) -> float:
        """A forward and a backward pass per step of the path."""
        return self.steps * self.passes_per_input

    def run_captum(self, method, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            return method.attribute(
                images,
                baselines=0.0,
                target=targets,
                n_steps=self.steps,
                internal_batch_size=max(self.batch_size, len(images)),
            )


@register_method
class OcclusionExplainer(CaptumMethod):
    """Occlusion (Zeiler & Fergus 2014) through Captum: a square patch of the mean colour slid
    over the image; a pixel's value is the mean drop of the target's logit over the patches that
    cover it. The patch is ``window`` of the image's shorter side, moved by half a patch."""

    name = "occlusion"
    title = "Occlusion"
    short = "Occl"
    description = (
        "How much the class score drops when a grey patch hides each part of the image "
        "(Zeiler & Fergus)."
    )
    captum_class = LazyClass(captum_library, "Occlusion")
    window: float = 1 / 8

    def forward_passes(self, size: tuple[int, int]) -> float:
        """One pass per patch position, and one of the image itself."""
        side, stride = self.patch(size)
        rows = (size[0] - side) // stride + 1
        cols = (size[1] - side) // stride + 1
        return float(rows * cols + 1)

    def patch(self, size: tuple[int, int]) -> tuple[int, int]:
        """(side, stride) of the patch for an image of ``size``."""
        side = max(1, round(min(size) * self.window))
        return side, max(1, side // 2)

    def run_captum(self, method, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        channels, h, w = images.shape[1:]
        side, stride = self.patch((h, w))
        with torch.no_grad():
            return method.attribute(
                images,
                sliding_window_shapes=(channels, side, side),
                strides=(channels, stride, stride),
                baselines=0.0,
                target=targets,
                perturbations_per_eval=max(1, self.batch_size // len(images)),
            )
