"""Training state between epochs: one self-contained resume file, plus the weights for users.

``last.state.pt`` is the resume point: the model's weights, the optimizer, the RNG states and
the epoch bookkeeping, in one file written atomically (temp file, fsync, rename). Weights and
optimizer therefore always come from the same epoch, whenever the run is killed. It holds only
tensors, numbers, strings, lists and dicts and is read with ``torch.load(weights_only=True)``,
so resuming never unpickles code.

``last.safetensors`` is the same model as a regular checkpoint (:func:`abn.checkpoint.save`)
for ``abn eval``/``abn.load``; resuming does not need it, so a run stopped between the two
writes (one epoch apart) still resumes from the state file's epoch.

State files of version 1 (before the weights moved in) still resume, from ``last.safetensors``
of the same epoch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from abn.card import v1_model_kwargs
from abn.checkpoint import atomic_write_bytes
from abn.checkpoint import load as load_checkpoint
from abn.models import ModelSpec

STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)
WEIGHTS_NAME, STATE_NAME = "last.safetensors", "last.state.pt"
# every file a run writes by atomic rename; a kill mid-write leaves ``.<name>.<random>.tmp``
RUN_FILES = ("config.toml", "metrics.csv", WEIGHTS_NAME, STATE_NAME, "final.safetensors")


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


def model_state(model: nn.Module) -> dict[str, Any]:
    """``model``'s spec and weights (CPU copies) for the training state."""
    spec = model.spec
    return {
        "spec": {
            "name": spec.name,
            "variant": spec.variant,
            "num_classes": spec.num_classes,
            "kwargs": dict(spec.kwargs),
        },
        "weights": {k: t.detach().to("cpu", copy=True) for k, t in model.state_dict().items()},
    }


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write a training-state dict atomically (``torch.save`` of plain data)."""
    buffer = io.BytesIO()
    torch.save({"version": STATE_VERSION, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: str | Path, lazy: bool = False) -> dict[str, Any]:
    """Read a training-state file without executing code (``weights_only=True``); ``lazy``
    maps its tensors from the file instead of reading them (to look at its bookkeeping)."""
    path = Path(path)
    if not path.is_file():
        raise ResumeError(f"training state not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=lazy)
    except Exception as exc:  # corrupt, truncated, or holds objects we refuse to unpickle
        raise ResumeError(f"{path}: not a readable training state: {exc}") from None
    if not isinstance(state, dict) or state.get("version") not in READABLE_VERSIONS:
        raise ResumeError(f"{path}: not a training state of version {STATE_VERSION}")
    if state["version"] >= 2 and not isinstance(state.get("model"), dict):
        raise ResumeError(f"{path}: training state without the model's weights")
    return state


@dataclass(frozen=True)
class ResumePaths:
    run_dir: Path
    weights: Path
    state: Path


def resolve_resume(target: str | Path) -> ResumePaths:
    """Find ``last.state.pt`` (and ``last.safetensors``) from a run folder or either file."""
    target = Path(target)
    run_dir = target if target.is_dir() else target.parent
    paths = ResumePaths(run_dir, run_dir / WEIGHTS_NAME, run_dir / STATE_NAME)
    if not target.exists():
        raise ResumeError(f"nothing to resume at {target}")
    if not paths.state.is_file():
        raise ResumeError(
            f"cannot resume from {run_dir}: {paths.state.name} is missing (no epoch finished)"
        )
    return paths


def check_not_shortened(
    paths: ResumePaths, epochs: int, state: dict[str, Any] | None = None
) -> None:
    """Refuse resuming a run that has trained more than ``epochs`` epochs (its card would then
    misstate what was trained)."""
    done = int((state if state is not None else load_state(paths.state, lazy=True))["epoch"])
    if epochs < done:
        raise ResumeError(
            f"{paths.run_dir} has trained {done} epochs: resume with --epochs >= {done} "
            "(a run is not shortened after the fact)"
        )


def _check_spec(model: nn.Module, saved: ModelSpec, source: Path) -> None:
    # A state written before specs named every option holds only the options passed; the
    # others had the version-1 defaults (abn.card), which are not necessarily today's.
    kwargs = v1_model_kwargs(saved.name, saved.variant, dict(saved.kwargs))
    ours = model.spec
    theirs = (saved.name, saved.variant, saved.num_classes)
    if theirs != (ours.name, ours.variant, ours.num_classes):
        raise ResumeError(
            f"{source} holds {saved.name}/{saved.variant} ({saved.num_classes} outputs) but "
            f"the config builds {ours.name}/{ours.variant} ({ours.num_classes})"
        )
    if kwargs != dict(ours.kwargs):
        raise ResumeError(
            f"{source} holds {saved.name}/{saved.variant} built with {kwargs} but the config "
            f"builds it with {dict(ours.kwargs)}"
        )


def load_weights_into(model: nn.Module, path: str | Path) -> None:
    """Load a checkpoint's weights into ``model`` (same architecture required)."""
    saved = load_checkpoint(path)
    _check_spec(model, saved.spec, Path(path))
    model.load_state_dict(saved.state_dict())


def restore_model(model: nn.Module, paths: ResumePaths, state: dict[str, Any]) -> None:
    """Load the weights that belong to ``state`` into ``model``.

    From the state file itself (version 2); for version 1 from ``last.safetensors``, which
    must then be of the same epoch.
    """
    if "model" not in state:
        load_weights_into(model, paths.weights)
        check_same_epoch(paths, state)
        return
    spec = state["model"]["spec"]
    saved = ModelSpec(spec["name"], spec["variant"], spec["num_classes"], dict(spec["kwargs"]))
    _check_spec(model, saved, paths.state)
    model.load_state_dict(state["model"]["weights"])


def check_same_epoch(paths: ResumePaths, state: dict[str, Any]) -> None:
    """Refuse a version-1 state with weights written at another epoch (two separate writes)."""
    from abn.checkpoint import read_card

    weights_epoch = read_card(paths.weights).training.get("epochs")
    if weights_epoch is not None and int(weights_epoch) != int(state["epoch"]):
        raise ResumeError(
            f"cannot resume from {paths.run_dir}: {paths.weights.name} is from epoch "
            f"{weights_epoch} but {paths.state.name} (an older format without the weights) "
            f"from epoch {state['epoch']}; restart the run or restore a matching pair"
        )


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temp files a killed writer left in ``run_dir``; returns what was removed.

    Only the ``.<name>.*.tmp`` files of :data:`RUN_FILES` (see
    :func:`abn.checkpoint.atomic_write_bytes`); call it when no other process writes the run.
    """
    removed = []
    for name in RUN_FILES:
        for tmp in run_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
