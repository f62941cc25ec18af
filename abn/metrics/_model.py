"""Probabilities from any model in the zoo, in batches, without gradients."""

from __future__ import annotations

import torch
from torch import nn

from abn.models import ModelOutput


def logits_of(output: ModelOutput | torch.Tensor) -> torch.Tensor:
    """The final (perception-branch) logits of a forward pass."""
    return output.logits if isinstance(output, ModelOutput) else output


@torch.no_grad()
def probabilities(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Softmax class probabilities, computed ``batch_size`` images at a time."""
    parts = [logits_of(model(chunk)).float().softmax(dim=-1) for chunk in images.split(batch_size)]
    return torch.cat(parts)


def target_probability(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch_size: int = 256
) -> torch.Tensor:
    """P(target | image) for each image."""
    probs = probabilities(model, images, batch_size)
    return probs.gather(1, targets.view(-1, 1).to(probs.device)).squeeze(1)
