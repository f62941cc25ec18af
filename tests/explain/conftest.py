"""Tiny models and inputs for the explanation tests."""

from __future__ import annotations

import pytest
import torch

import abn
from abn.card import ModelCard


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Tiny tensors: one intra-op thread avoids thread-pool wake-ups on a busy machine."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(name: str = "resnet20", variant: str = "abn", num_classes: int = 4, **kw):
    """An eval-mode model with random weights and non-trivial BatchNorm statistics."""
    model = abn.create(name, variant, num_classes=num_classes, **kw)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture
def images():
    return torch.randn(3, 3, 16, 16)


@pytest.fixture
def make_model():
    """The :func:`tiny` model factory."""
    return tiny


@pytest.fixture
def checkpoint(tmp_path, make_model):
    """A saved 3-class (cat/dog/bird) ResNet-20 ABN at 16 px with its card."""
    model = make_model("resnet20", "abn", num_classes=3)
    card = ModelCard(
        arch="resnet20",
        variant="abn",
        num_classes=3,
        class_names=["cat", "dog", "bird"],
        input_size=(16, 16),
    )
    return abn.save(model, tmp_path / "model.safetensors", card)
