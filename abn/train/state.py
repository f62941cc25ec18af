"""Training state between epochs: weights (safetensors) + optimizer/RNG/loader state (tensors).

``last.safetensors`` holds the model through :func:`abn.checkpoint.save`; ``last.state.pt``
holds only tensors, numbers, strings, lists and dicts, written atomically and read with
``torch.load(weights_only=True)`` so resuming never unpickles code.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from abn.checkpoint import atomic_write_bytes
from abn.checkpoint import load as load_checkpoint

STATE_VERSION = 1
WEIGHTS_NAME, STATE_NAME = "last.safetensors", "last.state.pt"


class ResumeError(ValueError):
    """The files to resume from are missing or do not belong together."""


def rng_state() -> dict[str, Any]:
    """The global torch RNG states (CPU and every visible GPU)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write a training-state dict atomically (``torch.save`` of plain data)."""
    buffer = io.BytesIO()
    torch.save({"version": STATE_VERSION, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a training-state file without executing code (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise ResumeError(f"training state not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or holds objects we refuse to unpickle
        raise ResumeError(f"{path}: not a readable training state: {exc}") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ResumeError(f"{path}: not a training state of version {STATE_VERSION}")
    return state


@dataclass(frozen=True)
class ResumePaths:
    run_dir: Path
    weights: Path
    state: Path


def resolve_resume(target: str | Path) -> ResumePaths:
    """Find ``last.safetensors``/``last.state.pt`` from a run folder or either file."""
    target = Path(target)
    run_dir = target if target.is_dir() else target.parent
    paths = ResumePaths(run_dir, run_dir / WEIGHTS_NAME, run_dir / STATE_NAME)
    if not target.exists():
        raise ResumeError(f"nothing to resume at {target}")
    for p in (paths.weights, paths.state):
        if not p.is_file():
            raise ResumeError(f"cannot resume from {run_dir}: {p.name} is missing")
    return paths


def load_weights_into(model: nn.Module, path: str | Path) -> None:
    """Load a checkpoint's weights into ``model`` (same architecture required)."""
    saved = load_checkpoint(path)
    if saved.spec != model.spec:
        raise ResumeError(
            f"{path} holds {saved.spec.name}/{saved.spec.variant} ({saved.spec.num_classes} "
            f"outputs) but the config builds {model.spec.name}/{model.spec.variant} "
            f"({model.spec.num_classes})"
        )
    model.load_state_dict(saved.state_dict())


def check_same_epoch(paths: ResumePaths, state: dict[str, Any]) -> None:
    """Refuse weights and training state written at different epochs.

    They are two atomic writes, so a run killed between them leaves one epoch ahead.
    """
    from abn.checkpoint import read_card

    weights_epoch = read_card(paths.weights).training.get("epochs")
    if weights_epoch is not None and int(weights_epoch) != int(state["epoch"]):
        raise ResumeError(
            f"cannot resume from {paths.run_dir}: {paths.weights.name} is from epoch "
            f"{weights_epoch} but {paths.state.name} from epoch {state['epoch']} (the run was "
            "stopped between the two writes); restart the run or restore a matching pair"
        )
