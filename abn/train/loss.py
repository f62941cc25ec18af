"""The ABN training loss L = L_att + L_per (Eq. 3 of the paper), for every variant.

=========================  ===========================  ==================================
variant                    L_att                        L_per
=========================  ===========================  ==================================
abn                        CE(att_logits B×K, y)        CE(logits B×K, y)
plain, cam                 —                            CE(logits B×K, y)
abn_multitask              BCE-with-logits(B×T, y)      CE over the B·T two-way outputs
plain_multitask            —                            BCE-with-logits(logits B×T, y)
=========================  ===========================  ==================================
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from abn.models import ModelOutput


@dataclass
class LossParts:
    """The total loss to back-propagate and its two terms (``att`` is 0 without a branch)."""

    total: torch.Tensor
    att: torch.Tensor
    per: torch.Tensor


def perception_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_per: CE for B×K logits and class indices; two-way CE for B×T×2; BCE for B×T labels."""
    logits = logits.float()
    if logits.dim() == 3:  # multi-task ABN: B×T×2 against {0, 1} labels
        return F.cross_entropy(logits.reshape(-1, 2), target.reshape(-1).long())
    if target.dim() == 2:  # plain multi-task: B×T
        return F.binary_cross_entropy_with_logits(logits, target.float())
    return F.cross_entropy(logits, target)


def attention_loss(att_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_att: CE on the attention branch's B×K logits, BCE on B×T for multi-label targets."""
    att_logits = att_logits.float()
    if target.dim() == 2:
        return F.binary_cross_entropy_with_logits(att_logits, target.float())
    return F.cross_entropy(att_logits, target)


def abn_loss(output: ModelOutput, target: torch.Tensor) -> LossParts:
    """L = L_att + L_per; only L_per when the model has no attention branch."""
    per = perception_loss(output.logits, target)
    if output.att_logits is None:
        return LossParts(per, torch.zeros_like(per), per)
    att = attention_loss(output.att_logits, target)
    return LossParts(att + per, att, per)
