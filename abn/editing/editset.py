"""Edit sets: edited attention maps saved for review and fine-tuning, as a folder.

Layout (format ``abn-editset/1``)::

    <dir>/edits.json          {"format": "abn-editset/1", "model": {"digest", "name", "map_size"},
                               "records": [ {EditRecord fields}, ... ]}
    <dir>/maps/<id>-original.npy, <dir>/maps/<id>-edited.npy   float32 h×w in [0, 1]
    <dir>/images/<id>.png     a copy of an uploaded image (dataset images are referenced)

Every write is atomic (a temporary file, then one rename) and adds new files only, so a failed
write leaves the set as it was; changes to a set hold a lock, so two writers never lose each
other's edits. Opening a set checks everything and says what is wrong; NPY files are read
with ``allow_pickle=False`` after their header was checked. ZIP import refuses paths that
leave the set, links and oversized archives, and validates the set before it appears.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import json
import operator
import os
import re
import shutil
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from abn.card import canonical_json
from abn.checkpoint import atomic_write_bytes
from abn.data import DataError, build_dataset, read_image
from abn.models import get_entry

__all__ = [
    "FORMAT",
    "MANIFEST",
    "EditRecord",
    "EditSet",
    "EditSetError",
    "list_edit_sets",
    "model_digest",
    "model_info",
    "model_map_size",
]

FORMAT = "abn-editset/1"
MANIFEST = "edits.json"
MAPS, IMAGES = "maps", "images"
_LOCK = ".lock"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MEMBER = re.compile(r"^(edits\.json|maps/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.npy|"
                     r"images/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.png)$")  # fmt: skip
MAX_ZIP_BYTES = 2 << 30  # uncompressed size an imported archive may hold
MAX_ZIP_MEMBERS = 100_000
MAX_MAP_CELLS = 1 << 20  # a manifest's map size may not ask for more cells
_NPY_HEADERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


class EditSetError(ValueError):
    """An edit set is missing, corrupt, or does not fit the model; the message says why."""


# -- the model an edit set belongs to -----------------------------------------------------


def model_digest(model: nn.Module) -> str:
    """The identity an edit set records of its model: the SHA-256 its checkpoint stores
    (``model.digest``, set and verified by :func:`abn.checkpoint.load`: the digest every
    other part of abn names a checkpoint by); for a model never saved, a SHA-256 of its weights
    and buffers (names sorted) and its card or spec."""
    stored = getattr(model, "digest", None)
    if isinstance(stored, str) and stored:
        return stored
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    card = getattr(model, "card", None)
    described = json.loads(card.to_json()) if card is not None else asdict(model.spec)
    h.update(b"\0card\0" + canonical_json(described).encode())
    return h.hexdigest()


def _model_name(model: nn.Module) -> str:
    card = getattr(model, "card", None)
    if card is not None:
        return card.display_name
    spec = model.spec
    return f"{spec.name} {spec.variant}"


def model_map_size(model: nn.Module) -> tuple[int, int]:
    """The h×w of an ABN model's attention map at its input size (one forward of zeros)."""
    if not getattr(model, "is_abn", False):
        raise EditSetError("edit sets hold attention maps: the model must be an ABN")
    card = getattr(model, "card", None)
    size = tuple(card.input_size) if card is not None else get_entry(model.spec.name).input_size
    weight = next(model.parameters())
    x = torch.zeros(1, 3, *size, device=weight.device, dtype=weight.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            maps = model.attention_branch(model.feature_extractor(x))[1]
    finally:
        model.train(was_training)
    return int(maps.shape[-2]), int(maps.shape[-1])


def model_info(model: nn.Module) -> dict[str, Any]:
    """What an edit set records of its model: ``{"digest", "name", "map_size"}``."""
    return {
        "digest": model_digest(model),
        "name": _model_name(model),
        "map_size": list(model_map_size(model)),
    }


# -- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EditRecord:
    """One saved edit. ``image`` (an uploaded copy, ``images/<id>.png``) or ``source`` (a
    dataset image: ``{"dataset", "split", "index"}``, and ``"root"`` for an image tree) says
    which image; ``original`` and ``edited`` are the maps' NPY files (paths in the set)."""

    id: str
    image: str | None
    source: dict | None
    label: int | None
    attribute: int | None
    original: str
    edited: str
    author: str
    created: str
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> EditRecord:
        """A record from the manifest; :class:`EditSetError` names the field that is wrong."""
        if not isinstance(data, dict):
            raise EditSetError(f"{where}: a record is a JSON object, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        missing = sorted(names - set(data))
        if missing:
            raise EditSetError(f"{where}: the record lacks {', '.join(missing)}")
        record = cls(**{k: data[k] for k in names})
        record._check(where)
        return record

    def _check(self, where: str) -> None:
        if not isinstance(self.id, str) or not _NAME.match(self.id):
            raise EditSetError(f"{where}: invalid record id {self.id!r}")
        for key in ("author", "created", "note"):
            if not isinstance(getattr(self, key), str):
                raise EditSetError(f"{where}: {key} must be text")
        for key in ("label", "attribute"):
            value = getattr(self, key)
            if value is not None and (not _is_int(value) or value < 0):
                raise EditSetError(f"{where}: {key} must be a whole number ≥ 0 or null")
        _check_member(self.original, MAPS, ".npy", where)
        _check_member(self.edited, MAPS, ".npy", where)
        if (self.image is None) == (self.source is None):
            raise EditSetError(f"{where}: a record names either an image copy or a source")
        if self.image is not None:
            _check_member(self.image, IMAGES, ".png", where)
        else:
            _check_source(self.source, where)

    def files(self) -> list[str]:
        """The set's files this record owns (maps, and the image copy if any)."""
        return [self.original, self.edited, *([self.image] if self.image else [])]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_member(path: Any, folder: str, suffix: str, where: str) -> None:
    if not (
        isinstance(path, str)
        and path.startswith(folder + "/")
        and path.endswith(suffix)
        and _NAME.match(path[len(folder) + 1 :])
    ):
        raise EditSetError(
            f"{where}: {path!r} is not a file name inside the set's {folder}/ folder"
        )


def _check_source(source: Any, where: str) -> None:
    if not isinstance(source, dict):
        raise EditSetError(f"{where}: source must be an object with dataset, split and index")
    if not (isinstance(source.get("dataset"), str) and isinstance(source.get("split"), str)):
        raise EditSetError(f"{where}: source needs dataset and split names")
    index = source.get("index")
    if not _is_int(index) or index < 0:
        raise EditSetError(f"{where}: source index must be a whole number ≥ 0")
    if "root" in source and not isinstance(source["root"], str):
        raise EditSetError(f"{where}: source root must be a folder path")


# -- files ------------------------------------------------------------------------------------


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def _read_npy(path: Path, shape: tuple[int, int], what: str) -> np.ndarray:
    """An NPY map, checked header first: no pickled objects, the expected shape, [0, 1]."""
    if not path.is_file():
        raise EditSetError(f"{what}: the map file {path.name} is missing")
    try:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in _NPY_HEADERS:
                raise ValueError(f"NPY format version {version} is not supported")
            header = _NPY_HEADERS[version](f, max_header_size=10_000)
            dtype = header[2]
            if dtype.hasobject:
                raise EditSetError(
                    f"{what}: {path.name} holds Python objects (a pickle); refused, maps are "
                    "plain float arrays"
                )
            if tuple(header[0]) != shape:
                raise EditSetError(
                    f"{what}: {path.name} is a {_size(header[0])} map, the set's maps are "
                    f"{_size(shape)} (map shape mismatch)"
                )
            f.seek(0)
            array = np.load(f, allow_pickle=False)
    except EditSetError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise EditSetError(f"{what}: {path.name} is not a readable NPY file ({exc})") from None
    if array.dtype.kind != "f" or not np.isfinite(array).all():
        raise EditSetError(f"{what}: {path.name} does not hold finite float values")
    if array.min(initial=0) < 0 or array.max(initial=0) > 1:
        raise EditSetError(f"{what}: {path.name} holds values outside [0, 1]")
    return array.astype(np.float32)


def _size(shape: Any) -> str:
    return "×".join(str(int(s)) for s in shape) if len(shape) else "0-d"


def _check_map(array: Any, shape: tuple[int, int], what: str) -> np.ndarray:
    m = np.asarray(array, dtype=np.float32)
    if m.shape != shape:
        raise EditSetError(
            f"the {what} map is {_size(m.shape)}; this edit set holds {_size(shape)} maps"
        )
    if not np.isfinite(m).all() or m.min() < -1e-6 or m.max() > 1 + 1e-6:
        raise EditSetError(f"the {what} map must hold values in [0, 1]")
    return np.clip(m, 0.0, 1.0)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the set (``<dir>/.lock``) for a read-modify-write."""
    with open(directory / _LOCK, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@functools.lru_cache(maxsize=8)
def _dataset(name: str, split: str, root: str | None):
    return build_dataset(name, split, root)


# -- the set ----------------------------------------------------------------------------------


class EditSet:
    """A folder of edits of one model's attention maps (see the module's docstring)."""

    def __init__(self, directory: Path, model: dict[str, Any], records: list[EditRecord]):
        self.directory = Path(directory)
        self._model = model
        self._records = records

    # creating and opening

    @classmethod
    def create(cls, directory: str | os.PathLike, model: nn.Module) -> EditSet:
        """A new, empty edit set for ``model`` (a loaded ABN) in ``directory`` (new or empty)."""
        directory = Path(directory)
        if (directory / MANIFEST).exists():
            raise EditSetError(f"{directory} already holds an edit set; open it instead")
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            raise EditSetError(f"{directory} is not an empty folder; choose a new one")
        info = model_info(model)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MAPS).mkdir(exist_ok=True)
        (directory / IMAGES).mkdir(exist_ok=True)
        edit_set = cls(directory, info, [])
        edit_set._write_manifest([])
        return edit_set

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike,
        model: nn.Module | None = None,
        *,
        data_root: str | os.PathLike | None = None,
    ) -> EditSet:
        """Open and validate an edit set: its manifest, every map file (shape, values, no
        pickle), every uploaded image's copy; with ``model``, that the set was made for it
        (digest and map size); with ``data_root``, that every referenced dataset image exists.
        :class:`EditSetError` says what is wrong."""
        directory = Path(directory)
        info, records = _read_manifest(directory)
        shape = tuple(info["map_size"])
        for record in records:
            where = f"edit {record.id}"
            _read_npy(directory / record.original, shape, where)
            _read_npy(directory / record.edited, shape, where)
            if record.image is not None and not (directory / record.image).is_file():
                raise EditSetError(f"{where}: its image {record.image} is missing from the set")
            if record.source is not None and data_root is not None:
                _check_dataset_image(record, data_root, where)
        edit_set = cls(directory, info, records)
        if model is not None:
            edit_set.check_model(model)
        return edit_set

    def check_model(self, model: nn.Module) -> None:
        """Refuse a model the set was not made for: its map size (the more telling reason)
        or, failing that, its digest. A model with the set's digest is the set's model."""
        mine = self._model
        digest = model_digest(model)
        if digest == mine["digest"]:
            return
        name, size = _model_name(model), list(model_map_size(model))
        if size != list(mine["map_size"]):
            raise EditSetError(
                f"map size mismatch: the edit set holds {_size(mine['map_size'])} maps, the "
                f"model {name} makes {_size(size)} maps"
            )
        raise EditSetError(
            f"this edit set was made for another model: {mine['name']} (digest "
            f"{mine['digest'][:12]}…), not {name} ({digest[:12]}…)"
        )

    # reading

    @property
    def model(self) -> dict[str, Any]:
        """The model the set was made for: ``{"digest", "name", "map_size"}``."""
        return dict(self._model)

    @property
    def map_size(self) -> tuple[int, int]:
        return tuple(self._model["map_size"])

    @property
    def records(self) -> list[EditRecord]:
        return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def record(self, record_id: str) -> EditRecord:
        for record in self._records:
            if record.id == record_id:
                return record
        raise EditSetError(f"no edit {record_id!r} in {self.directory.name}")

    def _resolve(self, record: EditRecord | str) -> EditRecord:
        return self.record(record if isinstance(record, str) else record.id)

    def maps(self, record: EditRecord | str) -> tuple[np.ndarray, np.ndarray]:
        """The record's (original, edited) maps."""
        record = self._resolve(record)
        where = f"edit {record.id}"
        return (
            _read_npy(self.directory / record.original, self.map_size, where),
            _read_npy(self.directory / record.edited, self.map_size, where),
        )

    def image(
        self, record: EditRecord | str, data_root: str | os.PathLike | None = None
    ) -> Image.Image:
        """The record's image (RGB): the uploaded copy, or the referenced dataset image
        (under ``data_root``, default the data root; an image tree's own root if recorded)."""
        record = self._resolve(record)
        if record.image is not None:
            try:
                return read_image(self.directory / record.image)
            except DataError as exc:
                raise EditSetError(f"edit {record.id}: cannot read its image: {exc}") from None
        return _dataset_image(record, data_root, f"edit {record.id}")

    @property
    def digest(self) -> str:
        """SHA-256 over the manifest (canonical JSON) and every record's files, in order."""
        h = hashlib.sha256(canonical_json(self._manifest(self._records)).encode())
        for record in self._records:
            for name in record.files():
                h.update(b"\0" + name.encode() + b"\0")
                h.update((self.directory / name).read_bytes())
        return h.hexdigest()

    # changing

    def add(
        self,
        original: np.ndarray,
        edited: np.ndarray,
        *,
        image: Image.Image | None = None,
        source: dict | None = None,
        label: int | None = None,
        attribute: int | None = None,
        author: str = "",
        note: str = "",
    ) -> EditRecord:
        """Save one edit: the model's map, the edited map, and the image (``image``, an
        upload, copied into the set; or ``source``, a dataset image, referenced)."""
        shape = self.map_size
        original = _check_map(original, shape, "original")
        edited = _check_map(edited, shape, "edited")
        if (image is None) == (source is None):
            raise EditSetError("an edit needs its image: pass image (an upload) or source")
        now = datetime.now(timezone.utc).replace(microsecond=0)
        record_id = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        record = EditRecord(
            id=record_id,
            image=f"{IMAGES}/{record_id}.png" if image is not None else None,
            source=_plain_source(source) if source is not None else None,
            label=int(label) if label is not None else None,
            attribute=int(attribute) if attribute is not None else None,
            original=f"{MAPS}/{record_id}-original.npy",
            edited=f"{MAPS}/{record_id}-edited.npy",
            author=str(author),
            created=now.isoformat(),
            note=str(note),
        )
        record._check("new edit")
        contents = {record.original: _npy_bytes(original), record.edited: _npy_bytes(edited)}
        if image is not None:
            contents[record.image] = _png_bytes(image)
        with _locked(self.directory):
            records = self._reread()
            written: list[Path] = []
            try:
                for name, data in contents.items():
                    atomic_write_bytes(self.directory / name, data)
                    written.append(self.directory / name)
                self._write_manifest([*records, record])
            except BaseException:
                for path in written:
                    path.unlink(missing_ok=True)
                raise
            self._records = [*records, record]
        return record

    def remove(self, record_id: str) -> None:
        """Delete one edit (the manifest first, then its files)."""
        with _locked(self.directory):
            records = self._reread()
            keep = [r for r in records if r.id != record_id]
            if len(keep) == len(records):
                raise EditSetError(f"no edit {record_id!r} in {self.directory.name}")
            self._write_manifest(keep)
            self._records = keep
            for record in records:
                if record.id == record_id:
                    for name in record.files():
                        (self.directory / name).unlink(missing_ok=True)

    def _reread(self) -> list[EditRecord]:
        """The records on disk now (another writer may have added some)."""
        info, records = _read_manifest(self.directory)
        if info != self._model:
            raise EditSetError(f"{self.directory}: the set's model changed on disk; reopen it")
        return records

    def _manifest(self, records: list[EditRecord]) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": self._model,
            "records": [r.to_dict() for r in records],
        }

    def _write_manifest(self, records: list[EditRecord]) -> None:
        text = json.dumps(self._manifest(records), indent=1, ensure_ascii=False)
        atomic_write_bytes(self.directory / MANIFEST, text.encode("utf-8") + b"\n")

    # exchange

    def export(self, zip_path: str | os.PathLike) -> Path:
        """Write the set as one ZIP (manifest, maps, image copies), atomically."""
        zip_path = Path(zip_path)
        buffer = io.BytesIO()
        with _locked(self.directory):
            records = self._reread()
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.write(self.directory / MANIFEST, MANIFEST)
                for record in records:
                    for name in record.files():
                        archive.write(self.directory / name, name)
        atomic_write_bytes(zip_path, buffer.getvalue())
        return zip_path

    @classmethod
    def import_zip(
        cls,
        zip_path: str | os.PathLike,
        directory: str | os.PathLike,
        *,
        model: nn.Module | None = None,
    ) -> EditSet:
        """Unpack an exported set into ``directory`` (new or empty), validated first (with
        ``model``: made for it); a bad archive leaves nothing behind."""
        zip_path, directory = Path(zip_path), Path(directory)
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            raise EditSetError(f"{directory} is not an empty folder; choose a new one")
        if not zip_path.is_file() or not zipfile.is_zipfile(zip_path):
            raise EditSetError(f"{zip_path.name} is not a ZIP file")
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = directory.parent / f".import-{uuid.uuid4().hex[:12]}"
        try:
            _unpack(zip_path, staging)
            cls.open(staging, model)
            if directory.exists():
                directory.rmdir()  # empty, checked above
            staging.rename(directory)
        except zipfile.BadZipFile as exc:
            raise EditSetError(f"{zip_path.name} is a damaged ZIP file ({exc})") from None
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        return cls.open(directory)


def _plain_source(source: dict) -> dict:
    """``source`` with JSON-ready values (a NumPy or tensor index becomes an int)."""
    out = dict(source)
    with contextlib.suppress(TypeError, ValueError):
        if not isinstance(out.get("index"), (bool, float)):
            out["index"] = operator.index(out.get("index"))
    if isinstance(out.get("root"), os.PathLike):
        out["root"] = os.fspath(out["root"])
    return out


def _png_bytes(image: Image.Image) -> bytes:
    if not isinstance(image, Image.Image):
        raise EditSetError(f"image must be a PIL image, got {type(image).__name__}")
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _read_manifest(directory: Path) -> tuple[dict[str, Any], list[EditRecord]]:
    """The manifest's model and records, checked (not yet the files they name)."""
    if not directory.is_dir():
        raise EditSetError(f"no edit set at {directory} (no such folder)")
    path = directory / MANIFEST
    if not path.is_file():
        raise EditSetError(f"{directory.name} is not an edit set: it has no {MANIFEST} manifest")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EditSetError(
            f"{directory.name}: the manifest {MANIFEST} is unreadable: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise EditSetError(f"{directory.name}: the manifest is not a JSON object")
    if data.get("format") != FORMAT:
        raise EditSetError(
            f"{directory.name}: edit set format {data.get('format')!r} is not supported "
            f"(this version reads {FORMAT})"
        )
    info = data.get("model")
    if not (
        isinstance(info, dict)
        and isinstance(info.get("digest"), str)
        and isinstance(info.get("name"), str)
        and isinstance(info.get("map_size"), list)
        and len(info["map_size"]) == 2
        and all(_is_int(s) and s > 0 for s in info["map_size"])
        and info["map_size"][0] * info["map_size"][1] <= MAX_MAP_CELLS
    ):
        raise EditSetError(
            f"{directory.name}: the manifest's model entry needs digest, name and map_size [h, w]"
        )
    raw = data.get("records")
    if not isinstance(raw, list):
        raise EditSetError(f"{directory.name}: the manifest's records are not a list")
    records = [EditRecord.from_dict(r, f"{directory.name}, record {i}") for i, r in enumerate(raw)]
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise EditSetError(f"{directory.name}: the manifest lists an edit id twice")
    files = [name for r in records for name in r.files()]
    if len(set(files)) != len(files):
        raise EditSetError(f"{directory.name}: two edits share a file")
    model = {k: info[k] for k in ("digest", "name", "map_size")}
    return model, records


def _dataset_image(record: EditRecord, data_root: str | os.PathLike | None, where: str):
    source = record.source
    root = source.get("root") or (str(data_root) if data_root is not None else None)
    name = f"{source['dataset']} {source['split']} #{source['index']}"
    try:
        dataset = _dataset(source["dataset"], source["split"], root)
        if source["index"] >= len(dataset):
            raise EditSetError(
                f"{where}: its image {name} is missing (the split has {len(dataset)} images)"
            )
        tensor = dataset[source["index"]][0]
    except EditSetError:
        raise
    except (DataError, KeyError, OSError, ValueError, IndexError) as exc:
        raise EditSetError(f"{where}: its image {name} is not available: {exc}") from None
    array = tensor.permute(1, 2, 0).numpy() if isinstance(tensor, torch.Tensor) else tensor
    return array if isinstance(array, Image.Image) else Image.fromarray(np.asarray(array))


def _check_dataset_image(record: EditRecord, data_root: str | os.PathLike, where: str) -> None:
    _dataset_image(record, data_root, where)


def _unpack(zip_path: Path, staging: Path) -> None:
    """Extract a set's archive into ``staging``, refusing anything but the set's own files."""
    with zipfile.ZipFile(zip_path) as archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise EditSetError(f"{zip_path.name} holds too many files ({len(members)})")
        names = [m.filename for m in members if not m.is_dir()]
        if len(set(names)) != len(names):
            raise EditSetError(f"{zip_path.name} holds a file twice")
        if MANIFEST not in names:
            raise EditSetError(f"{zip_path.name} is not an edit set: it has no {MANIFEST}")
        total = 0
        for member in members:
            if member.is_dir():
                if member.filename not in (f"{MAPS}/", f"{IMAGES}/"):
                    raise EditSetError(f"{zip_path.name}: unexpected folder {member.filename!r}")
                continue
            if (member.external_attr >> 16) & 0o170000 == 0o120000:
                raise EditSetError(f"{zip_path.name}: {member.filename!r} is a link; refused")
            if not _MEMBER.match(member.filename):
                raise EditSetError(
                    f"{zip_path.name}: {member.filename!r} is not a file an edit set holds "
                    "(paths leaving the set are refused)"
                )
            total += member.file_size
            if total > MAX_ZIP_BYTES:
                raise EditSetError(f"{zip_path.name} unpacks to more than {MAX_ZIP_BYTES} bytes")
        for folder in ("", MAPS, IMAGES):
            (staging / folder).mkdir(parents=True, exist_ok=True)
        for member in members:
            if not member.is_dir():
                _extract(archive, member, staging / member.filename)


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path) -> None:
    """Copy one member, never more bytes than its header declares."""
    with archive.open(member) as src, target.open("xb") as dst:
        left = member.file_size
        while chunk := src.read(min(1 << 20, left + 1)):
            left -= len(chunk)
            if left < 0:
                raise EditSetError(f"{member.filename} is larger than its ZIP header says")
            dst.write(chunk)


def list_edit_sets(root: str | os.PathLike) -> list[tuple[Path, int, str | None]]:
    """The edit sets in ``root``'s subfolders: (folder, number of edits, problem or ``None``).

    A folder that is not a valid set is listed with the reason (and the number of records its
    manifest lists, when readable); hidden folders (``.import-…``) are skipped."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            found.append((folder, len(EditSet.open(folder)), None))
        except EditSetError as exc:
            found.append((folder, _count(folder), str(exc)))
    return found


def _count(folder: Path) -> int:
    with contextlib.suppress(OSError, ValueError, TypeError):
        records = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("records")
        return len(records) if isinstance(records, list) else 0
    return 0
