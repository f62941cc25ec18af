"""channels_last: "auto" picks channels-last where it is faster (CUDA; CPU in fp32), and training
in it learns what NCHW training learns, up to float rounding."""

from __future__ import annotations

import pytest
import torch

from abn.models import create
from abn.precision import use_channels_last
from abn.train import run
from abn.train.loss import abn_loss

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


@pytest.mark.parametrize(
    ("setting", "device", "precision", "expected"),
    [
        ("auto", CUDA, "bf16", True),
        ("auto", CUDA, "fp32", True),
        ("auto", CPU, "fp32", True),
        ("auto", CPU, "bf16", False),  # not measured on a CPU with native bf16: NCHW as before
        ("true", CPU, "bf16", True),
        ("false", CUDA, "bf16", False),
        ("false", CPU, "fp32", False),
    ],
)
def test_auto_picks_channels_last_on_cuda_and_on_cpu_in_fp32(setting, device, precision, expected):
    assert use_channels_last(setting, device, precision) is expected


def _loss_and_grads(variant, x, y, dtype, fmt) -> tuple[float, torch.Tensor]:
    torch.manual_seed(0)
    model = create("resnet20", variant, 4).train().to(dtype).to(memory_format=fmt)
    target = y.to(dtype) if y.is_floating_point() else y
    loss = abn_loss(model(x.to(dtype).contiguous(memory_format=fmt)), target).total
    loss.backward()
    return loss.item(), torch.cat([p.grad.double().flatten() for p in model.parameters()])


@pytest.mark.parametrize("variant", ["abn", "plain", "abn_multitask"])
def test_a_channels_last_step_computes_the_nchw_step(variant: str) -> None:
    """An fp32 channels-last step gives the float64 loss and gradients, up to float noise.

    A freshly initialised ResNet in batch-norm training mode is ill-conditioned: moving the input
    by one part in a million moves the float64 gradients by up to about 0.5%. So the gradients
    must agree within a few times that noise floor (measured here, in float64), not to 1e-6;
    a layout bug is off by the whole gradient.
    """
    torch.manual_seed(0)
    x = torch.randn(16, 3, 32, 32)
    multi = "multitask" in variant
    y = torch.randint(0, 2, (16, 4)).float() if multi else torch.randint(0, 4, (16,))
    nchw, cl = torch.contiguous_format, torch.channels_last
    ref_loss, ref = _loss_and_grads(variant, x, y, torch.float64, nchw)
    noise = 0.0
    for seed in range(3):
        nudge = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        nudged = _loss_and_grads(variant, x * (1 + 1e-6 * nudge), y, torch.float64, nchw)[1]
        noise = max(noise, (nudged - ref).norm().item())
    loss, grads = _loss_and_grads(variant, x, y, torch.float32, cl)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    # measured on AVX2: 1-7x the floor; a layout bug (H and W swapped) is 600-5,000x
    assert (grads - ref).norm().item() <= 25 * noise + 1e-5 * ref.norm().item()


def test_cpu_fp32_training_picks_channels_last_unless_told_not_to(tiny_config, monkeypatch):
    seen = []
    build_data = run.build_data

    def recording(*args, **kwargs):
        seen.append(kwargs["channels_last"])
        return build_data(*args, **kwargs)

    monkeypatch.setattr(run, "build_data", recording)
    for name, setting in (("auto", "auto"), ("nchw", "false")):
        result = run.train(
            tiny_config(name=name, epochs=1, precision="fp32", device="cpu", channels_last=setting)
        )
        assert result.epochs[0].images == 64 and result.final is not None
    assert seen == [True, False]
