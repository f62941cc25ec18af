"""Fixtures for the training tests: tiny configs over a few dozen real CIFAR-10 images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from abn.train import TrainConfig, load_config


@pytest.fixture
def tiny_config(data_root: Path, tmp_path: Path):
    """A factory of resnet20 configs over ``limit_train`` real CIFAR-10 JPEGs, quiet, in tmp."""

    def make(**overrides) -> TrainConfig:
        values = {
            "name": "tiny",
            "model": "resnet20",
            "variant": "abn",
            "data": "cifar10",
            "data_root": str(data_root),
            "limit_train": 64,
            "limit_test": 32,
            "epochs": 2,
            "batch_size": 32,
            "workers": 0,
            "out": str(tmp_path / "runs"),
            "quiet": True,
            **overrides,
        }
        from abn.train.config import _toml_value

        return load_config(None, [f"{k}={_toml_value(v)}" for k, v in values.items()])

    return make


@pytest.fixture
def one_thread():
    """Torch on one CPU thread for the test: as fast for tiny models, far faster on a busy box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
