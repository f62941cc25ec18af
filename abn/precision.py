"""Numeric precision of training and evaluation: fp32, or bf16 autocast where the hardware has it;
and the memory format convolutions run fastest in.

bf16 autocast roughly doubles CPU training speed on CPUs with a fast bf16 path (AVX-512,
AVX512-BF16, AMX) but is emulated, 12-15x slower than fp32, on AVX2-only CPUs (measured with
``benchmarks/train_throughput.py``). ``precision = "auto"`` picks bf16 only where it is fast.
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from typing import Any

import torch

PRECISIONS = ("auto", "bf16", "fp32")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` has a fast bf16 path for convolutions (not an emulated one)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:  # oneDNN's own check: AVX512 (BF16 / AMX) on x86, BF16 extensions on Arm
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"bf16"`` or ``"fp32"`` for ``precision`` on ``device``; warns when bf16 would be slow."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision is one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and not native_bf16(device):
        where = f"CPU ({cpu_capability()})" if device.type == "cpu" else f"{device.type} device"
        warnings.warn(
            f"bf16 is emulated on this {where}: expect it to be many times slower than fp32; "
            'precision = "auto" picks the faster one',
            RuntimeWarning,
            stacklevel=2,
        )
    return precision


def cpu_capability() -> str:
    """The CPU vector extension PyTorch dispatches to (e.g. ``AVX2``, ``AVX512``)."""
    return str(torch.backends.cpu.get_cpu_capability())


def autocast_for(device: torch.device, precision: str, cache: bool = True) -> Any:
    """bf16 autocast when ``precision`` is (or, for ``"auto"``, resolves to) bf16, else a no-op.

    ``cache=False`` re-casts the weights at every use, as CUDA graph capture requires.
    """
    if precision == "auto":
        precision = resolve_precision(precision, device)
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return nullcontext()


def use_channels_last(setting: str, device: torch.device, precision: str) -> bool:
    """Whether to run convolutions in channels-last memory format (training and evaluation).

    ``"auto"`` picks it on CUDA, and on CPU in fp32, where oneDNN's convolutions run faster on it
    (2-core AVX2 VM: training 1.06–1.23× for ResNet-20 and 1.65–1.79× for ResNet-110 with
    ``benchmarks/train_throughput.py --memory-formats nchw channels-last``; inference of the
    shipped models in ``benchmarks/eval_throughput.py``). CPU bf16 keeps NCHW until measured.
    """
    if setting != "auto":
        return setting == "true"
    return device.type == "cuda" or (device.type == "cpu" and precision == "fp32")
