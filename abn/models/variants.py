"""The variants every backbone comes in: ABN, plain baseline, CAM, and their multi-task forms.

All share the names ``feature_extractor`` and ``perception_branch`` (``perception_branch.body``
is the default Grad-CAM target layer); ABN models add ``attention_branch``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .backbone import Backbone, GapLinear, init_weights
from .branches import (
    AttentionBranch,
    CamHead,
    MultiTaskAttentionBranch,
    MultiTaskHead,
    PerceptionBranch,
    apply_attention,
    resolve_mechanism,
)
from .output import ModelOutput


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model with :func:`abn.models.create`."""

    name: str
    variant: str
    num_classes: int
    kwargs: dict = field(default_factory=dict)


class ModelBase(nn.Module):
    """What every variant shares: the spec that rebuilds it, and the default Grad-CAM layer."""

    spec: ModelSpec
    is_abn: bool = False
    is_multitask: bool = False

    def default_target_layer(self) -> nn.Module:
        """The layer the Grad-CAM family explains by default: the perception branch's body, or
        the branch's input where that body holds no convolutions (VGG: only pool5, whose 7×7
        output is coarser than conv5_3's 14×14, the layer Grad-CAM uses for VGG): g'(x) in
        ABN, after the attention map is applied, and g(x) in the other variants."""
        branch = self.perception_branch
        if any(isinstance(m, nn.Conv2d) for m in branch.body.modules()):
            return branch.body
        return branch.entry

    @property
    def num_outputs(self) -> int:
        return self.spec.num_classes


def _check_override(attention: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    if attention.shape[-2:] != reference.shape[-2:] or attention.shape[0] not in (
        1,
        reference.shape[0],
    ):
        raise ValueError(
            f"attention override of shape {tuple(attention.shape)} does not fit the model's "
            f"map of shape {tuple(reference.shape)}"
        )
    return attention.to(reference.dtype)


class ABN(ModelBase):
    """Attention Branch Network: g(x) → attention branch → M(x); perception on g'(x)."""

    is_abn = True

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        mechanism: str = "residual",
        map_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.mechanism = resolve_mechanism(mechanism)
        self.feature_extractor = backbone.feature_extractor
        self.attention_branch = AttentionBranch(
            backbone.make_attention_stage(), backbone.out_channels, num_classes, map_kernel
        )
        self.perception_branch = PerceptionBranch(
            backbone.perception_body(), backbone.head(num_classes)
        )
        init_weights(self)

    def forward(self, x: torch.Tensor, attention: torch.Tensor | None = None) -> ModelOutput:
        """Run all three modules; ``attention`` replaces M(x) (interventions, Eq. tests)."""
        g = self.feature_extractor(x)
        att_logits, m, class_maps = self.attention_branch(g)
        if attention is not None:
            m = _check_override(attention, m)
        attended = apply_attention(g, m, self.mechanism)
        return ModelOutput(
            logits=self.perception_branch(attended),
            att_logits=att_logits,
            attention=m,
            class_maps=class_maps,
            features=g,
            attended_features=attended,
        )


class Plain(ModelBase):
    """The baseline network: the same backbone with GAP + FC (or its own classifier)."""

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        self.feature_extractor = backbone.feature_extractor
        self.perception_branch = PerceptionBranch(
            backbone.perception_body(), backbone.head(num_classes)
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        g = self.feature_extractor(x)
        return ModelOutput(logits=self.perception_branch(g), features=g)


CAM_STRUCTURES = ("paper", "native")


class CAM(ModelBase):
    """CAM baseline (Zhou et al.): K×1×1 conv + GAP, no FC; its K maps are the CAMs.

    ``structure="paper"`` (the default) builds it as the ABN paper does (Sec. 4.2): the last
    stage's first convolution at stride 1, so the CAMs have the attention map's resolution
    (VGG: Zhou et al.'s 3×3 conv with 1024 units on conv5_3). ``"native"`` keeps the last stage's
    own stride (maps half as fine): the structure of checkpoints written before card version 2.
    """

    def __init__(self, backbone: Backbone, num_classes: int, structure: str = "paper") -> None:
        super().__init__()
        if structure not in CAM_STRUCTURES:
            raise ValueError(
                f"unknown CAM structure {structure!r}; choose one of {', '.join(CAM_STRUCTURES)}"
            )
        self.structure = structure
        self.feature_extractor = backbone.feature_extractor
        if structure == "paper":
            body, channels = backbone.cam_body()
        else:
            body, channels = backbone.perception_body(), backbone.out_channels
        self.perception_branch = PerceptionBranch(body, CamHead(channels, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        g = self.feature_extractor(x)
        maps = self.perception_branch.head.conv(self.perception_branch.features(g))
        return ModelOutput(logits=maps.mean(dim=(2, 3)), class_maps=maps, features=g)


class MultiTaskABN(ModelBase):
    """Multi-task ABN (Sec. 3.4): T attention maps; the perception branch runs once per task.

    All T perception passes run as one batched pass over B·T inputs, ``chunk_size`` inputs at a
    time to bound memory. ``logits`` is B×T×2 (2-way output per task), ``att_logits`` B×T.
    """

    is_abn = True
    is_multitask = True

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        mechanism: str = "multiply",
        chunk_size: int = 0,
    ) -> None:
        super().__init__()
        self.mechanism = resolve_mechanism(mechanism)
        self.chunk_size = chunk_size
        self.feature_extractor = backbone.feature_extractor
        self.attention_branch = MultiTaskAttentionBranch(
            backbone.make_attention_stage(), backbone.out_channels, num_classes
        )
        self.perception_branch = PerceptionBranch(
            backbone.perception_body(), MultiTaskHead(backbone.out_channels, num_classes)
        )
        init_weights(self)
        nn.init.normal_(self.perception_branch.head.weight, std=0.01)

    def forward(
        self,
        x: torch.Tensor,
        attention: torch.Tensor | None = None,
        tasks: torch.Tensor | list[int] | None = None,
    ) -> ModelOutput:
        """``tasks`` restricts the perception passes (and ``logits``) to those task indices."""
        g = self.feature_extractor(x)
        att_logits, maps = self.attention_branch(g)
        if attention is not None:
            maps = _check_override(attention, maps)
        index = None
        if tasks is not None:
            index = torch.as_tensor(tasks, device=g.device, dtype=torch.long).flatten()
            maps_used = maps.index_select(1, index)
        else:
            maps_used = maps
        attended = apply_attention(g.unsqueeze(1), maps_used.unsqueeze(2), self.mechanism)
        feats = self._perceive(attended.flatten(0, 1))
        logits = self.perception_branch.head(feats, index)
        return ModelOutput(logits=logits, att_logits=att_logits, attention=maps, features=g)

    def _perceive(self, flat: torch.Tensor) -> torch.Tensor:
        features = self.perception_branch.features
        if self.chunk_size <= 0 or flat.shape[0] <= self.chunk_size:
            return features(flat)
        return torch.cat([features(part) for part in flat.split(self.chunk_size)])

    def perceive_looped(self, x: torch.Tensor) -> torch.Tensor:
        """Reference implementation: one perception pass per task in a Python loop (B×T×2)."""
        g = self.feature_extractor(x)
        _, maps = self.attention_branch(g)
        head = self.perception_branch.head
        outs = []
        for t in range(maps.shape[1]):
            feats = self.perception_branch.features(
                apply_attention(g, maps[:, t : t + 1], self.mechanism)
            )
            pooled = feats.mean(dim=(2, 3))
            outs.append(pooled @ head.weight[t].T + head.bias[t])
        return torch.stack(outs, dim=1)


class MultiTaskPlain(ModelBase):
    """Plain multi-task baseline: shared backbone, T outputs (one logit each, BCE)."""

    is_multitask = True

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        self.feature_extractor = backbone.feature_extractor
        self.perception_branch = PerceptionBranch(
            backbone.perception_body(), GapLinear(backbone.out_channels, num_classes)
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        g = self.feature_extractor(x)
        return ModelOutput(logits=self.perception_branch(g), features=g)


VARIANTS: dict[str, type[ModelBase]] = {
    "abn": ABN,
    "plain": Plain,
    "cam": CAM,
    "abn_multitask": MultiTaskABN,
    "plain_multitask": MultiTaskPlain,
}
VARIANT_KWARGS: dict[str, tuple[str, ...]] = {
    "abn": ("mechanism", "map_kernel"),
    "plain": (),
    "cam": ("structure",),
    "abn_multitask": ("mechanism", "chunk_size"),
    "plain_multitask": (),
}


def attribute_probabilities(output: ModelOutput) -> torch.Tensor:
    """P(attribute present), B×T, for either multi-task variant's output."""
    logits = output.logits
    if logits.dim() == 3:
        return logits.softmax(dim=-1)[..., 1]
    return torch.sigmoid(logits)
