"""Colormaps, overlays, grids and map export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from abn.explain import render


@pytest.mark.parametrize("name", render.COLORMAPS)
def test_colormap_tables(name):
    table = render.colormap_table(name)
    assert table.shape == (256, 3) and table.dtype == np.uint8
    assert len({tuple(c) for c in table}) > 100  # a gradient, not a constant


def test_known_colormap_values():
    jet, viridis = render.colormap_table("jet"), render.colormap_table("viridis")
    assert tuple(jet[0]) == (0, 0, 128) and tuple(jet[-1]) == (128, 0, 0)
    assert tuple(viridis[0]) == (68, 1, 84) and tuple(viridis[-1]) == (253, 231, 37)
    with pytest.raises(ValueError, match="unknown colormap"):
        render.colormap_table("rainbow-unicorn")


def test_overlay_inputs_and_opacity():
    img = Image.new("RGB", (20, 10), (10, 200, 30))
    m = torch.linspace(0, 1, 5 * 10).view(5, 10)  # low-res map, resized to the image
    out = render.overlay(img, m, colormap="turbo", alpha=0.0)
    assert out.size == (20, 10) and np.array_equal(np.asarray(out), np.asarray(img))
    full = np.asarray(render.overlay(img, m.numpy(), colormap="gray", alpha=1.0))
    assert full[0, 0].tolist() == [0, 0, 0] and full[-1, -1].tolist() == [255, 255, 255]
    as_tensor = render.overlay(torch.rand(3, 10, 20), m, alpha=0.5)
    assert as_tensor.size == (20, 10)
    with pytest.raises(ValueError, match="alpha"):
        render.overlay(img, m, alpha=1.5)


def test_grid_with_and_without_titles():
    pics = [Image.new("RGB", (16, 16), c) for c in ("red", "green", "blue")]
    plain = render.grid(pics, pad=2)
    assert plain.size == (3 * 16 + 4 * 2, 16 + 2 * 2)
    titled = render.grid(pics, ["abn", "gradcam", "a very long title indeed"], columns=2)
    assert titled.width == 2 * 16 + 3 * 4 and titled.height > 2 * 16
    with pytest.raises(ValueError, match="titles"):
        render.grid(pics, ["one"])


def test_export_png_and_npy(tmp_path):
    m = torch.rand(7, 9)
    npy = np.load(render.save_map_npy(m, tmp_path / "a" / "m.npy"))
    assert npy.dtype == np.float32 and np.array_equal(npy, m.numpy())
    gray = Image.open(render.save_map_png(m, tmp_path / "g.png"))
    assert gray.mode == "L" and gray.size == (9, 7)
    color = Image.open(render.save_map_png(m, tmp_path / "c.png", colormap="inferno"))
    assert color.mode == "RGB"


def test_denormalize_roundtrip():
    from abn.explain.preprocess import preprocess

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8))
    x = preprocess(img, input_size=(8, 8), mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25))
    back = render.denormalize(x, (0.4, 0.5, 0.6), (0.2, 0.3, 0.25))[0]
    assert np.abs(np.asarray(back, int) - np.asarray(img, int)).max() <= 1
