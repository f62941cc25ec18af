"""CIFAR-size ResNet (depth 6n+2) and ResNeXt-29, split at the third stage.

Following the reference implementation: a 3×3 stem, three stages of n blocks (basic blocks
below depth 44, bottlenecks from 44), the third stage re-run at stride 1 in the attention branch
(16×16 maps at 32 px). ResNeXt-29 uses torchvision's grouped bottleneck (cardinality 8,
widen factor 4: stage outputs 256/512/1024).
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from .backbone import Backbone
from .registry import register_backbone
from .resnet import Block, make_stage


def cifar_resnet(
    block: Block,
    blocks: int,
    widths: tuple[int, int, int],
    stem_width: int,
    groups: int = 1,
    base_width: int = 64,
) -> Backbone:
    """Backbone: stem + stages 1–2 as g(x); stage 3 is the split stage."""
    exp = block.expansion
    kw = {"groups": groups, "base_width": base_width}
    s1 = make_stage(block, stem_width, widths[0], blocks, 1, **kw)
    s2 = make_stage(block, widths[0] * exp, widths[1], blocks, 2, **kw)
    stem = nn.Sequential(
        nn.Conv2d(3, stem_width, 3, padding=1, bias=False),
        nn.BatchNorm2d(stem_width),
        nn.ReLU(inplace=True),
    )
    return Backbone(
        feature_extractor=nn.Sequential(stem, s1, s2),
        make_split_stage=lambda stride: make_stage(
            block, widths[1] * exp, widths[2], blocks, stride, **kw
        ),
        split_stride=2,
        feature_channels=widths[1] * exp,
        out_channels=widths[2] * exp,
    )


def _register_resnet(depth: int) -> None:
    if (depth - 2) % 6:
        raise ValueError("CIFAR ResNet depth must be 6n+2")
    n = (depth - 2) // 6
    block = Bottleneck if depth >= 44 else BasicBlock

    @register_backbone(f"resnet{depth}", family="cifar", input_size=(32, 32), map_stride=2)
    def _build() -> Backbone:
        return cifar_resnet(block, n, (16, 32, 64), stem_width=16)

    _build.__doc__ = f"CIFAR ResNet-{depth} ({block.__name__}, {n} per stage), split at stage 3."


for _depth in (20, 32, 44, 56, 110):
    _register_resnet(_depth)


@register_backbone("resnext29_8x64d", family="cifar", input_size=(32, 32), map_stride=2)
def resnext29_8x64d(cardinality: int = 8, widen_factor: int = 4) -> Backbone:
    """ResNeXt-29 (8×64d) for CIFAR, split at stage 3."""
    widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
    return cifar_resnet(Bottleneck, 3, widths, stem_width=64, groups=cardinality, base_width=64)
