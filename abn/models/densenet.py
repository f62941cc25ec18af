"""DenseNet-BC for CIFAR-size inputs on torchvision's dense layers, split at dense block 3.

Dense block 3 has no stride (down-sampling happens in transitions), so its attention-branch
copy equals the perception one in shape: 8×8 maps at 32 px, as in the reference code.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.densenet import _DenseBlock, _Transition

from .backbone import Backbone
from .registry import register_backbone
from .wide_resnet import _bn_relu


def densenet_bc(depth: int = 100, growth_rate: int = 12, compression: float = 0.5) -> Backbone:
    """Backbone: conv + (dense, transition) ×2 as g(x); dense block 3 is the split stage."""
    if (depth - 4) % 6:
        raise ValueError("DenseNet-BC depth must be 6n+4")
    n = (depth - 4) // 6
    channels = 2 * growth_rate
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1, bias=False)]
    for _ in range(2):
        layers.append(_DenseBlock(n, channels, bn_size=4, growth_rate=growth_rate, drop_rate=0))
        channels += n * growth_rate
        out = int(channels * compression)
        layers.append(_Transition(channels, out))
        channels = out
    in_channels, out_channels = channels, channels + n * growth_rate

    def split_stage(stride: int) -> nn.Module:
        del stride  # dense blocks keep their resolution
        return _DenseBlock(n, in_channels, bn_size=4, growth_rate=growth_rate, drop_rate=0)

    return Backbone(
        feature_extractor=nn.Sequential(*layers),
        make_split_stage=split_stage,
        split_stride=1,
        feature_channels=in_channels,
        out_channels=out_channels,
        make_tail=lambda: _bn_relu(out_channels),
    )


@register_backbone("densenet_bc100_12", family="cifar", input_size=(32, 32), map_stride=4)
def densenet_bc100_12(growth_rate: int = 12) -> Backbone:
    """DenseNet-BC (depth 100, growth 12), split at dense block 3."""
    return densenet_bc(100, growth_rate)
