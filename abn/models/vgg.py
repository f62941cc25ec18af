"""VGG16-BN (torchvision's layers) with the split after conv5_3.

g(x) is VGG's convolutional part without its last max-pool (14×14 at 224 px). In the attention
branch, the fully connected layers become convolutions (Fig. 2b): two 3×3 conv-BN-ReLU layers
on the 14×14 map. The perception branch is the last max-pool and VGG's classifier. The CAM baseline follows
Zhou et al. for VGG: no pool5 and no FC layers, a 3×3 conv with 1024 units on conv5_3.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from .backbone import Backbone
from .registry import register_backbone


def _fc_as_conv(channels: int = 512) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
    )


def _cam_body(channels: int = 512, width: int = 1024) -> tuple[nn.Sequential, int]:
    """CAM on VGG (Zhou et al., Sec. 2): pool5 and the FC layers removed, a 3×3 conv with 1024
    units on conv5_3 (14×14 at 224 px); conv-BN-ReLU as everywhere in VGG16-BN."""
    body = nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
    )
    return body, width


def _classifier(channels: int, num_outputs: int, hidden: int = 4096) -> nn.Sequential:
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(7),
        nn.Flatten(1),
        nn.Linear(channels * 49, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, num_outputs),
    )


@register_backbone("vgg16_bn", family="imagenet", input_size=(224, 224), map_stride=16)
def vgg16_bn(hidden: int = 4096) -> Backbone:
    """VGG16-BN, split after conv5_3; FC layers as convolutions in the attention branch."""
    features = make_layers(cfgs["D"], batch_norm=True)
    return Backbone(
        feature_extractor=nn.Sequential(*list(features)[:-1]),
        make_split_stage=lambda stride: nn.MaxPool2d(2, 2) if stride > 1 else nn.Identity(),
        split_stride=2,
        feature_channels=512,
        out_channels=512,
        make_head=lambda c, k: _classifier(c, k, hidden),
        make_attention_stage_fn=_fc_as_conv,
        make_cam_body_fn=_cam_body,
    )
