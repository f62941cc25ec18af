"""ImageNet-style ResNet-18…152 and SE-ResNet on torchvision's blocks, split at layer 4.

The attention branch repeats layer 4 at stride 1, so at 224 px its maps are 14×14.
``stem="small"`` swaps the 7×7/2 convolution and max-pool for a 3×3/1 convolution, for small
inputs such as 64 px faces.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1
from torchvision.ops import SqueezeExcitation

from .backbone import Backbone
from .registry import register_backbone

Block = type[BasicBlock] | type[Bottleneck]


def make_stage(
    block: Block,
    inplanes: int,
    planes: int,
    blocks: int,
    stride: int = 1,
    groups: int = 1,
    base_width: int = 64,
) -> nn.Sequential:
    """A stage of ``blocks`` residual blocks; the first changes stride/width via a projection."""
    downsample = None
    out = planes * block.expansion
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(conv1x1(inplanes, out, stride), nn.BatchNorm2d(out))
    extra = {} if groups == 1 and base_width == 64 else {"groups": groups, "base_width": base_width}
    layers = [block(inplanes, planes, stride, downsample, **extra)]
    layers += [block(out, planes, **extra) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class SEBasicBlock(BasicBlock):
    """torchvision's BasicBlock with squeeze-and-excitation before the residual sum."""

    def __init__(self, inplanes: int, planes: int, *args, reduction: int = 16, **kwargs):
        super().__init__(inplanes, planes, *args, **kwargs)
        self.se = SqueezeExcitation(planes, max(planes // reduction, 1))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return self.relu(out + identity)


class SEBottleneck(Bottleneck):
    """torchvision's Bottleneck with squeeze-and-excitation before the residual sum."""

    def __init__(self, inplanes: int, planes: int, *args, reduction: int = 16, **kwargs):
        super().__init__(inplanes, planes, *args, **kwargs)
        out = planes * self.expansion
        self.se = SqueezeExcitation(out, max(out // reduction, 1))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.relu(out + identity)


def _stem(kind: str) -> nn.Sequential:
    if kind == "imagenet":
        return nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
    if kind == "small":
        return nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )
    raise ValueError(f"unknown stem {kind!r}; choose 'imagenet' or 'small'")


def imagenet_resnet(block: Block, layers: tuple[int, int, int, int], stem: str = "imagenet"):
    """Backbone: stem + layers 1–3 as g(x); layer 4 is the split stage."""
    widths = (64, 128, 256, 512)
    exp = block.expansion
    stages, inplanes = [], 64
    for planes, n, stride in zip(widths[:3], layers[:3], (1, 2, 2), strict=True):
        stages.append(make_stage(block, inplanes, planes, n, stride))
        inplanes = planes * exp
    return Backbone(
        feature_extractor=nn.Sequential(_stem(stem), *stages),
        make_split_stage=lambda stride: make_stage(block, 256 * exp, 512, layers[3], stride),
        split_stride=2,
        feature_channels=256 * exp,
        out_channels=512 * exp,
    )


_DEPTHS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
_SE = {BasicBlock: SEBasicBlock, Bottleneck: SEBottleneck}


def _register(depth: int) -> None:
    block, layers = _DEPTHS[depth]

    @register_backbone(f"resnet{depth}", family="imagenet", input_size=(224, 224), map_stride=16)
    def _plain(stem: str = "imagenet") -> Backbone:
        return imagenet_resnet(block, layers, stem)

    @register_backbone(f"se_resnet{depth}", family="imagenet", input_size=(224, 224), map_stride=16)
    def _se(stem: str = "imagenet") -> Backbone:
        return imagenet_resnet(_SE[block], layers, stem)

    _plain.__doc__ = f"ResNet-{depth} (torchvision blocks), split at layer 4."
    _se.__doc__ = f"SE-ResNet-{depth} (torchvision blocks + SE), split at layer 4."


for _depth in _DEPTHS:
    _register(_depth)
