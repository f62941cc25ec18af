"""read_image on the hostile corpus (tests/corpus.py) and on the reader's own options."""

from __future__ import annotations

import io
import re
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
from tests.corpus import BLUE, RED, WHITE, Sample, check_image, corpus, encode, noise_jpeg, png_raw

SAMPLES = corpus()


def pixel(img: Image.Image, xy: tuple[int, int] = (0, 0)) -> tuple[int, ...]:
    return tuple(img.getpixel(xy))


def test_corpus_is_large_and_mixed() -> None:
    assert len(SAMPLES) >= 40
    assert sum(s.readable for s in SAMPLES) >= 20 and sum(not s.readable for s in SAMPLES) >= 15
    assert len({s.name for s in SAMPLES}) == len(SAMPLES)


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_corpus_file_is_read_or_refused_by_name(sample: Sample, tmp_path: Path) -> None:
    path = tmp_path / sample.name
    path.write_bytes(sample.data)
    if sample.readable:
        check_image(sample, read_image(path))
        return
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert re.search(sample.error, message), message
    assert str(path) in message and isinstance(info.value, ValueError)


def test_16bit_grey_png_is_scaled_not_clipped() -> None:
    arr = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    img = read_image(encode(Image.fromarray(arr), "PNG"))
    got = np.asarray(img)[..., 0]
    np.testing.assert_array_equal(got, [[0, 255], [128, 4]])


def test_high_depth_scaling_follows_bit_depth_not_content() -> None:
    """A dark 16-bit frame stays dark: value 200 is 200/65535 of white in every image, whatever
    the image's own maximum; floats are read as 0…1."""
    dark = np.array([[0, 200], [255, 128]], dtype=np.uint16)
    brighter = np.array([[0, 200], [256, 128]], dtype=np.uint16)
    for arr in (dark, brighter):
        got = np.asarray(read_image(encode(Image.fromarray(arr), "PNG")))[..., 0]
        np.testing.assert_array_equal(got, [[0, 1], [1, 0]])
    for peak in (1.0, 1.01):
        arr = np.array([[0.0, 0.5], [peak, 0.25]], dtype=np.float32)
        got = np.asarray(read_image(encode(Image.fromarray(arr), "TIFF")))[..., 0]
        np.testing.assert_array_equal(got, [[0, 128], [255, 64]])


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


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = noise_jpeg(128)
    refuse(data[: len(data) // 2], tmp_path, "cut.jpg", match="truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


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
