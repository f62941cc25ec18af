"""The attention and perception branches of an ABN, and the heads they end in."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Mechanism = Literal["residual", "multiply"]
MECHANISMS: dict[str, Mechanism] = {
    "residual": "residual",
    "eq2": "residual",
    "multiply": "multiply",
    "eq1": "multiply",
}


def resolve_mechanism(name: str) -> Mechanism:
    """Map a user-facing name (``residual``/``eq2`` or ``multiply``/``eq1``) to a mechanism."""
    try:
        return MECHANISMS[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown attention mechanism {name!r}; choose one of {sorted(MECHANISMS)}"
        ) from None


def apply_attention(features: torch.Tensor, attention: torch.Tensor, mechanism: Mechanism):
    """g'(x) = (1 + M(x))·g(x) (Eq. 2, ``residual``) or M(x)·g(x) (Eq. 1, ``multiply``)."""
    if mechanism == "residual":
        return features * (1.0 + attention)
    return features * attention


class AttentionBranch(nn.Module):
    """CAM-like trainable attention branch (Fig. 2 of the paper).

    The split stage re-run at stride 1, BN, a K×1×1 conv, BN and ReLU; the class scores are the
    GAP of a further K×1×1 conv, and the attention map is sigmoid(BN(conv K→1)).
    """

    def __init__(
        self, stage: nn.Module, channels: int, num_classes: int, map_kernel: int = 3
    ) -> None:
        super().__init__()
        if map_kernel < 1 or map_kernel % 2 == 0:
            raise ValueError(f"map_kernel must be a positive odd number, got {map_kernel}")
        self.stage = stage
        self.bn = nn.BatchNorm2d(channels)
        self.conv = nn.Conv2d(channels, num_classes, kernel_size=1, bias=False)
        self.bn_conv = nn.BatchNorm2d(num_classes)
        self.relu = nn.ReLU(inplace=True)
        self.class_conv = nn.Conv2d(num_classes, num_classes, kernel_size=1, bias=False)
        self.map_conv = nn.Conv2d(
            num_classes, 1, kernel_size=map_kernel, padding=map_kernel // 2, bias=False
        )
        self.bn_map = nn.BatchNorm2d(1)

    def forward(self, features: torch.Tensor):
        """Return ``(att_logits B×K, attention B×1×h×w, class_maps B×K×h×w)``."""
        x = self.relu(self.bn_conv(self.conv(self.bn(self.stage(features)))))
        attention = torch.sigmoid(self.bn_map(self.map_conv(x)))
        class_maps = self.class_conv(x)
        return class_maps.mean(dim=(2, 3)), attention, class_maps


class MultiTaskAttentionBranch(nn.Module):
    """Attention branch for T tasks (Sec. 3.4): a T×1×1 conv gives one map per task.

    GAP of each map is that task's attention-branch logit (sigmoid + BCE in training); the maps
    after a sigmoid are the attention maps M^t(x).
    """

    def __init__(self, stage: nn.Module, channels: int, num_tasks: int) -> None:
        super().__init__()
        self.stage = stage
        self.bn = nn.BatchNorm2d(channels)
        self.conv = nn.Conv2d(channels, num_tasks, kernel_size=1, bias=False)
        self.bn_conv = nn.BatchNorm2d(num_tasks)

    def forward(self, features: torch.Tensor):
        """Return ``(att_logits B×T, attention B×T×h×w)``."""
        maps = self.bn_conv(self.conv(self.bn(self.stage(features))))
        return maps.mean(dim=(2, 3)), torch.sigmoid(maps)


class PerceptionBranch(nn.Module):
    """The rest of the backbone (``body``) and its classifier (``head``).

    ``entry`` (an identity) marks the branch's input, g'(x) in ABN and g(x) otherwise, as a
    module that hooks can reach (the Grad-CAM layer where ``body`` has no convolutions).
    """

    def __init__(self, body: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.entry = nn.Identity()
        self.body = body
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The body's output for the branch's input ``x`` (before the classifier)."""
        return self.body(self.entry(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class CamHead(nn.Module):
    """K×1×1 conv and GAP, no fully connected layer: its K maps are the CAMs."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


class MultiTaskHead(nn.Module):
    """GAP, then one 2-way linear classifier per task, applied to that task's features.

    Input is (B·T)×C×h×w ordered batch-major; output is B×T×2.
    """

    def __init__(self, in_channels: int, num_tasks: int, num_outputs: int = 2) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.weight = nn.Parameter(torch.empty(num_tasks, num_outputs, in_channels))
        self.bias = nn.Parameter(torch.zeros(num_tasks, num_outputs))
        nn.init.normal_(self.weight, std=0.01)

    def forward(self, x: torch.Tensor, tasks: torch.Tensor | None = None) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3))
        weight, bias = self.weight, self.bias
        if tasks is not None:
            weight, bias = weight[tasks], bias[tasks]
        pooled = pooled.view(-1, weight.shape[0], pooled.shape[-1])
        return torch.einsum("btc,tkc->btk", pooled, weight) + bias
