"""Choosing the device a command runs on, with a clear error for a bad name or a missing GPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a device is resolved, not with the CLI's parser
    import torch

DEVICE_HELP = "auto (a GPU when one is visible, else the CPU), cpu, cuda or cuda:N"


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` → this process's GPU when one is visible, else the CPU.

    Raises ``ValueError`` for a name torch does not know, a device type other than CPU or CUDA,
    or a CUDA device on a machine without one.
    """
    import torch

    if name == "auto":
        return (
            torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
        )
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}: use {DEVICE_HELP}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not supported: use {DEVICE_HELP}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but no CUDA GPU is available")
    return device


def one_line(exc: BaseException) -> str:
    """The error's message on one line. A DataLoader worker wraps an error as "Caught X in
    DataLoader worker process N. Original Traceback …"; this keeps the original's last line."""
    text = str(exc)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text
