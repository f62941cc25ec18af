"""How a backbone is cut into the three modules of an ABN.

A :class:`Backbone` describes a network as ``g(x)`` (the feature extractor), a *split stage*
that the perception branch runs at its native stride and the attention branch re-runs at
stride 1, and the rest (``tail``) that follows the split stage in the perception branch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

HeadFactory = Callable[[int, int], nn.Module]


@dataclass
class Backbone:
    """The parts every variant (ABN, plain, CAM, multi-task) is assembled from.

    Attributes:
        feature_extractor: ``g(x)``, everything before the split stage.
        make_split_stage: builds a fresh split stage for a given stride.
        split_stride: the stride the perception branch uses (the attention branch uses 1).
        feature_channels: channels of ``g(x)``.
        out_channels: channels after the split stage (and ``tail``).
        make_tail: builds what follows the split stage in the perception branch
            (e.g. the final BN-ReLU of pre-activation networks); identity by default.
        make_head: builds the perception classifier from (channels, outputs); GAP + FC by
            default. VGG uses its fully connected classifier here.
        make_attention_stage_fn: overrides the attention branch's stage (VGG: convolutions in
            place of the fully connected layers).
        make_cam_body_fn: overrides the CAM baseline's body and gives its output channels
            (VGG: Zhou et al.'s 3×3 conv with 1024 units on conv5_3 in place of pool5 and FCs).
    """

    feature_extractor: nn.Module
    make_split_stage: Callable[[int], nn.Module]
    split_stride: int
    feature_channels: int
    out_channels: int
    make_tail: Callable[[], nn.Module] = nn.Identity
    make_head: HeadFactory | None = None
    make_attention_stage_fn: Callable[[], nn.Module] | None = None
    make_cam_body_fn: Callable[[], tuple[nn.Module, int]] | None = None

    def make_attention_stage(self) -> nn.Module:
        """The attention branch's first module: the split stage again at stride 1 by default."""
        if self.make_attention_stage_fn is not None:
            return self.make_attention_stage_fn()
        return self.make_split_stage(1)

    def perception_body(self) -> nn.Sequential:
        """The split stage at its native stride followed by the tail."""
        return nn.Sequential(self.make_split_stage(self.split_stride), self.make_tail())

    def cam_body(self) -> tuple[nn.Module, int]:
        """The CAM baseline's body as the paper builds it (Sec. 4.2) and its output channels.

        The split stage runs at stride 1 (its first convolution's stride set to 1), so CAM's
        maps have the attention map's resolution (16×16 on CIFAR at 32 px, 14×14 at 224 px).
        """
        if self.make_cam_body_fn is not None:
            return self.make_cam_body_fn()
        return nn.Sequential(self.make_split_stage(1), self.make_tail()), self.out_channels

    def head(self, num_outputs: int) -> nn.Module:
        """The perception classifier."""
        if self.make_head is not None:
            return self.make_head(self.out_channels, num_outputs)
        return GapLinear(self.out_channels, num_outputs)


class GapLinear(nn.Module):
    """Global average pooling then a fully connected layer."""

    def __init__(self, in_channels: int, num_outputs: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_outputs)

    def forward(self, x):
        return self.fc(self.pool(x).flatten(1))


def init_weights(module: nn.Module) -> None:
    """He (fan-out) init for convolutions, unit BN, zero biases: the reference code's init."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
