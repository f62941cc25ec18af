"""Precision: "auto" takes bf16 only where the hardware runs it natively; emulated bf16 warns."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from abn import precision
from abn.precision import autocast_for, native_bf16, resolve_precision
from abn.train.config import ConfigError, TrainConfig

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_native_bf16(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto never warns
        assert resolve_precision("auto", CPU) == ("bf16" if native else "fp32")


def test_explicit_choices_are_kept_and_emulated_bf16_warns(monkeypatch) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert resolve_precision("fp32", CPU) == "fp32"
    with pytest.warns(RuntimeWarning, match="bf16 is emulated on this CPU"):
        assert resolve_precision("bf16", CPU) == "bf16"
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", CPU) == "bf16"


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision is one of auto, bf16, fp32"):
        resolve_precision("fp8", CPU)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split()}


def test_native_bf16_follows_the_cpus_vector_extensions_and_is_false_without_cuda() -> None:
    """Checked against the kernel's CPU flags, not oneDNN's own answer: no AVX-512 at all (as on
    an AVX2 machine) is never native; AVX512-BF16 or AMX-BF16 always is."""
    flags = _cpu_flags()
    if flags and not any(f.startswith("avx512") or f.startswith("amx") for f in flags):
        assert native_bf16(CPU) is False
    if flags & {"avx512_bf16", "amx_bf16"}:
        assert native_bf16(CPU) is True
    if not torch.cuda.is_available():
        assert native_bf16(torch.device("cuda")) is False


def test_autocast_for_bf16_only() -> None:
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    with autocast_for(CPU, "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast_for(CPU, "fp32"):
        assert conv(x).dtype == torch.float32


def test_train_config_defaults_to_auto_and_validates() -> None:
    assert TrainConfig().precision == "auto"
    with pytest.raises(ConfigError, match="precision is auto, bf16 or fp32"):
        TrainConfig(precision="half")


def test_cards_name_the_cpu_vector_extension() -> None:
    from abn.precision import cpu_capability
    from abn.train.run import hardware

    name = hardware(CPU)
    assert name.endswith(f"({cpu_capability()})") and len(name) > len(cpu_capability()) + 3


def test_autocast_for_auto_resolves_on_the_device(monkeypatch) -> None:
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    for native, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(precision, "native_bf16", lambda device, n=native: n)
        with autocast_for(CPU, "auto"):
            assert conv(x).dtype == dtype
