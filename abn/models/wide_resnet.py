"""WideResNet-28-k (pre-activation) for CIFAR-size inputs, split at the third group."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Backbone
from .registry import register_backbone


class WideBasic(nn.Module):
    """Pre-activation wide basic block (BN-ReLU-conv ×2, optional dropout)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.shortcut = (
            nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
            if inplanes != planes or stride != 1
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(pre)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        return out + (x if self.shortcut is None else self.shortcut(pre))


def _group(n: int, inplanes: int, planes: int, stride: int, drop: float) -> nn.Sequential:
    return nn.Sequential(
        *[
            WideBasic(inplanes if i == 0 else planes, planes, stride if i == 0 else 1, drop)
            for i in range(n)
        ]
    )


def _bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


def wide_resnet(depth: int = 28, widen_factor: int = 10, drop_rate: float = 0.0) -> Backbone:
    """Backbone: conv + groups 1–2 as g(x); group 3 is the split stage; BN-ReLU after it."""
    if (depth - 4) % 6:
        raise ValueError("WideResNet depth must be 6n+4")
    n = (depth - 4) // 6
    w = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
    return Backbone(
        feature_extractor=nn.Sequential(
            nn.Conv2d(3, w[0], 3, padding=1, bias=False),
            _group(n, w[0], w[1], 1, drop_rate),
            _group(n, w[1], w[2], 2, drop_rate),
        ),
        make_split_stage=lambda stride: _group(n, w[2], w[3], stride, drop_rate),
        split_stride=2,
        feature_channels=w[2],
        out_channels=w[3],
        make_tail=lambda: _bn_relu(w[3]),
    )


@register_backbone("wrn28_10", family="cifar", input_size=(32, 32), map_stride=2)
def wrn28_10(widen_factor: int = 10, drop_rate: float = 0.0) -> Backbone:
    """WideResNet-28-10 (set ``widen_factor`` for other k), split at group 3."""
    return wide_resnet(28, widen_factor, drop_rate)


@register_backbone("wrn28_4", family="cifar", input_size=(32, 32), map_stride=2)
def wrn28_4(widen_factor: int = 4, drop_rate: float = 0.0) -> Backbone:
    """WideResNet-28-4, split at group 3."""
    return wide_resnet(28, widen_factor, drop_rate)
