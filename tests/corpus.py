"""A hostile image corpus built on the fly: files every entry point must read or refuse clearly.

Each :class:`Sample` is either *readable* (``pixel``/``size`` say what the RGB result must hold)
or *refused* (``error`` is a regex of the specific message :func:`abn.data.read_image` gives).
The library tests (``tests/data/test_images.py``), the CLI (``tests/explain/test_cli_corpus.py``)
and the dashboard (``tests/app/test_corpus_upload.py``) all run the same :func:`corpus`.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


@dataclass(frozen=True)
class Sample:
    """One corpus file: its name, its bytes and what reading it must give."""

    name: str
    data: bytes
    pixel: tuple[int, int, int] | None = None  # expected RGB at (0, 0), ± ``tol``
    size: tuple[int, int] | None = None  # expected (width, height) after EXIF orientation
    error: str | None = None  # regex of the refusal message
    tol: int = 3

    @property
    def readable(self) -> bool:
        return self.error is None


# --- encoders ------------------------------------------------------------------------------


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_raw(width: int, height: int, bit_depth: int, color_type: int, raw: bytes) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit colour PNGs)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def png16_rgb(pixel: tuple[int, int, int], size: int = 2, alpha: int | None = None) -> bytes:
    channels = pixel if alpha is None else (*pixel, alpha)
    row = b"\x00" + struct.pack(f">{len(channels) * size}H", *(channels * size))
    return png_raw(size, size, 16, 2 if alpha is None else 6, row * size)


def noise(size: int = 64, seed: int = 0) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(arr)


def noise_jpeg(size: int = 64) -> bytes:
    return encode(noise(size), "JPEG", quality=90)


def solid(color: tuple[int, ...], size: tuple[int, int] = (3, 2), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, color)


def _palette_with_transparency() -> bytes:
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    return encode(pal, "PNG", transparency=0)


def _exif_rotated_jpeg() -> bytes:
    src = Image.new("RGB", (4, 2), RED)
    src.paste(BLUE, (2, 0, 4, 2))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    return encode(src, "JPEG", exif=exif.tobytes(), quality=95)


def _animated_gif() -> bytes:
    frames = [solid(c, (4, 4)) for c in (RED, BLUE, WHITE)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def _multipage_tiff() -> bytes:
    pages = [solid(c, (5, 5)) for c in (BLUE, RED)]
    return encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def _grey16_png() -> bytes:
    return encode(Image.fromarray(np.full((3, 3), 65535, np.uint16)), "PNG")


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("photo.jpg", noise_jpeg(8))
    return buf.getvalue()


def _bad_crc_png() -> bytes:
    data = bytearray(encode(noise(16, seed=2), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 8] ^= 0xFF  # flip bits inside the compressed pixel data
    return bytes(data)


def _cut(data: bytes, fraction: float = 0.5) -> bytes:
    return data[: int(len(data) * fraction)]


# --- the corpus ----------------------------------------------------------------------------

UNKNOWN = "unknown or unsupported image format"
BROKEN = "truncated|corrupt"


def corpus() -> list[Sample]:
    """The corpus: 34 files that must be read, 18 that must be refused (52 in all)."""
    ok = [
        Sample("rgb.png", encode(solid(RED), "PNG"), RED, (3, 2)),
        Sample("grey-L.png", encode(solid(200, mode="L"), "PNG"), (200, 200, 200), (3, 2)),
        Sample("la-transparent.png", encode(solid((0, 0), mode="LA"), "PNG"), WHITE),
        Sample("la-opaque.png", encode(solid((10, 255), mode="LA"), "PNG"), (10, 10, 10)),
        Sample("rgba-transparent.png", encode(solid((255, 0, 0, 0), mode="RGBA"), "PNG"), WHITE),
        Sample("rgba-opaque.png", encode(solid((0, 0, 255, 255), mode="RGBA"), "PNG"), BLUE),
        Sample("rgba-half.png", encode(solid((0, 0, 0, 128), mode="RGBA"), "PNG"), (127,) * 3),
        Sample("pa.tif", encode(solid((0, 0), mode="PA"), "TIFF"), WHITE),
        Sample("cmyk.jpg", encode(solid((0, 255, 255, 0), mode="CMYK"), "JPEG"), RED),
        Sample("cmyk.tiff", encode(solid((0, 0, 0, 0), mode="CMYK"), "TIFF"), WHITE),
        Sample("bilevel.png", encode(solid(1, mode="1"), "PNG"), WHITE),
        Sample("int32-16bit-range.tif", encode(solid(40000, mode="I"), "TIFF"), (156,) * 3),
        # 32-bit integers are read as 16-bit data, whatever the image's own range
        Sample("int32-small-values.tif", encode(solid(7710, mode="I"), "TIFF"), (30,) * 3),
        Sample("float-unit.tif", encode(solid(0.5, mode="F"), "TIFF"), (128,) * 3),
        Sample("float-clipped.tif", encode(solid(300.0, mode="F"), "TIFF"), WHITE),
        Sample("grey-16bit.png", _grey16_png(), WHITE, (3, 3)),
        Sample("rgb-16bit.png", png16_rgb((65535, 0, 32896)), (255, 0, 128), (2, 2)),
        Sample("rgba-16bit-clear.png", png16_rgb((0, 65535, 0), alpha=0), WHITE),
        Sample("rgba-16bit-opaque.png", png16_rgb((0, 65535, 0), alpha=65535), (0, 255, 0)),
        Sample("palette-transparent.png", _palette_with_transparency(), WHITE, (2, 1)),
        Sample("palette.gif", encode(solid(BLUE, (6, 6)).convert("P"), "GIF"), BLUE, (6, 6)),
        Sample("animated.gif", _animated_gif(), RED, (4, 4)),
        Sample("multipage.tiff", _multipage_tiff(), BLUE, (5, 5)),
        Sample("exif-rotated.jpg", _exif_rotated_jpeg(), RED, (2, 4), tol=30),
        Sample("progressive.jpg", encode(solid(RED, (16, 16)), "JPEG", progressive=True), RED,
               (16, 16), tol=6),
        Sample("grey.jpg", encode(solid(90, (8, 8), "L"), "JPEG"), (90,) * 3, (8, 8)),
        Sample("noise.jpeg", noise_jpeg(), None, (64, 64)),
        Sample("bmp.bmp", encode(solid(BLUE), "BMP"), BLUE, (3, 2)),
        Sample("lossless.webp", encode(solid(BLUE), "WEBP", lossless=True), BLUE, (3, 2)),
        Sample("lossy.webp", encode(solid(RED, (16, 16)), "WEBP", quality=90), RED, (16, 16),
               tol=12),
        Sample("1x1.png", encode(solid(RED, (1, 1)), "PNG"), RED, (1, 1)),
        Sample("tall-1x300.png", encode(solid(BLUE, (1, 300)), "PNG"), BLUE, (1, 300)),
        Sample("UPPER-CASE.JPG", encode(solid(RED, (8, 8)), "JPEG"), RED, (8, 8), tol=6),
        Sample("png-named.jpg", encode(solid(BLUE, (5, 4)), "PNG"), BLUE, (5, 4)),
    ]  # fmt: skip
    html = b"<!DOCTYPE html>\n<html><head><title>404</title></head><body>nope</body></html>"
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="4"></svg>'
    big_header = png_raw(30_000, 30_000, 8, 0, b"")  # 900 Mpx claimed, no pixel data
    refused = [
        Sample("empty.jpg", b"", error="empty file"),
        Sample("truncated.jpg", _cut(noise_jpeg(128)), error="truncated"),
        Sample("truncated.png", _cut(encode(noise(64, 1), "PNG")), error=BROKEN),
        Sample("truncated.gif", _cut(_animated_gif(), 0.3), error=BROKEN),
        Sample("truncated.webp", _cut(encode(noise(32, 3), "WEBP")), error=BROKEN),
        Sample("header-only.jpg", noise_jpeg()[:20], error=BROKEN),
        Sample("bad-crc.png", _bad_crc_png(), error=BROKEN),
        Sample("page.png", html, error="HTML"),
        Sample("logo.svg", svg, error="SVG"),
        Sample("svg-named.png", svg, error="SVG"),
        Sample("notes.jpg", b"just some notes\nline two\n", error="text file"),
        Sample("data.png", b'{"label": "cat", "pixels": [1, 2, 3]}', error="text file"),
        Sample("random.jpg", random.Random(0).randbytes(4096), error=UNKNOWN),
        Sample("document.png", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n" * 4,
               error="PDF document"),
        Sample("archive.jpg", _zip_bytes(), error="ZIP archive"),
        Sample("postscript.png", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 4 4\n" +
               bytes(range(128, 256)), error="PostScript"),
        Sample("icon.png", encode(solid(RED, (16, 16)), "ICO"), error="ICO icon"),
        Sample("huge.png", big_header, error="too large"),
    ]  # fmt: skip
    return ok + refused


def write_corpus(folder: Path) -> list[Sample]:
    """Write every sample into ``folder`` (created) and return them."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = corpus()
    for s in samples:
        (folder / s.name).write_bytes(s.data)
    return samples


def check_image(sample: Sample, img: Image.Image) -> None:
    """Assert a read image is what ``sample`` promises."""
    assert img.mode == "RGB", (sample.name, img.mode)
    if sample.size is not None:
        assert img.size == sample.size, (sample.name, img.size)
    if sample.pixel is not None:
        got = img.getpixel((0, 0))
        close = all(abs(a - b) <= sample.tol for a, b in zip(got, sample.pixel, strict=True))
        assert close, (sample.name, got, sample.pixel)
