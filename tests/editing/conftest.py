"""Tiny untrained ABN models for the editing tests (ResNet-20 at 32 px: 16×16 maps)."""

from __future__ import annotations

import pytest
import torch

import abn


@pytest.fixture(scope="package")
def single_task() -> torch.nn.Module:
    torch.manual_seed(0)
    return abn.create("resnet20", "abn", num_classes=10).eval()


@pytest.fixture(scope="package")
def multi_task() -> torch.nn.Module:
    torch.manual_seed(1)
    return abn.create("resnet20", "abn_multitask", num_classes=4).eval()


@pytest.fixture(scope="package")
def image() -> torch.Tensor:
    return torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
