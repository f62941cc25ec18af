"""The images inside a ZIP archive, read safely: in memory, never extracted to disk.

:func:`read_zip` returns the bytes of every image member (each still to be read with
:func:`~abn.data.images.read_image`, which applies the pixel limit) and the members it would not
read, each with the reason. A member whose name would leave a folder when extracted (``..``,
an absolute path, a drive letter), a symbolic link, an encrypted member, a nested archive or a
file without an image extension is listed, not read. A whole archive is refused
(:class:`ArchiveError`) when it is not a ZIP, has more members than
``$ABN_MAX_ARCHIVE_MEMBERS`` or would expand to more than ``$ABN_MAX_ARCHIVE_BYTES``: the sizes
the archive declares are checked before anything is decompressed, and every read is bounded, so
an archive whose headers understate its content (a zip bomb) is stopped at the limit too.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from abn.data.errors import ImageReadError
from abn.data.images import is_image_file

__all__ = [
    "DEFAULT_MAX_ARCHIVE_BYTES",
    "DEFAULT_MAX_ARCHIVE_MEMBERS",
    "MAX_ARCHIVE_BYTES_ENV",
    "MAX_ARCHIVE_MEMBERS_ENV",
    "ArchiveError",
    "ZipContents",
    "is_zip",
    "read_zip",
]

#: Most bytes one archive may expand to (all members together); override with the env variable.
DEFAULT_MAX_ARCHIVE_BYTES = 512 * 2**20
MAX_ARCHIVE_BYTES_ENV = "ABN_MAX_ARCHIVE_BYTES"
#: Most members (files and folders) one archive may hold.
DEFAULT_MAX_ARCHIVE_MEMBERS = 5_000
MAX_ARCHIVE_MEMBERS_ENV = "ABN_MAX_ARCHIVE_MEMBERS"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a member first, or an empty archive

Source = str | os.PathLike[str] | bytes | BinaryIO


class ArchiveError(ImageReadError):
    """A whole archive was refused (not a ZIP, too many members, expands beyond the limit)."""


@dataclass
class ZipContents:
    """What :func:`read_zip` found: ``images`` as (member name, bytes) in the archive's order,
    ``skipped`` as (member name, reason) for the members it did not read."""

    images: list[tuple[str, bytes]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def is_zip(head: bytes) -> bool:
    """Whether bytes starting with ``head`` (4 or more) are a ZIP archive."""
    return head[:4] in _ZIP_MAGIC


def _limit(env: str, default: int) -> int:
    text = os.environ.get(env, "").strip()
    if not text:
        return default
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise ArchiveError(f"{env}={text!r} is not an integer") from None


def unsafe_name(name: str) -> str | None:
    """Why extracting a member called ``name`` would be unsafe, or ``None`` when it is not."""
    if "\x00" in name:
        return "its name holds a NUL character"
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path (would be written outside the target folder)"
    if ".." in parts:
        return "its path climbs out of the archive with '..' (path traversal)"
    return None


def _skip_reason(info: zipfile.ZipInfo) -> str | None:
    """Why ``info`` is not read (a traversal, link, encrypted or non-image member)."""
    unsafe = unsafe_name(info.filename)
    if unsafe:
        return f"refused: {unsafe}"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "refused: a symbolic link"
    if info.flag_bits & 0x1:
        return "encrypted (password-protected) member, not read"
    if PurePosixPath(info.filename.replace("\\", "/")).suffix.lower() == ".zip":
        return "an archive inside the archive, not opened"
    if not is_image_file(info.filename.replace("\\", "/")):
        return "not an image file (by its extension)"
    return None


def _open(source: Source, label: str) -> zipfile.ZipFile:
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
        raise ArchiveError(f"{label}: does not exist or is not a file")
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ArchiveError(f"{label}: not a readable ZIP archive ({exc})") from None


def _check_declared(infos: list[zipfile.ZipInfo], label: str, members: int, total: int) -> None:
    if len(infos) > members:
        raise ArchiveError(
            f"{label}: refused, it holds {len(infos):,} members (the limit is {members:,}; "
            f"set {MAX_ARCHIVE_MEMBERS_ENV} to allow more)"
        )
    declared = sum(i.file_size for i in infos if not i.is_dir())
    if declared > total:
        raise ArchiveError(
            f"{label}: refused, it would expand to {declared:,} bytes (the limit is {total:,}: "
            f"a zip bomb, or set {MAX_ARCHIVE_BYTES_ENV} to a larger number of bytes)"
        )


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int, label: str) -> bytes:
    """The member's bytes, never more than ``budget`` + 1 decompressed (an understated size in
    the header is a zip bomb: the whole archive is refused)."""
    with zf.open(info) as f:
        data = f.read(min(budget, info.file_size) + 1)
    if len(data) > info.file_size or len(data) > budget:
        raise ArchiveError(
            f"{label}: refused, member {info.filename!r} expands beyond the size its header "
            "declares (a zip bomb)"
        )
    return data


def read_zip(
    source: Source,
    *,
    name: str | None = None,
    max_bytes: int | None = None,
    max_members: int | None = None,
) -> ZipContents:
    """The image members of a ZIP archive (a path, its bytes or a binary file object).

    Args:
        source: the archive.
        name: how messages call the archive (default: its path or ``"archive"``).
        max_bytes: most bytes all members may expand to (default ``$ABN_MAX_ARCHIVE_BYTES``
            or :data:`DEFAULT_MAX_ARCHIVE_BYTES`).
        max_members: most members (default ``$ABN_MAX_ARCHIVE_MEMBERS`` or
            :data:`DEFAULT_MAX_ARCHIVE_MEMBERS`).

    Raises:
        ArchiveError: not a ZIP, too many members, or it expands beyond ``max_bytes``.
    """
    label = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "archive")
    if max_bytes is None:
        max_bytes = _limit(MAX_ARCHIVE_BYTES_ENV, DEFAULT_MAX_ARCHIVE_BYTES)
    if max_members is None:
        max_members = _limit(MAX_ARCHIVE_MEMBERS_ENV, DEFAULT_MAX_ARCHIVE_MEMBERS)
    out = ZipContents()
    with _open(source, label) as zf:
        infos = zf.infolist()
        _check_declared(infos, label, max_members, max_bytes)
        budget = max_bytes
        for info in infos:
            if info.is_dir():
                continue
            reason = _skip_reason(info)
            if reason:
                out.skipped.append((info.filename, reason))
                continue
            try:
                data = _read_member(zf, info, budget, label)
            except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as exc:
                out.skipped.append((info.filename, f"corrupt member, cannot decompress ({exc})"))
                continue
            budget -= len(data)
            out.images.append((info.filename, data))
    return out
