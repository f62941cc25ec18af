"""L = L_att + L_per on values small enough to compute by hand."""

from __future__ import annotations

import math

import pytest
import torch

from abn.models import ModelOutput
from abn.train.loss import abn_loss

LN3 = math.log(3.0)


def test_abn_multiclass_is_sum_of_two_cross_entropies() -> None:
    out = ModelOutput(logits=torch.tensor([[0.0, 0.0]]), att_logits=torch.tensor([[LN3, 0.0]]))
    parts = abn_loss(out, torch.tensor([0]))
    assert parts.per.item() == pytest.approx(math.log(2))  # -log(1/2)
    assert parts.att.item() == pytest.approx(math.log(4 / 3))  # -log(3/4)
    assert parts.total.item() == pytest.approx(math.log(2) + math.log(4 / 3))


def test_plain_and_cam_use_only_the_perception_loss() -> None:
    out = ModelOutput(logits=torch.tensor([[LN3, 0.0], [0.0, 0.0]]))
    parts = abn_loss(out, torch.tensor([0, 1]))
    assert parts.att.item() == 0.0
    assert parts.total.item() == pytest.approx((math.log(4 / 3) + math.log(2)) / 2)


def test_multitask_abn_bce_on_attention_and_two_way_ce_on_perception() -> None:
    out = ModelOutput(
        logits=torch.tensor([[[0.0, LN3], [LN3, 0.0]]]),  # B×T×2
        att_logits=torch.tensor([[0.0, LN3]]),  # B×T
    )
    parts = abn_loss(out, torch.tensor([[1.0, 0.0]]))
    assert parts.per.item() == pytest.approx(math.log(4 / 3))  # both tasks p(correct) = 3/4
    # BCE: task 0 p=1/2 → log 2; task 1 p(1)=3/4 but label 0 → -log(1/4) = log 4
    assert parts.att.item() == pytest.approx((math.log(2) + math.log(4)) / 2)


def test_plain_multitask_bce() -> None:
    out = ModelOutput(logits=torch.tensor([[LN3, 0.0]]))
    parts = abn_loss(out, torch.tensor([[1.0, 0.0]]))
    assert parts.total.item() == pytest.approx((math.log(4 / 3) + math.log(2)) / 2)
    assert parts.att.item() == 0.0


def test_bf16_logits_are_reduced_in_float32() -> None:
    out = ModelOutput(logits=torch.zeros(4, 3, dtype=torch.bfloat16))
    assert abn_loss(out, torch.zeros(4, dtype=torch.long)).total.dtype == torch.float32
