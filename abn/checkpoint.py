"""One safe checkpoint format: safetensors weights with the model card in the file's metadata.

Loading parses JSON and raw tensors only (no pickle), so a file can never execute code. A
SHA-256 stored beside the card covers the tensors and the card (its canonical JSON), so an edit
to either, or corruption, is refused.

Format ``abn-checkpoint/2`` holds a version-2 card, which records every constructor argument of
the model. Files of format ``abn-checkpoint/1`` (a version-1 card, whose digest covers the
tensors only) still load as they did: :func:`abn.card.upgrade_card` reads their card with the
defaults of the code that wrote them; :func:`migrate` rewrites such a file in format 2.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import nn

from . import __version__
from .card import CARD_VERSION, ModelCard, canonical_json, upgrade_card
from .models import create, model_options

FORMAT = "abn-checkpoint/2"
FORMAT_V1 = "abn-checkpoint/1"
_CARD_VERSIONS = {FORMAT_V1: 1, FORMAT: 2}  # the card version each format holds
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


def _digest(tensors: dict[str, torch.Tensor], card_text: str | None = None) -> str:
    """SHA-256 of the tensors (names, dtypes, shapes, bytes) and, from format 2, of the card's
    JSON text in canonical form (``None``: format 1, the tensors only)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    if card_text is not None:
        h.update(b"\0abn.card\0")
        h.update(canonical_json(json.loads(card_text)).encode())
    return h.hexdigest()


def _stored_digest_of(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """The digest ``metadata``'s format computes for ``tensors`` and its card."""
    if metadata[_META_FORMAT] == FORMAT_V1:
        return _digest(tensors)
    return _digest(tensors, metadata[_META_CARD])


def _as_json(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples become lists)."""
    return json.loads(json.dumps(value))


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
    card = _card_for_file(model, card)
    _write(path, _state_tensors(model, half), card)
    return Path(path)


def _write(path: str | os.PathLike, tensors: dict[str, torch.Tensor], card: ModelCard) -> None:
    text = card.to_json(indent=None)
    metadata = {_META_FORMAT: FORMAT, _META_CARD: text, _META_DIGEST: _digest(tensors, text)}
    atomic_write_bytes(path, save_bytes(tensors, metadata=metadata))


def _card_for_file(model: nn.Module, card: ModelCard | None) -> ModelCard:
    """The version-2 card to store with ``model``: ``card`` (or a new one) with the model's
    complete ``model_kwargs``. A card that describes another model is refused."""
    if card is None:
        return card_for(model)
    spec = getattr(model, "spec", None)
    if spec is None:
        raise CheckpointError("model was not built by abn.models.create: it has no spec")
    described = (card.arch, card.variant, card.num_classes)
    if described != (spec.name, spec.variant, spec.num_classes):
        raise CheckpointError(
            f"the card describes {card.arch}/{card.variant} with {card.num_classes} outputs, "
            f"not the model being saved ({spec.name}/{spec.variant}, {spec.num_classes})"
        )
    actual, recorded = _as_json(dict(spec.kwargs)), _as_json(card.model_kwargs)
    conflicts = sorted(k for k in recorded if k not in actual or actual[k] != recorded[k])
    if conflicts:
        diff = ", ".join(
            f"{k}: card {recorded[k]!r}, model {actual.get(k, 'no such option')!r}"
            for k in conflicts
        )
        raise CheckpointError(f"the card's model_kwargs disagree with the model ({diff})")
    return replace(card, model_kwargs=dict(spec.kwargs), card_version=CARD_VERSION)


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
    fmt = metadata.get(_META_FORMAT, "")
    if _META_CARD not in metadata or not fmt.startswith("abn-checkpoint/"):
        raise CheckpointError(
            f"{path.name} is a safetensors file but not an ABN checkpoint (no model card)"
        )
    if fmt not in _CARD_VERSIONS:
        raise CheckpointError(
            f"{path.name} is an ABN checkpoint of format {fmt!r}, which this version of abn "
            f"cannot read (it reads {', '.join(_CARD_VERSIONS)}): upgrade abn"
        )
    return metadata


def _parse_card(metadata: dict[str, str], source: str) -> ModelCard:
    """The file's card, upgraded to the current version (a version-1 card keeps its meaning)."""
    try:
        card = ModelCard.from_json(metadata[_META_CARD])
    except ValueError as exc:
        raise CheckpointError(f"{source}: invalid model card: {exc}") from None
    expected = _CARD_VERSIONS[metadata[_META_FORMAT]]
    if card.card_version != expected:
        raise CheckpointError(
            f"{source}: a file of format {metadata[_META_FORMAT]} holds a version-{expected} "
            f"card, not version {card.card_version!r}"
        )
    return upgrade_card(card)


def read_card(path: str | os.PathLike) -> ModelCard:
    """The model card of a checkpoint, without loading (or verifying) its weights.

    A version-1 card comes back upgraded (:func:`abn.card.upgrade_card`): complete
    ``model_kwargs`` and today's dataset names, as :func:`load` rebuilds it.
    """
    path = Path(path)
    return _parse_card(_read_metadata(path), path.name)


def stored_digest(path: str | os.PathLike | bytes) -> str:
    """The SHA-256 (hex) a checkpoint stores with its tensors (and, from format 2, its card),
    read from the file's header without loading or verifying the weights; ``path`` may be the
    file's bytes."""
    if isinstance(path, (bytes, bytearray)):
        with tempfile.NamedTemporaryFile(suffix=".safetensors") as tmp:
            tmp.write(path)
            tmp.flush()
            return stored_digest(tmp.name)
    return _read_metadata(Path(path)).get(_META_DIGEST, "")


def load(
    path: str | os.PathLike | bytes,
    map_location: str | torch.device = "cpu",
    name: str = "upload",
) -> nn.Module:
    """Rebuild a model from its card and load its weights; ``model.card`` holds the card and
    ``model.digest`` the SHA-256 stored with it (checked against the weights and card).

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
    card, tensors = _read_verified(path)
    model = build_from_card(card, source=path.name)
    _load_state(model, tensors, path.name)
    model.card = card
    model.digest = _read_metadata(path).get(_META_DIGEST, "")  # verified: the file's SHA-256
    return model.to(map_location).eval()


def _read_verified(path: Path) -> tuple[ModelCard, dict[str, torch.Tensor]]:
    """The (upgraded) card and the tensors of a checkpoint whose digest holds."""
    metadata = _read_metadata(path)
    card = _parse_card(metadata, path.name)
    try:
        tensors = load_bytes(path.read_bytes())
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: cannot read tensors: {exc}") from None
    if _stored_digest_of(tensors, metadata) != metadata.get(_META_DIGEST):
        covered = "weights" if metadata[_META_FORMAT] == FORMAT_V1 else "weights or model card"
        raise CheckpointError(
            f"{path.name}: the {covered} do not match the checksum stored with them (the file "
            "was modified after it was saved, or corrupted)"
        )
    return card, tensors


def build_from_card(card: ModelCard, source: str = "card") -> nn.Module:
    """An untrained model with the architecture a card describes, exactly.

    A version-2 card must name every constructor argument of its model, so nothing is taken
    from the code's defaults; the rebuilt model's spec must equal what the card records.
    """
    try:
        if card.card_version >= 2:
            _check_complete(card, source)
        model = create(card.arch, card.variant, card.num_classes, **card.model_kwargs)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        msg = exc.args[0] if exc.args else str(exc)
        raise CheckpointError(
            f"{source}: the card describes a model that cannot be built: {msg}"
        ) from None
    if _as_json(dict(model.spec.kwargs)) != _as_json(card.model_kwargs):
        raise CheckpointError(
            f"{source}: the card's model_kwargs {card.model_kwargs} rebuild a model whose "
            f"options are {model.spec.kwargs}"
        )
    return model


def _check_complete(card: ModelCard, source: str) -> None:
    """Refuse a card whose ``model_kwargs`` miss or add constructor arguments."""
    options = model_options(card.arch, card.variant)
    missing = sorted(options - set(card.model_kwargs))
    unknown = sorted(set(card.model_kwargs) - options)
    problems = []
    if missing:
        problems.append(f"its model_kwargs lack {', '.join(missing)}")
    if unknown:
        unknown_text = ", ".join(unknown)
        problems.append(
            f"it names options {card.arch}/{card.variant} does not take: {unknown_text}"
        )
    if problems:
        raise CheckpointError(
            f"{source}: the card cannot be rebuilt exactly: {'; '.join(problems)} (a card "
            f"records every constructor argument of its model: {', '.join(sorted(options))})"
        )


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


def migrate(path: str | os.PathLike, out: str | os.PathLike | None = None, note: str = "") -> bool:
    """Rewrite a format-1 checkpoint in format 2, its tensors bit-identical; ``True`` if done.

    The card is upgraded as :func:`read_card` reads it (complete ``model_kwargs``, today's
    dataset names) and ``note`` is appended to its notes. The file must verify and its weights
    fit the rebuilt model first. ``out`` defaults to ``path`` (replaced atomically); a file
    already in format 2 is left as it is (``False``).
    """
    path = Path(path)
    if _read_metadata(path)[_META_FORMAT] == FORMAT:
        return False
    card, tensors = _read_verified(path)
    if note:
        card = replace(card, notes=" ".join(s for s in (card.notes, note) if s))
    _load_state(build_from_card(card, path.name), tensors, path.name)
    _write(out or path, tensors, card)
    return True
