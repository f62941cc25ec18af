"""Put datasets under the data root: extract the offline packs, or (on request) download.

The packs (``*.tar.gz`` + ``SHA256SUMS``) live in ``$ABN_PACKS_DIR`` or
``<repo root>/../shared/data``. Each pack is checked against ``SHA256SUMS``, extracted into a
temporary folder and renamed into place, then marked with ``<folder>/.abn-prepared`` (holding
the pack's checksum) so a second :func:`prepare` skips it. Files that live beside a pack
(``Pack.extras``, e.g. CelebA-HQ's split file) are checked against ``SHA256SUMS`` too and copied
into its folder, also into a folder extracted before they existed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from abn.data.celeba_hq import SPLIT_FILE
from abn.data.errors import DataError
from abn.data.paths import default_packs_dir, resolve_root
from abn.data.registry import build_dataset

MARKER = ".abn-prepared"
SUMS_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class Pack:
    """An offline pack: its file, the folder it extracts to, the datasets it provides, and
    files beside it in the packs folder that belong in that folder too."""

    file: str
    folder: str
    datasets: tuple[str, ...]
    extras: tuple[str, ...] = ()


_CELEBA_HQ = ("celeba-hq", "celeba-hq-by-number")
PACKS: tuple[Pack, ...] = (
    Pack("cifar10-jpeg.tar.gz", "cifar10", ("cifar10",)),
    Pack("imagenette2-160.tar.gz", "imagenette2-160", ("imagenette",)),
    Pack("celeba-hq-64.tar.gz", "celeba-hq-64", _CELEBA_HQ, (SPLIT_FILE,)),
    Pack("celeba-aligned-1440.tar.gz", "celeba", ("celeba",)),
)
#: Datasets that torchvision can download (only with ``download=True``) → the splits fetched.
DOWNLOADABLE: dict[str, tuple[str, ...]] = {
    "cifar10-torchvision": ("train", "test"),
    "cifar100": ("train", "test"),
    "svhn": ("train", "test", "extra"),  # extra: the paper trains on train+extra
}


def prepare(
    packs_dir: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    only: Iterable[str] | None = None,
    verify: bool = True,
    progress: bool = True,
    download: bool = False,
) -> dict[str, str]:
    """Extract the offline packs (and, with ``download=True``, download torchvision sets).

    Args:
        packs_dir: folder with the packs; default :func:`~abn.data.paths.default_packs_dir`.
        root: data root to extract into; default :func:`~abn.data.paths.default_data_root`.
        only: dataset or pack names to prepare (e.g. ``["cifar10", "celeba"]``); default: all
            packs (plus every downloadable set when ``download=True``).
        verify: check each pack against ``SHA256SUMS`` before extracting.
        progress: show tqdm bars.
        download: allow torchvision downloads (cifar10-torchvision, cifar100, svhn).

    Returns:
        name → what happened (``"extracted"``, ``"already prepared"``, ``"downloaded"``).

    Raises:
        DataError: unknown name, missing pack or ``SHA256SUMS``, checksum mismatch.
    """
    packs, downloads = _select(only, download)
    target = resolve_root(root)
    report: dict[str, str] = {}
    if packs:
        source = Path(packs_dir).expanduser() if packs_dir is not None else default_packs_dir()
        sums = _read_sums(source) if verify else {}
        target.mkdir(parents=True, exist_ok=True)
        for pack in packs:
            report[pack.folder] = _prepare_pack(source, target, pack, sums, verify, progress)
            if copy_extras(source, target / pack.folder, pack, sums, verify):
                report[pack.folder] += " (+ " + ", ".join(pack.extras) + ")"
    for name in downloads:
        for split in DOWNLOADABLE[name]:
            build_dataset(name, split, root=target, download=True)
        report[name] = "downloaded"
    return report


def _select(only: Iterable[str] | None, download: bool) -> tuple[list[Pack], list[str]]:
    if only is None:
        return list(PACKS), (list(DOWNLOADABLE) if download else [])
    packs: list[Pack] = []
    downloads: list[str] = []
    by_name = {n: p for p in PACKS for n in (p.file, p.folder, *p.datasets)}
    for name in (n.strip() for n in only if n.strip()):
        if name in by_name:
            if by_name[name] not in packs:
                packs.append(by_name[name])
        elif name in DOWNLOADABLE:
            if not download:
                raise DataError(
                    f"{name} has no offline pack; pass --download to fetch it with torchvision"
                )
            downloads.append(name)
        else:
            known = sorted({p.datasets[0] for p in PACKS} | set(DOWNLOADABLE))
            raise DataError(f"unknown dataset or pack {name!r}; known: {', '.join(known)}")
    return packs, downloads


def _read_sums(packs_dir: Path) -> dict[str, str]:
    path = packs_dir / SUMS_FILE
    if not path.is_file():
        raise DataError(f"{path}: checksum file missing (is {packs_dir} the packs folder?)")
    sums: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DataError(f"{path}, line {number}: expected '<sha256>  <file>'")
        sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def sha256_file(path: Path, progress: bool = False) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh, _bar(path.stat().st_size, f"checking {path.name}", progress) as bar:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _prepare_pack(
    source: Path, target: Path, pack: Pack, sums: dict[str, str], verify: bool, progress: bool
) -> str:
    archive = source / pack.file
    dest = target / pack.folder
    marker = dest / MARKER
    expected = sums.get(pack.file)
    if verify and expected is None:
        raise DataError(f"{source / SUMS_FILE}: no checksum for {pack.file}")
    if marker.is_file() and (not verify or marker.read_text().strip() == expected):
        return "already prepared"
    if not archive.is_file():
        raise DataError(f"{archive}: pack not found")
    actual = sha256_file(archive, progress) if verify else ""
    if verify and actual != expected:
        raise DataError(
            f"{archive}: checksum mismatch (SHA256SUMS says {expected}, file is {actual}); "
            "the pack is corrupt or incomplete, copy it again"
        )
    _extract(archive, target, pack.folder, progress)
    marker.write_text(f"{actual or 'unverified'}\n")
    return "extracted"


def copy_extras(source: Path, dest: Path, pack: Pack, sums: dict[str, str], verify: bool) -> bool:
    """Copy ``pack.extras`` from ``source`` into ``dest`` where absent or different (checked
    against ``SHA256SUMS`` first); whether any was copied."""
    copied = False
    for name in pack.extras:
        origin, target = source / name, dest / name
        if not origin.is_file():
            raise DataError(f"{origin}: not found (it belongs beside {pack.file})")
        expected = sums.get(name)
        if verify and expected is None:
            raise DataError(f"{source / SUMS_FILE}: no checksum for {name}")
        actual = sha256_file(origin)
        if verify and actual != expected:
            raise DataError(
                f"{origin}: checksum mismatch (SHA256SUMS says {expected}, file is {actual}); "
                "copy it again"
            )
        if target.is_file() and sha256_file(target) == actual:
            continue
        tmp = target.with_name(f".{name}.tmp{os.getpid()}")
        shutil.copyfile(origin, tmp)
        os.replace(tmp, target)
        copied = True
    return copied


def _extract(archive: Path, target: Path, folder: str, progress: bool) -> None:
    """Extract ``archive`` (holding ``folder/``) into ``target`` via a temporary folder."""
    dest = target / folder
    tmp = Path(tempfile.mkdtemp(prefix=f".extract-{folder}-", dir=target))
    try:
        size = archive.stat().st_size
        with archive.open("rb") as raw, _bar(size, f"extracting {archive.name}", progress) as bar:
            reader = _Counting(raw, bar)
            with tarfile.open(fileobj=reader, mode="r|gz") as tar:  # type: ignore[call-overload]
                for member in tar:
                    _check_member(archive, member, folder)
                    tar.extract(member, tmp, filter="data")
        extracted = tmp / folder
        if not extracted.is_dir():
            raise DataError(f"{archive}: does not contain the folder {folder}/")
        if dest.exists():  # a copy without our marker (e.g. extracted by hand): refresh in place
            shutil.copytree(extracted, dest, dirs_exist_ok=True)
        else:
            extracted.rename(dest)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: cannot extract ({exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_member(archive: Path, member: tarfile.TarInfo, folder: str) -> None:
    top = member.name.lstrip("./").split("/", 1)[0]
    if top != folder:
        raise DataError(f"{archive}: unexpected entry {member.name!r} outside {folder}/")


class _Counting:
    """A read-only file wrapper that advances a progress bar by the bytes read."""

    def __init__(self, raw: BinaryIO, bar: tqdm) -> None:
        self.raw, self.bar = raw, bar

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.bar.update(len(data))
        return data


def _bar(total: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=not enabled, leave=False)
