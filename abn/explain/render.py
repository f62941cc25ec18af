"""Rendering maps: colormaps, overlays, side-by-side grids and export (PNG, NPY).

Shared by the app and the CLI; works on PIL images, torch tensors and numpy arrays and needs
neither matplotlib nor OpenCV. The colormaps are small lookup tables (matplotlib's ``turbo``,
``viridis`` and ``inferno`` sampled at 65 points, within 5/255 of the originals; ``jet`` exactly
from its segment definition) interpolated to 256 entries.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

ImageLike = Image.Image | torch.Tensor | np.ndarray
MapLike = torch.Tensor | np.ndarray

_SAMPLED = {
    "turbo": "30123b351e58392a733d358b4040a2424bb54456c74661d6466be34776ee4680f6458afc4294ff3d9efe"
    "37a8fa2fb2f428bceb22c5e21ccdd819d5cd18ddc219e3b91fe9af27eea432f2983ff68a4ef97d5dfc6f6dfe627d"
    "ff568bff4b99fe42a4fc3caffa37b9f635c3f134cdec34d7e535dfdf37e7d739eecf3af4c73af8be39fbb637fdac"
    "34fea130fe962bfd8a26fb7e21f8721cf46617f05b12eb500ee5470bdf3f08d83706d02f05c82803be2102b41b01"
    "a916019e1001920b018507027a0403",
    "viridis": "44015446075a470d6047136548186a481d6f482374482878472d7b46327e453781443b844240864045"
    "883e49893d4e8a3b528b39568c375b8d355f8d33638d31678e2f6b8e2e6f8e2c728e2a768e297a8e277e8e26828e"
    "25858e23898e228d8d21918c1f948c1f988b1e9c891fa08820a38622a78525ab8228ae802db27d32b67a38b9773f"
    "bc7346c06f4ec36b56c6675ec96267cc5c70cf577ad15184d44b8ed64598d83ea2da37addc30b8de29c2df23cde1"
    "1dd8e219e2e418ece51bf6e620fde725",
    "inferno": "00000402010a04031207051b0b072410092d150b371b0c41210c4a280b532f0a5b3609613d0965440a"
    "684a0c6b510e6c57106e5d126e64156e6a176e71196e771c6d7d1e6d84206b8a226a9025689727669d2964a32c61"
    "a92e5eb0315bb63458bc3754c13a50c73e4ccc4248d24644d74b3fdb503be05536e45a31e8602deb6628ef6c23f1"
    "731df47918f68013f8870ef98e09fb9606fb9d07fca50afcac11fcb418fbbc21fac42af9cb35f7d340f5db4cf3e3"
    "5af2ea69f1f179f3f68af8fb9afcffa4",
}
# matplotlib's jet: (position, value) breakpoints per channel.
_JET = (
    ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
)
COLORMAPS: tuple[str, ...] = ("jet", "turbo", "viridis", "inferno", "gray")


@cache
def colormap_table(name: str) -> np.ndarray:
    """The 256×3 uint8 lookup table of a colormap (``COLORMAPS``)."""
    q = np.linspace(0.0, 1.0, 256)
    if name == "jet":
        channels = [np.interp(q, *zip(*points, strict=True)) for points in _JET]
        table = np.stack(channels, 1) * 255
    elif name == "gray":
        table = np.repeat(q[:, None] * 255, 3, 1)
    elif name in _SAMPLED:
        pts = np.frombuffer(bytes.fromhex(_SAMPLED[name]), np.uint8).reshape(-1, 3)
        xs = np.linspace(0.0, 1.0, len(pts))
        table = np.stack([np.interp(q, xs, pts[:, c].astype(float)) for c in range(3)], 1)
    else:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}")
    return np.round(table).clip(0, 255).astype(np.uint8)


def to_numpy_map(m: MapLike) -> np.ndarray:
    """An H×W float32 array from a tensor/array map (a leading 1-dim is dropped)."""
    if isinstance(m, torch.Tensor):
        m = m.detach().float().cpu().numpy()
    m = np.asarray(m, dtype=np.float32)
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2:
        raise ValueError(f"a map must be H×W, got shape {m.shape}")
    return m


def colorize(m: MapLike, colormap: str = "jet") -> np.ndarray:
    """H×W map in [0, 1] → H×W×3 uint8 RGB."""
    index = np.round(np.nan_to_num(to_numpy_map(m)).clip(0, 1) * 255).astype(np.uint8)
    return colormap_table(colormap)[index]


def to_pil(image: ImageLike) -> Image.Image:
    """An RGB PIL image from PIL, H×W×3 uint8/float array, or 3×H×W / H×W×3 tensor in [0, 1]."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() == 3 and t.shape[0] in (1, 3):
            t = t.permute(1, 2, 0)
        image = t.numpy()
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim == 3 and a.shape[-1] == 1:
        a = np.repeat(a, 3, -1)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"cannot make an RGB image from shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.round(np.clip(a.astype(np.float32), 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a), "RGB")


def denormalize(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> list[Image.Image]:
    """Preprocessed B×3×H×W (or 3×H×W) tensors → PIL images (undo mean/std)."""
    t = images.detach().float().cpu()
    t = t[None] if t.dim() == 3 else t
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return [to_pil(img) for img in (t * s + m).clamp(0, 1)]


def resize_map(m: MapLike, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an H×W map to ``size`` = (height, width), in torch."""
    a = to_numpy_map(m)
    if a.shape == tuple(size):
        return a
    t = torch.from_numpy(a)[None, None]
    out = F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)
    return out[0, 0].numpy()


def overlay(
    image: ImageLike, m: MapLike, *, colormap: str = "jet", alpha: float = 0.5
) -> Image.Image:
    """The map in ``colormap`` blended over ``image`` with opacity ``alpha`` (0 = image only).

    The map is resized to the image (bilinear) when their sizes differ.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    base = to_pil(image)
    heat = colorize(resize_map(m, (base.height, base.width)), colormap)
    blended = (1 - alpha) * np.asarray(base, np.float32) + alpha * heat.astype(np.float32)
    return Image.fromarray(np.round(blended).clip(0, 255).astype(np.uint8), "RGB")


def grid(
    images: Sequence[ImageLike],
    titles: Sequence[str] | None = None,
    *,
    columns: int | None = None,
    pad: int = 4,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Images side by side (``columns`` per row, default all), with optional titles above.

    Cells take the size of the largest image; smaller images are centred.
    """
    pics = [to_pil(i) for i in images]
    if not pics:
        raise ValueError("grid needs at least one image")
    if titles is not None and len(titles) != len(pics):
        raise ValueError(f"got {len(titles)} titles for {len(pics)} images")
    cols = max(1, min(columns or len(pics), len(pics)))
    rows = -(-len(pics) // cols)
    cw, ch = max(p.width for p in pics), max(p.height for p in pics)
    font = ImageFont.load_default()
    th = _text_height(font) + 4 if titles else 0
    canvas = Image.new(
        "RGB", (cols * cw + (cols + 1) * pad, rows * (ch + th) + (rows + 1) * pad), background
    )
    draw = ImageDraw.Draw(canvas)
    for i, pic in enumerate(pics):
        r, c = divmod(i, cols)
        x0, y0 = pad + c * (cw + pad), pad + r * (ch + th + pad)
        if titles:
            draw.text((x0, y0), _fit(draw, titles[i], font, cw), fill=(0, 0, 0), font=font)
        canvas.paste(pic, (x0 + (cw - pic.width) // 2, y0 + th + (ch - pic.height) // 2))
    return canvas


def _text_height(font) -> int:
    box = font.getbbox("Ag")
    return box[3] - box[1]


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def npy_bytes(m: MapLike) -> bytes:
    """A map as the bytes of a float32 ``.npy`` file (for downloads)."""
    buf = io.BytesIO()
    np.save(buf, to_numpy_map(m))
    return buf.getvalue()


def png_bytes(image: ImageLike) -> bytes:
    """An image as PNG bytes (for downloads)."""
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG")
    return buf.getvalue()


def save_map_npy(m: MapLike, path: str | os.PathLike) -> Path:
    """Save a map as a float32 ``.npy`` array."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(npy_bytes(m))
    return path


def save_map_png(m: MapLike, path: str | os.PathLike, colormap: str | None = None) -> Path:
    """Save a [0, 1] map as an 8-bit PNG: grayscale, or RGB in ``colormap``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if colormap is None:
        a = np.round(np.nan_to_num(to_numpy_map(m)).clip(0, 1) * 255).astype(np.uint8)
        Image.fromarray(a, "L").save(path)
    else:
        Image.fromarray(colorize(m, colormap), "RGB").save(path)
    return path
