"""Intervention test for ABN: does the perception branch really use the attention map?

The model's own map M(x) is replaced by a uniform map (its mean value everywhere), the inverted
map 1 − M(x), or another image's map, and the change in the perception branch's output measured.
A model whose output ignores its map would show no change: then the map explains nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

INTERVENTIONS = ("uniform", "inverted", "shuffled")


def intervened_maps(attention: torch.Tensor, kind: str) -> torch.Tensor:
    """The replacement for a batch of maps B×1×h×w."""
    if kind == "uniform":
        return attention.mean(dim=(2, 3), keepdim=True).expand_as(attention).contiguous()
    if kind == "inverted":
        return 1.0 - attention
    if kind == "shuffled":
        return attention.roll(1, dims=0) if attention.shape[0] > 1 else attention.flip(-1, -2)
    raise ValueError(f"unknown intervention {kind!r}; choose from {', '.join(INTERVENTIONS)}")


@torch.no_grad()
def attention_intervention(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | None = None,
    kinds: tuple[str, ...] = INTERVENTIONS,
) -> dict[str, dict[str, torch.Tensor]]:
    """Per intervention and image: the target's probability ``drop`` (own − intervened), whether
    the prediction ``flipped``, and ``kl`` divergence KL(own ‖ intervened)."""
    if not getattr(model, "is_abn", False) or getattr(model, "is_multitask", False):
        raise ValueError("the intervention test needs a single-task ABN model")
    own = model(images)
    p_own = own.logits.float().softmax(-1)
    targets = p_own.argmax(-1) if targets is None else torch.as_tensor(targets).to(images.device)
    results = {}
    for kind in kinds:
        out = model(images, attention=intervened_maps(own.attention, kind))
        p = out.logits.float().softmax(-1)
        results[kind] = {
            "drop": (p_own.gather(1, targets.view(-1, 1)) - p.gather(1, targets.view(-1, 1)))
            .squeeze(1)
            .cpu(),
            "flipped": (p.argmax(-1) != p_own.argmax(-1)).float().cpu(),
            "kl": F.kl_div(p.clamp_min(1e-12).log(), p_own, reduction="none").sum(-1).cpu(),
        }
    return results
