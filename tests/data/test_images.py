"""read_image on a corpus generated on the fly: every mode, odd files, and files to refuse."""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from abn.data.images import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    SUPPORTED_EXTENSIONS,
    ImageReadError,
    is_image_file,
    read_image,
)

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


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


def noise_jpeg(size: int = 64) -> bytes:
    arr = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return encode(Image.fromarray(arr), "JPEG", quality=90)


def pixel(img: Image.Image, xy: tuple[int, int] = (0, 0)) -> tuple[int, ...]:
    return tuple(img.getpixel(xy))


def assert_close(got: tuple[int, ...], want: tuple[int, ...], tol: int = 2) -> None:
    assert all(abs(a - b) <= tol for a, b in zip(got, want, strict=True)), (got, want)


# --- images that must be read -------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: encode(Image.new("RGB", (3, 2), RED), "PNG"), RED),
        (lambda: encode(Image.new("L", (3, 2), 200), "PNG"), (200, 200, 200)),
        (lambda: encode(Image.new("LA", (3, 2), (0, 0)), "PNG"), WHITE),  # transparent → white
        (lambda: encode(Image.new("LA", (3, 2), (10, 255)), "PNG"), (10, 10, 10)),
        (lambda: encode(Image.new("RGBA", (3, 2), (255, 0, 0, 0)), "PNG"), WHITE),
        (lambda: encode(Image.new("RGBA", (3, 2), (0, 0, 255, 255)), "PNG"), BLUE),
        (lambda: encode(Image.new("RGBA", (3, 2), (0, 0, 0, 128)), "PNG"), (127, 127, 127)),
        (lambda: encode(Image.new("PA", (3, 2), (0, 0)), "TIFF"), WHITE),
        (lambda: encode(Image.new("CMYK", (3, 2), (0, 255, 255, 0)), "JPEG"), RED),
        (lambda: encode(Image.new("CMYK", (3, 2), (0, 0, 0, 0)), "TIFF"), WHITE),
        (lambda: encode(Image.new("1", (3, 2), 1), "PNG"), WHITE),
        (lambda: encode(Image.new("I", (3, 2), 40000), "TIFF"), (156, 156, 156)),
        (lambda: encode(Image.new("I", (3, 2), 77), "TIFF"), (77, 77, 77)),
        (lambda: encode(Image.new("F", (3, 2), 0.5), "TIFF"), (128, 128, 128)),
        (lambda: encode(Image.new("F", (3, 2), 300.0), "TIFF"), WHITE),
        (lambda: encode(Image.new("RGB", (3, 2), BLUE), "BMP"), BLUE),
        (lambda: encode(Image.new("RGB", (3, 2), BLUE), "WEBP", lossless=True), BLUE),
        (lambda: encode(Image.new("RGB", (1, 1), RED), "PNG"), RED),
        (lambda: png16_rgb((65535, 0, 32896)), (255, 0, 128)),
        (lambda: png16_rgb((0, 65535, 0), alpha=0), WHITE),
        (lambda: png16_rgb((0, 65535, 0), alpha=65535), (0, 255, 0)),
    ],
    ids=[
        "rgb", "L", "LA-transparent", "LA-opaque", "RGBA-transparent", "RGBA-opaque",
        "RGBA-half", "PA", "CMYK-jpeg", "CMYK-tiff", "1bit", "I-16bit-range", "I-8bit-range",
        "F-unit", "F-clipped", "bmp", "webp", "1x1", "png16-rgb", "png16-rgba-clear",
        "png16-rgba-opaque",
    ],
)  # fmt: skip
def test_reads_mode_as_rgb(make, expected) -> None:
    img = read_image(make())
    assert img.mode == "RGB"
    assert_close(pixel(img), expected, tol=3)


def test_16bit_grey_png_is_scaled_not_clipped() -> None:
    arr = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    img = read_image(encode(Image.fromarray(arr), "PNG"))
    got = np.asarray(img)[..., 0]
    np.testing.assert_array_equal(got, [[0, 255], [128, 4]])


def test_palette_with_transparency_composited_on_white() -> None:
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    img = read_image(encode(pal, "PNG", transparency=0))
    assert pixel(img, (0, 0)) == WHITE
    assert pixel(img, (1, 0)) == BLUE


def test_exif_orientation_applied() -> None:
    src = Image.new("RGB", (4, 2), RED)
    src.paste(BLUE, (2, 0, 4, 2))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    img = read_image(encode(src, "JPEG", exif=exif.tobytes(), quality=95))
    assert img.size == (2, 4)
    assert_close(pixel(img, (0, 0)), RED, tol=30)
    assert_close(pixel(img, (1, 3)), BLUE, tol=30)


def test_animated_gif_gives_first_frame() -> None:
    frames = [Image.new("RGB", (4, 4), c) for c in (RED, BLUE, WHITE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    img = read_image(data)
    assert pixel(img) == RED
    assert getattr(img, "n_frames", 1) == 1


def test_accepts_path_str_bytes_and_file(tmp_path: Path) -> None:
    data = encode(Image.new("RGB", (5, 7), RED), "PNG")
    path = tmp_path / "x.png"
    path.write_bytes(data)
    stream = io.BytesIO(data)
    stream.read(3)  # an upload whose position moved: read from the start anyway
    for source in (path, str(path), data, bytearray(data), stream):
        img = read_image(source)
        assert img.size == (5, 7)
        assert pixel(img) == RED


def test_result_is_detached_from_source(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(noise_jpeg())
    img = read_image(path)
    path.unlink()
    assert np.asarray(img).shape == (64, 64, 3)


def test_supported_extensions() -> None:
    assert ".jpg" in SUPPORTED_EXTENSIONS and ".png" in SUPPORTED_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in SUPPORTED_EXTENSIONS)
    assert is_image_file("a/B.JPEG") and not is_image_file(".hidden.jpg")
    assert not is_image_file("notes.txt") and not is_image_file("x.svg")


# --- files that must be refused, naming the file ------------------------------------------


def refuse(data: bytes, tmp_path: Path, filename: str, *, match: str, **kw: object) -> str:
    path = tmp_path / filename
    path.write_bytes(data)
    with pytest.raises(ImageReadError, match=match) as info:
        read_image(path, **kw)
    message = str(info.value)
    assert str(path) in message
    assert isinstance(info.value, ValueError)
    return message


def test_empty_file(tmp_path: Path) -> None:
    refuse(b"", tmp_path, "empty.jpg", match="empty")


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = noise_jpeg(128)
    refuse(data[: len(data) // 2], tmp_path, "cut.jpg", match="truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_png_is_refused(tmp_path: Path) -> None:
    arr = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(arr), "PNG")
    refuse(data[: len(data) // 2], tmp_path, "cut.png", match="truncated|corrupt")


def test_html_renamed_png(tmp_path: Path) -> None:
    html = b"<!DOCTYPE html>\n<html><head><title>404</title></head><body>nope</body></html>"
    refuse(html, tmp_path, "photo.png", match="HTML")


def test_svg(tmp_path: Path) -> None:
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="4"></svg>'
    refuse(svg, tmp_path, "logo.svg", match="SVG")


def test_text_file(tmp_path: Path) -> None:
    refuse(b"just some notes\nline two\n", tmp_path, "notes.jpg", match="text file")


def test_random_bytes(tmp_path: Path) -> None:
    data = random.Random(0).randbytes(4096)
    refuse(data, tmp_path, "noise.jpg", match="unknown or unsupported image format")


def test_unsupported_container(tmp_path: Path) -> None:
    # a format Pillow could parse but we do not accept (ICO)
    data = encode(Image.new("RGB", (16, 16), RED), "ICO")
    refuse(data, tmp_path, "icon.png", match="unsupported")


def test_decompression_bomb_limit(tmp_path: Path) -> None:
    data = encode(Image.new("L", (1000, 1000)), "PNG")  # 1 Mpx, a few kB
    refuse(data, tmp_path, "bomb.png", match="too large", max_pixels=100_000)
    assert read_image(data, max_pixels=1_000_000).size == (1000, 1000)


def test_bomb_limit_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(Image.new("L", (100, 100)), "PNG")
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    refuse(data, tmp_path, "env.png", match="too large")
    assert read_image(data, max_pixels=DEFAULT_MAX_PIXELS).size == (100, 100)  # explicit wins


def test_huge_header_refused_before_decoding(tmp_path: Path) -> None:
    header_only = png_raw(30_000, 30_000, 8, 0, b"")  # 900 Mpx claimed, no pixel data
    refuse(header_only, tmp_path, "huge.png", match="too large")
    refuse(header_only, tmp_path, "huge2.png", match="too large", max_pixels=10**12)


def test_missing_path_and_name_override(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageReadError, match=r"upload\.png: empty"):
        read_image(b"", name="upload.png")
    with pytest.raises(ImageReadError, match="stream.bin"):
        stream = io.BytesIO(b"\x00\x01garbage")
        stream.name = "stream.bin"
        read_image(stream)
