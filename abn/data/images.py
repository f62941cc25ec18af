"""The one safe image reader used by every entry point (app uploads, CLI, datasets).

:func:`read_image` accepts a path, raw bytes or a binary file object and returns an RGB
``PIL.Image``: EXIF orientation applied, alpha composited on white, 16-bit and float images
scaled to 8 bits, first frame of animations. Anything it cannot read *fully and safely* raises
:class:`ImageReadError` with a message naming the file. Truncated files are never loaded
silently: ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left ``False`` and every image is fully decoded.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from abn.data.errors import ImageReadError, ImageTooLargeError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "SUPPORTED_EXTENSIONS",
    "ImageReadError",
    "ImageTooLargeError",
    "is_image_file",
    "read_image",
]

#: Largest image (width × height) read by default; override per call or with the env variable.
DEFAULT_MAX_PIXELS = 40_000_000
MAX_PIXELS_ENV = "ABN_MAX_IMAGE_PIXELS"

#: File-name extensions treated as images (lower case).
SUPPORTED_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
)

# Pillow plugins we allow to parse untrusted bytes (JPEG also opens multi-picture MPO files).
_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")

ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has a supported image extension (case-insensitive, hidden files excluded)."""
    name = os.fspath(path)
    base = os.path.basename(name)
    return not base.startswith(".") and os.path.splitext(base)[1].lower() in SUPPORTED_EXTENSIONS


def resolve_max_pixels(max_pixels: int | None = None) -> int:
    """``max_pixels`` if given, else ``$ABN_MAX_IMAGE_PIXELS``, else :data:`DEFAULT_MAX_PIXELS`."""
    if max_pixels is not None:
        return int(max_pixels)
    env = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not env:
        return DEFAULT_MAX_PIXELS
    try:
        return int(env.replace("_", ""))
    except ValueError:
        raise ImageReadError(f"{MAX_PIXELS_ENV}={env!r} is not an integer") from None


def read_image(
    source: ImageSource,
    *,
    max_pixels: int | None = None,
    name: str | None = None,
) -> Image.Image:
    """Read one image safely and return it as an RGB ``PIL.Image`` detached from any file.

    Args:
        source: a path, the file's bytes, or a binary file object (e.g. a Streamlit upload).
        max_pixels: refuse images with more than this many pixels (decompression-bomb guard);
            ``None`` means ``$ABN_MAX_IMAGE_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`.
        name: how to call the file in error messages (default: the path or the object's name).

    Raises:
        ImageTooLargeError: image larger than ``max_pixels`` (from its header, before decoding).
        ImageReadError: empty, truncated or corrupt file; text/HTML/SVG; unknown format;
            unreadable path; a header beyond Pillow's own bomb limit (refused as it opens).
    """
    limit = resolve_max_pixels(max_pixels)
    label = name or _source_name(source)
    data = _read_bytes(source, label)
    if not data:
        raise ImageReadError(f"{label}: empty file (0 bytes), not an image")
    img = _open(data, label)
    try:
        _check_size(img, limit, label)
        _decode(img, label)
        return _to_rgb(_exif_transpose(img), label)
    finally:
        img.close()


def _source_name(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    file_name = getattr(source, "name", None)
    if isinstance(file_name, str) and file_name:
        return file_name
    return "<image bytes>"


def _read_bytes(source: ImageSource, label: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            reason = "is a folder" if path.is_dir() else "does not exist"
            raise ImageReadError(f"{label}: {reason}, not an image file")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ImageReadError(f"{label}: cannot read file ({exc.strerror or exc})") from exc
    if hasattr(source, "read"):
        if hasattr(source, "seek"):
            with contextlib.suppress(OSError, ValueError):
                source.seek(0)
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise ImageReadError(f"{label}: file object must be opened in binary mode")
        return bytes(data)
    raise TypeError(f"read_image: unsupported source type {type(source).__name__}")


def _open(data: bytes, label: str) -> Image.Image:
    Image.init()  # register every plugin so ``formats=`` can name them (no-op after the first)
    try:
        return Image.open(io.BytesIO(data), formats=_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{label}: image is too large to read safely ({exc})") from exc
    except UnidentifiedImageError:
        raise ImageReadError(f"{label}: {_describe_non_image(data)}") from None
    except Exception as exc:  # Pillow raises many types on corrupt headers
        raise ImageReadError(f"{label}: corrupt image header ({exc})") from exc


# Leading bytes of the formats we read: a file that starts like one but cannot be opened is broken.
_MAGIC = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


# Other files people upload by mistake, named so the message says what the file is.
_OTHER_FILES = {
    b"%PDF-": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (or an Office document)",
    b"%!PS": "a PostScript/EPS file",
    b"\x00\x00\x01\x00": "an ICO icon",
    b"8BPS": "a Photoshop (PSD) file",
}


def _broken_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((fmt for magic, fmt in _MAGIC.items() if data.startswith(magic)), None)


def _describe_non_image(data: bytes) -> str:
    fmt = _broken_format(data)
    if fmt is not None:
        return f"truncated or corrupt {fmt} file ({len(data):,} bytes), cannot read its header"
    other = next((what for magic, what in _OTHER_FILES.items() if data.startswith(magic)), None)
    supported = ", ".join(ext.lstrip(".") for ext in SUPPORTED_EXTENSIONS)
    if other is not None:
        return f"is {other}, not a supported image (supported: {supported})"
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in head:
        return "is an SVG (vector) image, which is not supported; convert it to PNG or JPEG"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:512]:
        return "is an HTML/text document, not an image (renamed file or a saved web page?)"
    if _looks_like_text(data[:2048]):
        return "is a text file, not an image"
    return f"unknown or unsupported image format (supported: {supported})"


def _looks_like_text(chunk: bytes) -> bool:
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return bool(text) and printable / len(text) > 0.95


def _check_size(img: Image.Image, limit: int, label: str) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageReadError(f"{label}: image has no pixels ({width}×{height})")
    if width * height > limit:
        raise ImageTooLargeError(
            f"{label}: image is too large ({width}×{height} = {width * height:,} pixels; "
            f"the limit is {limit:,}: set {MAX_PIXELS_ENV} to a larger number of pixels to "
            "allow it)",
            label,
            width,
            height,
            limit,
        )


def _decode(img: Image.Image, label: str) -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ImageReadError(
            f"{label}: refusing to read while PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True "
            "(truncated files would load silently)"
        )
    try:
        img.seek(0)
        img.load()
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{label}: image is too large to read safely ({exc})") from exc
    except Exception as exc:
        msg = str(exc)
        kind = "truncated" if "truncated" in msg or isinstance(exc, EOFError) else "corrupt"
        raise ImageReadError(f"{label}: {kind} image file, cannot decode it fully ({msg})") from exc


def _exif_transpose(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img) or img
    except Exception:  # a broken EXIF block should not make a valid image unreadable
        return img


def _to_rgb(img: Image.Image, label: str) -> Image.Image:
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_rgb(img)
    if mode in _ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageReadError(f"{label}: cannot convert mode {mode!r} to RGB ({exc})") from exc


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float greyscale to 8-bit RGB, by bit depth, never by content:
    integers span 0…65535 (16-bit; 0…65535 → 0…255, larger values clipped), floats span
    0…1 (× 255, clipped). So a pixel value means the same in every image of a dataset.
    """
    arr = np.asarray(img)
    if img.mode == "F":
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0) * 255.0
    else:
        arr = np.clip(arr.astype(np.int64), 0, 65535) / 257.0
    grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")
