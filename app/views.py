"""Views reused by every page: top-k tables, overlay controls and views, map figures, downloads."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from abn.explain.render import (
    COLORMAPS,
    colormap_table,
    npy_bytes,
    overlay,
    png_bytes,
    to_numpy_map,
)

DISPLAY = 320  # px: maps and overlays are shown at least this large
ROW_HEIGHT = 35  # px: st.dataframe's default row height (the header row too)


def table_height(rows: int) -> int:
    """An ``st.dataframe`` height that shows the header and all ``rows`` (no inner scrolling)."""
    return (rows + 1) * ROW_HEIGHT + 3  # + the frame's border


def topk_frame(probs: np.ndarray, names: Sequence[str], k: int) -> pd.DataFrame:
    """The ``k`` most probable classes as a table (rank, class, probability)."""
    order = np.argsort(-probs, kind="stable")[:k]
    label = [names[i] if i < len(names) else str(i) for i in order]
    return pd.DataFrame({"class": label, "probability": probs[order].astype(float)})


def show_topk(title: str, probs: np.ndarray | None, names: Sequence[str], k: int) -> None:
    """A top-k table with probability bars (or a note when the branch does not exist)."""
    st.markdown(f"**{title}**")
    if probs is None:
        st.caption("This model has no attention branch.")
        return
    st.dataframe(
        topk_frame(probs, names, k),
        hide_index=True,
        width="stretch",
        column_config={
            "probability": st.column_config.ProgressColumn(
                "probability", format="%.3f", min_value=0.0, max_value=1.0
            )
        },
    )


def overlay_controls(key: str, container=None) -> tuple[float, str]:
    """Opacity slider and colormap choice (in ``container``, default the sidebar)."""
    box = container or st.sidebar
    alpha = box.slider("Map opacity", 0.0, 1.0, 0.5, 0.05, key=f"{key}_alpha")
    cmap = box.selectbox("Colormap", COLORMAPS, key=f"{key}_cmap")
    return alpha, cmap


def upscale(view: np.ndarray, size: int = DISPLAY) -> Image.Image:
    """The model's view enlarged for display (smooth for small inputs)."""
    image = Image.fromarray(view)
    scale = max(1, size // max(image.size))
    if scale == 1:
        return image
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.BICUBIC)


def overlay_image(view: np.ndarray, m, alpha: float, cmap: str, size: int = DISPLAY) -> Image.Image:
    """The map over the view of the image, enlarged to about ``size`` px for display."""
    return overlay(upscale(view, size), m, colormap=cmap, alpha=alpha)


def plotly_colorscale(cmap: str) -> list[list]:
    """A render colormap as a Plotly colorscale, so figures match the overlays."""
    table = colormap_table(cmap)[::15]
    return [
        [i / (len(table) - 1), f"rgb({r},{g},{b})"] for i, (r, g, b) in enumerate(table.tolist())
    ]


def color_range(a: np.ndarray) -> tuple[float, float]:
    """0…1 for a map in [0, 1] (ABN's M(x) keeps its meaning), else the map's own range
    (a CAM or Grad-CAM's raw scores are unbounded)."""
    lo, hi = float(a.min()), float(a.max())
    return (0.0, 1.0) if lo >= 0.0 and hi <= 1.0 else (lo, hi if hi > lo else lo + 1.0)


def map_figure(
    m, cmap: str, title: str = "", zmin: float | None = None, zmax: float | None = None,
    height: int = DISPLAY,
) -> go.Figure:  # fmt: skip
    """An interactive heatmap of a (raw) map with its values on hover, on ``zmin``…``zmax``
    (default: :func:`color_range`)."""
    a = to_numpy_map(m)
    auto = color_range(a)
    zmin, zmax = auto[0] if zmin is None else zmin, auto[1] if zmax is None else zmax
    fig = go.Figure(
        go.Heatmap(
            z=a,
            zmin=zmin,
            zmax=zmax,
            colorscale=plotly_colorscale(cmap),
            hovertemplate="x=%{x}, y=%{y}<br>value=%{z:.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False)
    fig.update_layout(
        title=title, height=height, margin={"l": 0, "r": 0, "t": 30 if title else 0, "b": 0}
    )
    return fig


def download_buttons(stem: str, overlay_png: Image.Image, raw_map, key: str) -> None:
    """Download the overlay (PNG) and the raw map (NPY)."""
    left, right = st.columns(2)
    left.download_button(
        "Overlay (PNG)",
        png_bytes(overlay_png),
        f"{stem}_overlay.png",
        "image/png",
        key=f"{key}_png",
        icon=":material/download:",
        width="stretch",
    )
    right.download_button(
        "Map (NPY)",
        npy_bytes(raw_map),
        f"{stem}_map.npy",
        "application/octet-stream",
        key=f"{key}_npy",
        icon=":material/download:",
        width="stretch",
    )


def stem_of(name: str) -> str:
    """A file-name-safe stem of an image name."""
    base = name.rsplit(".", 1)[0] if "." in name[-6:] else name
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in base).strip("_") or "image"


def colorbar_figure(cmap: str) -> go.Figure:
    """A thin horizontal colour bar from 0 to 1: the scale every map shares."""
    q = np.linspace(0.0, 1.0, 101)
    fig = go.Figure(
        go.Heatmap(
            z=[q], x=q, colorscale=plotly_colorscale(cmap), showscale=False, hoverinfo="skip"
        )
    )
    fig.update_yaxes(visible=False)
    fig.update_xaxes(tickvals=[0, 0.25, 0.5, 0.75, 1.0], ticks="outside")
    fig.update_layout(height=70, margin={"l": 10, "r": 10, "t": 4, "b": 34})
    return fig
