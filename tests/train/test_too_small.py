"""A training split smaller than one batch is refused with the reason, not trained for 0 steps."""

from __future__ import annotations

import pytest

from abn.train import train


def test_fewer_images_than_one_batch_is_refused_before_training(tiny_config) -> None:
    cfg = tiny_config(name="small", limit_train=16, batch_size=32)
    with pytest.raises(ValueError, match="has 16 training images, fewer than one batch of 32"):
        train(cfg)
    assert not (cfg.run_dir() / "last.state.pt").exists()


def test_one_full_batch_is_enough(tiny_config) -> None:
    result = train(tiny_config(name="one", limit_train=32, batch_size=32, epochs=1))
    assert result.epochs[0].images == 32
