"""``compile = true``: the training step runs through torch.compile (TorchDynamo), the bare
module is what gets saved, and a resumed compiled run goes on from its checkpoint."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from abn.checkpoint import read_card
from abn.train import load_config, resolve_resume, train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_compiled_run_trains_saves_and_resumes(tiny_config, monkeypatch) -> None:
    real, compiled = torch.compile, []

    def eager_compile(model, **kwargs):  # Dynamo's tracing, without a C++ toolchain
        compiled.append(model)
        return real(model, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", eager_compile)
    cfg = tiny_config(name="compiled", compile=True, limit_train=16, limit_test=8, batch_size=8)
    result = train(cfg)
    assert len(compiled) == 1 and result.epochs[-1].images == 16
    weights = load_file(result.final)
    assert weights and not any(k.startswith("_orig_mod") for k in weights)  # the bare module
    assert read_card(result.final).recipe["compile"] is True
    longer = load_config(result.run_dir / "config.toml", ["epochs=3"])
    again = train(longer, resume=resolve_resume(result.run_dir))
    assert len(compiled) == 2 and read_card(again.final).training["epochs"] == 3
