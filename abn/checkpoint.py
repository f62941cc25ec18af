"""One safe checkpoint format: safetensors weights with the model card in the file's metadata.

Loading parses JSON and raw tensors only (no pickle), so a file can never execute code. A
SHA-256 of the tensors, stored beside the card, catches tampering and corruption.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import nn

from . import __version__
from .card import ModelCard
from .models import create

FORMAT = "abn-checkpoint/1"
_META_FORMAT, _META_CARD, _META_DIGEST = "format", "abn.card", "abn.sha256"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, tampered with, or does not fit its card."""


def code_version() -> str:
    """Package version plus the git commit when run from a checkout."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def card_for(model: nn.Module, **fields) -> ModelCard:
    """A card for a model built by :func:`abn.models.create`, with extra fields."""
    spec = getattr(model, "spec", None)
    if spec is None:
        raise CheckpointError("model was not built by abn.models.create: it has no spec")
    fields.setdefault("code_version", code_version())
    return ModelCard(
        arch=spec.name,
        variant=spec.variant,
        num_classes=spec.num_classes,
        model_kwargs=dict(spec.kwargs),
        **fields,
    )


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _state_tensors(model: nn.Module, half: bool) -> dict[str, torch.Tensor]:
    out = {}
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu")
        if half and t.is_floating_point() and t.dim() >= 2:
            t = t.to(torch.float16)  # conv/linear weights; BN statistics and biases stay fp32
        out[name] = t.contiguous().clone()
    return out


def _process_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_process_umask()  # what open() would give (mkstemp's files are 0600)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` so that ``path`` is either the old file or the complete new one.

    The bytes go to a hidden temporary file in the same folder, are flushed to disk, and replace
    ``path`` in one rename (then the folder entry is flushed too); a failed write leaves no
    temporary file. The file gets the usual permissions (``0o666`` less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save(
    model: nn.Module, path: str | os.PathLike, card: ModelCard | None = None, *, half: bool = False
) -> Path:
    """Save weights and card to one ``.safetensors`` file, atomically.

    ``half=True`` stores conv and linear weights in float16 (they load back as float32); BatchNorm
    statistics and biases stay float32, since fp16 cannot hold tiny running variances.
    """
    card = card or card_for(model)
    tensors = _state_tensors(model, half)
    metadata = {
        _META_FORMAT: FORMAT,
        _META_CARD: card.to_json(indent=None),
        _META_DIGEST: _digest(tensors),
    }
    atomic_write_bytes(path, save_bytes(tensors, metadata=metadata))
    return Path(path)


def _read_metadata(path: Path) -> dict[str, str]:
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint is not a file: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path.name} is not a readable safetensors checkpoint (truncated, corrupt, or "
            f"another format such as a pickled .pt file): {exc}"
        ) from None
    if metadata.get(_META_FORMAT) != FORMAT or _META_CARD not in metadata:
        raise CheckpointError(
            f"{path.name} is a safetensors file but not an ABN checkpoint (no model card)"
        )
    return metadata


def read_card(path: str | os.PathLike) -> ModelCard:
    """The model card of a checkpoint, without loading its weights."""
    path = Path(path)
    try:
        return ModelCard.from_json(_read_metadata(path)[_META_CARD])
    except ValueError as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path.name}: invalid model card: {exc}") from None


def load(
    path: str | os.PathLike | bytes,
    map_location: str | torch.device = "cpu",
    name: str = "upload",
) -> nn.Module:
    """Rebuild a model from its card and load its weights; ``model.card`` holds the card.

    ``path`` may also be the file's bytes (an upload), which errors call ``name``. Never executes
    code from the file.
    """
    if isinstance(path, (bytes, bytearray)):
        with tempfile.NamedTemporaryFile(suffix=".safetensors") as tmp:
            tmp.write(path)
            tmp.flush()
            try:
                return load(tmp.name, map_location)
            except CheckpointError as exc:  # name the upload, not the temporary file
                text = str(exc).replace(tmp.name, name).replace(Path(tmp.name).name, name)
                raise CheckpointError(text) from None
    path = Path(path)
    metadata = _read_metadata(path)
    card = read_card(path)
    try:
        tensors = load_bytes(path.read_bytes())
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: cannot read tensors: {exc}") from None
    if _digest(tensors) != metadata.get(_META_DIGEST):
        raise CheckpointError(
            f"{path.name}: weights do not match the checksum stored with them "
            "(the file was modified or corrupted)"
        )
    model = build_from_card(card, source=path.name)
    _load_state(model, tensors, path.name)
    model.card = card
    return model.to(map_location).eval()


def build_from_card(card: ModelCard, source: str = "card") -> nn.Module:
    """An untrained model with the architecture a card describes."""
    try:
        return create(card.arch, card.variant, card.num_classes, **card.model_kwargs)
    except (KeyError, TypeError, ValueError) as exc:
        msg = exc.args[0] if exc.args else str(exc)
        raise CheckpointError(
            f"{source}: the card describes a model that cannot be built: {msg}"
        ) from None


def _load_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [
        f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in tensors and tensors[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensors (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches (e.g. {'; '.join(wrong[:3])})")
    if problems:
        raise CheckpointError(
            f"{source}: weights do not fit {model.spec.name}/{model.spec.variant}: "
            + "; ".join(problems)
        )
    model.load_state_dict(tensors, strict=True)


def card_json(path: str | os.PathLike) -> str:
    """The card of a checkpoint as pretty JSON (for ``abn card`` and the app)."""
    return json.dumps(json.loads(read_card(path).to_json()), indent=2)
