"""The "Edit attention" page's pieces: edit ABN's map M(x) cell by cell, re-predict with the
edited map (g(x) computed once), keep edits in edit sets and fine-tune a model from them
(Mitsuhara et al., "Embedding Human Knowledge into Deep Neural Network via Attention Map").

The map is shown at its native resolution over the image, one selectable point per cell:
box or lasso selections of those points (Plotly selection events) are the edited region.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image
from torch import nn

from abn.card import ModelCard
from abn.data import is_tree
from abn.editing.editset import MANIFEST, EditSet, EditSetError, list_edit_sets, model_info
from abn.editing.finetune import FinetuneConfig, FinetuneError, finetune
from abn.editing.maps import EditHistory, brush, cells
from abn.editing.repredict import Editable
from abn.explain.render import colorize, overlay
from abn.train.state import ResumeError

from .compute import prepare
from .config import card_root, data_root, edits_dir, user_models_dir
from .images import Picked, eval_split
from .models import ModelRef, is_variant, load
from .views import DISPLAY, overlay_image, plotly_colorscale, table_height

EDITABLE = ("abn", "abn_multitask")
accept = is_variant(*EDITABLE)
NEEDS = "an ABN model (variant 'abn', or 'abn_multitask' to edit one attribute's map)"
CHART = "edit_map"  # the plotly chart's key (its selection event lives under it)
CELL_CHART = 540  # px: the cell chart's longer side; it fills its column (about 580 px at 1440 px)
HISTORIES = "edit_histories"  # session state: state key → EditHistory
REGIONS = "edit_regions"  # session state: state key → RegionEntry
FINETUNED = "edit_finetuned"  # session state: (model key, the last fine-tuning's result)
NEW_SET = "New edit set…"
CHOSEN_SET = "edit_set_chosen"  # session state: the set to choose on the next run
SAVED = "edit_saved"  # session state: what the last save did, said once after its rerun
THUMB = 96  # px: a map thumbnail in the edit set's review
TOP_K = 5
MAX_BARS = 20  # the probability-change chart shows at most this many classes
GALLERY_NAME = re.compile(r"^(?P<split>\S+) #(?P<index>\d+)")  # app.images' dataset gallery names


# ----------------------------------------------------------------------------- the model's map


def attribute_picker(card: ModelCard, key: str) -> int | None:
    """For a multi-task ABN, the attribute whose map is edited (its index); else ``None``."""
    if card.variant != "abn_multitask":
        return None
    names = card.class_names or [str(i) for i in range(card.num_classes)]
    name = st.selectbox("Attribute to edit", names, key=f"{key}_attribute")
    return names.index(name)


@st.cache_resource(max_entries=8, show_spinner="Computing g(x) and M(x)…")
def _editable(
    key: str, digest: str, attribute: int | None, _model: nn.Module, _x: torch.Tensor
) -> Editable:
    return Editable(_model, _x, attribute)


def editable(ref: ModelRef, picked: Picked, attribute: int | None) -> Editable:
    """The image's :class:`Editable` (g(x) and M(x) computed once per model, image, attribute)."""
    return _editable(ref.key, picked.digest, attribute, load(ref), prepare(ref, picked).x)


def state_key(ref: ModelRef, picked: Picked, attribute: int | None) -> str:
    """What an edit belongs to: the model, the image and the attribute."""
    return f"{ref.key}|{picked.digest}|{attribute}"


def history(key: str, original: np.ndarray) -> EditHistory:
    """The session's edit history of ``key`` (started from the model's map on first use)."""
    store = st.session_state.setdefault(HISTORIES, {})
    if key not in store:
        store[key] = EditHistory(original)
    return store[key]


# ----------------------------------------------------------------------------- selecting cells


@dataclass(frozen=True)
class RegionEntry:
    """The kept region (cells), and the chart and selection event it last came from."""

    chart: str
    event: frozenset[tuple[int, int]]
    cells: frozenset[tuple[int, int]]


def selected_cells(event) -> frozenset[tuple[int, int]]:
    """The (row, col) map cells selected in the cell chart's ``on_select`` event."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return frozenset()
    out = set()
    for p in points if isinstance(points, list) else []:
        cell = _cell_of(p) if isinstance(p, dict) else None
        if cell is not None:
            out.add(cell)
    return frozenset(out)


def _cell_of(point: dict) -> tuple[int, int] | None:
    """A selected point's (row, col): its ``customdata`` (a pair; the browser sends a numeric
    array as ``{"0": row, "1": col}``), else its position (cells are centred on integers)."""
    data = point.get("customdata")
    if isinstance(data, dict):
        data = [data.get("0"), data.get("1")]
    if isinstance(data, (list, tuple)) and len(data) == 2 and None not in data:
        return int(data[0]), int(data[1])
    if isinstance(point.get("x"), (int, float)) and isinstance(point.get("y"), (int, float)):
        return round(point["y"]), round(point["x"])
    return None


def kept_cells(key: str) -> frozenset[tuple[int, int]]:
    entry = st.session_state.get(REGIONS, {}).get(key)
    return entry.cells if entry else frozenset()


def keep_region(key: str, chart: str, event) -> bool:
    """Update ``key``'s kept region from the chart's event; whether it changed.

    Streamlit makes a new chart (with an empty selection) whenever the figure changes, e.g.
    after an edit or when the region is outlined: the region is therefore kept in the session
    and replaced only by an event that differs from the last one seen, a new selection (or,
    in the same chart, an emptied one: the user cleared it)."""
    store = st.session_state.setdefault(REGIONS, {})
    now = selected_cells(event)
    entry = store.get(key)
    before = entry.cells if entry is not None else frozenset()
    if entry is None or (now != entry.event and (now or entry.chart == chart)):
        cells_ = now
    else:  # nothing new, or the empty selection of a chart drawn anew
        cells_ = before
    store[key] = RegionEntry(chart, now, cells_)
    return cells_ != before


def clear_region(key: str) -> None:
    store = st.session_state.setdefault(REGIONS, {})
    entry = store.get(key)
    if entry is not None:
        store[key] = RegionEntry(entry.chart, entry.event, frozenset())


def region_mask(shape: tuple[int, int], chosen: frozenset[tuple[int, int]]) -> np.ndarray | None:
    """The chosen cells as a boolean mask (``None``: nothing chosen)."""
    inside = [(r, c) for r, c in chosen if 0 <= r < shape[0] and 0 <= c < shape[1]]
    return cells(shape, sorted(inside)) if inside else None


def cell_figure(
    view: np.ndarray, m: np.ndarray, chosen: frozenset[tuple[int, int]], alpha: float, cmap: str
) -> go.Figure:
    """The map over the image at the map's own resolution, one selectable point per cell
    (chosen cells outlined)."""
    h, w = m.shape
    image = np.asarray(Image.fromarray(view).resize((CELL_CHART, round(CELL_CHART * h / w))))
    dy, dx = h / image.shape[0], w / image.shape[1]
    rows, cols = np.divmod(np.arange(h * w), w)
    outline = [2.5 if (r, c) in chosen else 0.0 for r, c in zip(rows, cols, strict=True)]
    fig = go.Figure(
        [
            go.Image(z=image, x0=-0.5 + dx / 2, dx=dx, y0=-0.5 + dy / 2, dy=dy, hoverinfo="skip"),
            go.Heatmap(
                z=m, zmin=0.0, zmax=1.0, opacity=alpha, colorscale=plotly_colorscale(cmap),
                showscale=False, hoverinfo="skip",
            ),
            go.Scatter(
                x=cols, y=rows, mode="markers", customdata=np.stack([rows, cols], 1),
                text=[f"{v:.3f}" for v in m.ravel()],
                hovertemplate="row %{customdata[0]}, column %{customdata[1]}<br>"
                "M = %{text}<extra></extra>",
                marker={
                    "symbol": "square", "size": 0.8 * CELL_CHART / max(h, w),
                    "color": "rgba(255,255,255,0.02)",
                    "line": {"width": outline, "color": "white"},
                },
                selected={"marker": {"opacity": 1.0}},
                unselected={"marker": {"opacity": 1.0}},
                showlegend=False,
            ),
        ]
    )  # fmt: skip
    fig.update_xaxes(range=[-0.5, w - 0.5], visible=False, fixedrange=True, constrain="domain")
    fig.update_yaxes(
        range=[h - 0.5, -0.5], visible=False, fixedrange=True, constrain="domain",
        scaleanchor="x", scaleratio=1,  # square cells whatever the column's width
    )  # fmt: skip
    fig.update_layout(
        height=round(CELL_CHART * h / w) + 20,  # the width is the column's (see cell_chart)
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        dragmode="select",
        clickmode="event+select",
    )
    return fig


def chart_id(fig: go.Figure) -> str:
    """What identifies a chart to Streamlit: its figure."""
    return hashlib.sha256(fig.to_json().encode()).hexdigest()[:16]


def cell_chart(key: str, view: np.ndarray, m: np.ndarray, alpha: float, cmap: str) -> None:
    """The selectable cell chart; a new selection reruns the page (to outline it)."""
    fig = cell_figure(view, m, kept_cells(key), alpha, cmap)
    event = st.plotly_chart(
        fig,
        key=CHART,
        on_select="rerun",
        selection_mode=("box", "lasso"),
        width="stretch",
        config={"displaylogo": False, "modeBarButtonsToRemove": ["zoom", "pan", "autoScale"]},
    )
    if keep_region(key, chart_id(fig), event):
        st.rerun()


# ----------------------------------------------------------------------------- the brush


BRUSH = "edit_brush"  # the drawing canvas's key
SELECT_MODES = ("Box / lasso", "Brush")


def stroke_points(obj: dict) -> list[tuple[float, float]]:
    """The canvas pixel points of one Fabric.js path object: its commands' end and control
    points, shifted by how far the object was moved since it was drawn (a path keeps the
    coordinates it was drawn at; ``left``/``top`` say where its centre is now)."""
    points = []
    for command in obj.get("path") or []:
        numbers = [float(v) for v in command[1:] if isinstance(v, (int, float))]
        points.extend(zip(numbers[0::2], numbers[1::2], strict=False))
    if points and obj.get("originX") == "center" and obj.get("originY") == "center":
        xs, ys = [x for x, _ in points], [y for _, y in points]
        dx = float(obj.get("left", 0)) - (min(xs) + max(xs)) / 2
        dy = float(obj.get("top", 0)) - (min(ys) + max(ys)) / 2
        points = [(x + dx, y + dy) for x, y in points]
    return points


def brush_cells(json_data: dict | None, shape: tuple[int, int], size: int) -> frozenset:
    """The map cells painted on a ``size``-px canvas of a ``shape`` map (each stroke with its
    own width): the cells whose centre lies within half a stroke of the stroke's path."""
    cell = size / shape[1]  # px per cell (the canvas keeps the map's aspect)
    mask = np.zeros(shape, dtype=bool)
    for obj in (json_data or {}).get("objects", []):
        if str(obj.get("type", "")).lower() != "path":
            continue
        pts = [(x / cell - 0.5, y / cell - 0.5) for x, y in stroke_points(obj)]
        radius = float(obj.get("strokeWidth", 1)) / 2 / cell
        mask |= brush(shape, pts, radius)
    return frozenset(zip(*(a.tolist() for a in np.nonzero(mask)), strict=True))


def cell_overlay(
    view: np.ndarray, m: np.ndarray, alpha: float, cmap: str, size: tuple[int, int]
) -> Image.Image:
    """The map over the image at ``size`` (w, h) px, each cell a sharp block (as edited)."""
    image = Image.fromarray(view).resize(size, Image.Resampling.BICUBIC)
    cells_ = Image.fromarray(np.asarray(m, np.float32), mode="F").resize(
        size, Image.Resampling.NEAREST
    )
    return overlay(image, np.asarray(cells_), colormap=cmap, alpha=alpha)


def brush_canvas(key: str, view: np.ndarray, m: np.ndarray, alpha: float, cmap: str) -> None:
    """Paint the region on the map over the image (``streamlit-drawable-canvas``); each new
    stroke set replaces the kept region."""
    try:
        from streamlit_drawable_canvas import st_canvas
    except ImportError:
        st.info(
            "The brush needs the `streamlit-drawable-canvas` package (`pip install "
            "streamlit-drawable-canvas`); select cells with the box or lasso meanwhile.",
            icon=":material/brush:",
        )
        return
    h, w = m.shape
    height = round(DISPLAY * h / w)
    width_px = st.slider("Brush width (px)", 4, 80, 24, 2, key="edit_brush_width")
    background = cell_overlay(view, m, alpha, cmap, (DISPLAY, height))
    result = st_canvas(
        stroke_width=width_px, stroke_color="rgba(255, 255, 255, 0.6)",
        background_image=background, height=height, width=DISPLAY,
        drawing_mode="freedraw", key=f"{BRUSH}_{hashlib.sha1(key.encode()).hexdigest()[:8]}",
    )  # fmt: skip
    painted = brush_cells(result.json_data if result else None, (h, w), DISPLAY)
    if keep_region(key, "brush", {"selection": {"points": [
        {"customdata": [r, c]} for r, c in sorted(painted)
    ]}}):  # fmt: skip
        st.rerun()
    st.caption(
        "Paint over the cells to edit; the canvas's own undo/reset buttons change the painted "
        "region, Undo/Reset on the right change the map."
    )


# ----------------------------------------------------------------------------- edit actions


ACTIONS = {
    "erase": "Erase (0)",
    "emphasise": "Emphasise (1)",
    "set": "Set value",
    "invert": "Invert",
    "smooth": "Smooth",
}
NEEDS_REGION = ("erase", "emphasise", "set")


def action_panel(key: str, hist: EditHistory) -> None:
    """The edit buttons; an edit is applied to the history at once (the chart drawn after)."""
    chosen = kept_cells(key)
    mask = region_mask(hist.current.shape, chosen)
    n = 0 if mask is None else int(mask.sum())
    st.markdown(
        f"**Region:** {n} of {hist.current.size} cells"
        if n
        else "**Region:** none — select cells with the box or lasso tool (in the chart's toolbar)"
    )
    value = st.slider("Value for *Set value*", 0.0, 1.0, 0.5, 0.05, key="edit_value")
    sigma = st.slider("Smoothing σ (cells)", 0.5, 3.0, 1.0, 0.25, key="edit_sigma")
    cols = st.columns(2)  # two per row: three would cut labels in a narrow column
    for i, (op, label) in enumerate(ACTIONS.items()):
        if cols[i % 2].button(label, key=f"edit_op_{op}", width="stretch"):
            if op in NEEDS_REGION and mask is None:
                st.warning("Select a region of cells first.", icon=":material/select:")
                continue
            kw = {"value": value} if op == "set" else {"sigma": sigma} if op == "smooth" else {}
            hist.apply(op, region=mask, **kw)
    if cols[1].button("Clear selection", key="edit_clear", width="stretch"):
        clear_region(key)
        st.rerun()  # the region's text above was drawn before the click
    left, right = st.columns(2)
    if left.button(
        "Undo", key="edit_undo", icon=":material/undo:", disabled=not hist.can_undo,
        width="stretch",
    ):  # fmt: skip
        hist.undo()
    if right.button("Reset", key="edit_reset", icon=":material/restart_alt:", width="stretch"):
        hist.reset()
    if n and mask is None:
        st.caption("The region lies outside this map.")
    if hist.can_undo:
        st.caption("Edits: " + " → ".join(hist.steps))
    else:
        st.caption("No edit yet: the map is the model's own M(x).")


# ----------------------------------------------------------------------------- re-prediction


def change_frame(before: np.ndarray, after: np.ndarray, names: list[str], k: int) -> pd.DataFrame:
    """The top-``k`` classes before and after the edit (union), most probable after first."""
    top = set(np.argsort(-before, kind="stable")[:k]) | set(np.argsort(-after, kind="stable")[:k])
    order = sorted(top, key=lambda i: (-after[i], i))
    return pd.DataFrame(
        {
            "class": [names[i] if i < len(names) else str(i) for i in order],
            "before": before[order].astype(float),
            "after": after[order].astype(float),
            "change": (after[order] - before[order]).astype(float),
        }
    )


def change_figure(before: np.ndarray, after: np.ndarray, names: list[str]) -> go.Figure:
    """The change of each class's probability (the largest :data:`MAX_BARS` changes)."""
    delta = after - before
    order = np.argsort(-np.abs(delta), kind="stable")[:MAX_BARS]
    label = [names[i] if i < len(names) else str(i) for i in order]
    fig = go.Figure(
        go.Bar(
            x=label,
            y=delta[order],
            marker_color=["#2a9d8f" if d >= 0 else "#e76f51" for d in delta[order]],
            hovertemplate="%{x}: %{y:+.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=260, margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title="Change of each class's probability (after − before)",
        yaxis_title="Δ probability",
    )  # fmt: skip
    return fig


def repredict(ed: Editable, edited: np.ndarray) -> tuple[np.ndarray, float]:
    """The perception branch's probabilities with ``edited`` and the seconds it took."""
    start = time.perf_counter()
    probs = ed.predict(edited)
    return np.asarray(probs), time.perf_counter() - start


def show_change(ed: Editable, after: np.ndarray, seconds: float) -> None:
    """Top-k before → after and the probability change of each class."""
    before = np.asarray(ed.probs)
    names = list(ed.names)
    k = min(TOP_K, len(names))
    top_before, top_after = int(np.argmax(before)), int(np.argmax(after))
    verdict = (
        f"Prediction unchanged: **{names[top_before]}** ({before[top_before]:.3f} → "
        f"{after[top_before]:.3f})"
        if top_before == top_after
        else f"Prediction changed: **{names[top_before]}** → **{names[top_after]}** "
        f"({after[top_after]:.3f})"
    )
    st.markdown(verdict)
    st.caption(f"Re-predicted with the edited map in {1000 * seconds:.0f} ms (g(x) reused).")
    frame = change_frame(before, after, names, k)
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        height=table_height(len(frame)),
        column_config={
            c: st.column_config.ProgressColumn(c, format="%.3f", min_value=0.0, max_value=1.0)
            for c in ("before", "after")
        }
        | {"change": st.column_config.NumberColumn("change", format="%+.3f")},
    )
    st.plotly_chart(change_figure(before, after, names), width="stretch", key="edit_delta")


def show_maps(view: np.ndarray, original: np.ndarray, edited: np.ndarray, alpha: float, cmap: str):
    """The model's map and the edited map over the image, side by side."""
    left, right = st.columns(2)
    original = np.array(original)  # Editable.map is read-only; rendering wants its own copy
    left.image(overlay_image(view, original, alpha, cmap), caption="M(x): the model's map")
    right.image(overlay_image(view, edited, alpha, cmap), caption="M'(x): the edited map")


# ----------------------------------------------------------------------------- edit sets


@contextmanager
def edit_set_errors() -> Iterator[None]:
    """A refused edit set or fine-tuning is shown with its reason (nothing was changed on
    disk); anything else goes on to the page's error boundary."""
    try:
        yield
    except EditSetError as exc:
        st.error(f"**Edit set refused.** {exc}", icon=":material/folder_off:")
    except (FinetuneError, ResumeError) as exc:
        st.error(f"**Fine-tuning refused.** {exc}", icon=":material/model_training:")


def set_name(text: str) -> str:
    """A folder-safe edit-set name."""
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in text.strip()).strip("-.")
    if not name:
        raise EditSetError("give the edit set a name (letters, digits, - _ .)")
    return name


def set_picker(card: ModelCard) -> Path | None:
    """Choose an edit set under :func:`edits_dir` or name a new one; its folder (``None``: a new
    set that has no name yet). Sets that cannot be read are listed with the reason."""
    root = edits_dir()
    found = list_edit_sets(root) if root.is_dir() else []
    names = [folder.name for folder, _, _ in found]
    text = {
        folder.name: f"{folder.name} ({n} edits)" for folder, n, problem in found if not problem
    }
    for folder, _, problem in found:
        text.setdefault(folder.name, f"{folder.name} (cannot be read)")
        if problem:
            st.warning(f"Edit set `{folder.name}`: {problem}", icon=":material/folder_off:")
    if st.session_state.get(CHOSEN_SET) in names:  # a set just made: choose it
        st.session_state["edit_set"] = st.session_state.pop(CHOSEN_SET)
    choice = st.selectbox(
        "Edit set",
        [*names, NEW_SET],
        format_func=lambda n: text.get(n, n),
        key="edit_set",
        help=f"Edit sets are folders under `{root}` (set `ABN_EDITS_DIR` to change it).",
    )
    if choice != NEW_SET:
        return root / choice
    default = f"{card.arch}-{card.dataset or 'edits'}-edits"
    typed = st.text_input("New edit set's name", default, key="edit_set_name")
    return root / set_name(typed)


@st.cache_data(show_spinner=False, max_entries=16)
def _model_info(key: str, _model: nn.Module) -> dict:
    return model_info(_model)


def check_model(es: EditSet, info: dict) -> None:
    """Refuse an edit set made for another model (map size first, then digest); ``info`` is
    :func:`~abn.editing.editset.model_info` of the page's model (cached: hashing the weights
    on every rerun would slow each edit down)."""
    mine = es.model
    if list(info["map_size"]) != list(mine["map_size"]):
        size = "×".join(map(str, mine["map_size"]))
        raise EditSetError(
            f"map size mismatch: the edit set `{es.directory.name}` holds {size} maps, the "
            f"model {info['name']} makes {'×'.join(map(str, info['map_size']))} maps"
        )
    if info["digest"] != mine["digest"]:
        raise EditSetError(
            f"the edit set `{es.directory.name}` was made for another model: {mine['name']} "
            f"(digest {mine['digest'][:12]}…), not {info['name']} ({info['digest'][:12]}…)"
        )


def open_set(folder: Path, ref: ModelRef, create: bool = False) -> EditSet | None:
    """The edit set in ``folder``, checked against ``ref``'s model (``create``: a new one if
    absent; ``None``: absent). Nothing on disk is changed when it is refused."""
    model = load(ref)
    if (folder / MANIFEST).is_file():
        es = EditSet.open(folder)
        check_model(es, _model_info(ref.key, model))
        return es
    if folder.exists() and any(folder.iterdir()):
        raise EditSetError(f"{folder} exists and holds no edit set (no {MANIFEST}): not touched")
    return EditSet.create(folder, model) if create else None


def dataset_source(picked: Picked, card: ModelCard, source: str) -> dict | None:
    """Where a dataset gallery image comes from (referenced by an edit set, not copied)."""
    match = GALLERY_NAME.match(picked.name)
    if source != "Gallery" or not card.dataset or match is None:
        return None
    if match["split"] != eval_split(card):
        return None
    source = {"dataset": card.dataset, "split": match["split"], "index": int(match["index"])}
    root = card_root(card)
    if is_tree(card.dataset) and root is not None:
        source["root"] = str(root)  # a user's own image tree: where it is
    return source


def label_picker(ed: Editable, picked: Picked) -> int | None:
    """The image's true class for the edit (the dataset's label when known)."""
    names = list(ed.names)
    options = ["(not given)", *names]
    index = options.index(picked.label) if picked.label in names else 0
    choice = st.selectbox("True class of this image", options, index=index, key="edit_label")
    return None if choice == options[0] else names.index(choice)


def save_edit(
    folder: Path, ref: ModelRef, ed: Editable, hist: EditHistory, picked: Picked,
    source: dict | None, label: int | None, attribute: int | None, author: str, note: str,
):  # fmt: skip
    """Add the current edit to the set in ``folder`` (created if new); the record."""
    es = open_set(folder, ref, create=True)
    return es.add(
        np.asarray(ed.map, np.float32),
        np.asarray(hist.current, np.float32),
        image=None if source else picked.image,
        source=source,
        label=label,
        attribute=attribute,
        author=author,
        note=note or "; ".join(hist.steps),
    )


def thumbnail(m: np.ndarray, cmap: str) -> Image.Image:
    """A map (no image under it) enlarged to :data:`THUMB` px, cells kept sharp."""
    image = Image.fromarray(colorize(m, cmap))
    scale = max(1, THUMB // max(image.size))
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def review(es: EditSet, cmap: str) -> None:
    """Every record: the original and the edited map, who and when, and a Remove button."""
    if not len(es):
        st.caption("This edit set is empty.")
        return
    for record in list(es.records):
        original, edited = es.maps(record)
        a, b, c = st.columns([1, 1, 3], vertical_alignment="center")
        a.image(thumbnail(original, cmap), caption="M(x)")
        b.image(thumbnail(edited, cmap), caption="M'(x)")
        where = (
            f"{record.source['dataset']}/{record.source['split']} #{record.source['index']}"
            if record.source
            else "uploaded image (copied into the set)"
        )
        c.caption(
            f"`{record.id}` · {where} · by {record.author or 'anonymous'} · {record.created}"
            + (f"\n\n{record.note}" if record.note else "")
        )
        if c.button("Remove", key=f"edit_rm_{record.id}", icon=":material/delete:"):
            es.remove(record.id)
            st.rerun()


def export_button(es: EditSet, folder: Path) -> None:
    """Download the edit set as a ZIP."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{folder.name}.zip"
        es.export(path)
        data = path.read_bytes()
    st.download_button(
        "Export (ZIP)", data, f"{folder.name}.zip", "application/zip",
        key="edit_export", icon=":material/download:",
    )  # fmt: skip


def import_zip(upload, root: Path) -> Path:
    """An uploaded edit-set ZIP imported as a new set under ``root`` (never over another)."""
    folder = root / set_name(Path(upload.name).stem)
    if folder.exists():
        raise EditSetError(f"an edit set named {folder.name!r} exists already: not overwritten")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "set.zip"
        path.write_bytes(upload.getvalue())
        EditSet.import_zip(path, folder)
    return folder


# ----------------------------------------------------------------------------- fine-tuning


def model_file(ref: ModelRef) -> Path:
    """The checkpoint file of ``ref`` (an uploaded model is written to a temporary file)."""
    if ref.data is None and ref.path is not None and ref.path.is_file():
        return ref.path
    tmp = Path(tempfile.mkdtemp(prefix="abn-upload-")) / "model.safetensors"
    tmp.write_bytes(ref.data or b"")
    return tmp


def run_folder(name: str) -> Path:
    """Where a fine-tuned model named ``name`` is written; an existing model is never replaced."""
    folder = user_models_dir() / set_name(name)
    if (folder / "final.safetensors").exists():
        raise EditSetError(
            f"a fine-tuned model named {folder.name!r} exists already ({folder}): choose another "
            "name"
        )
    return folder


def finetune_from(ref: ModelRef, es: EditSet, name: str, config):
    """Fine-tune ``ref``'s model on ``es`` with a progress bar; the result."""
    folder = run_folder(name)
    bar = st.progress(0.0, "Measuring the model before fine-tuning (maps, test accuracy)…")

    def progress(done: int, total: int, message: str) -> None:
        last = done >= total
        text = "Measuring the fine-tuned model (maps, test accuracy)…" if last else message
        bar.progress(min(1.0, done / max(total, 1)), f"Step {done}/{total} · {text}")

    result = finetune(
        model_file(ref),
        es,
        folder,
        config,
        data_root=card_root(ref.card) or data_root(),
        progress=progress,
    )
    bar.progress(1.0, "Done")
    return result


def finetune_form(ref: ModelRef, es: EditSet | None, folder: Path | None) -> None:
    """Options and the button that fine-tune the model on the chosen edit set."""
    if es is None or not len(es):
        st.caption("Save at least one edit to the chosen edit set to fine-tune from it.")
        return
    a, b, c = st.columns(3)
    epochs = a.number_input("Epochs", 1, 100, 5, key="edit_ft_epochs")
    gamma = b.number_input(
        "γ (map loss weight)", 0.0, 100.0, 1.0, 0.5, key="edit_ft_gamma",
        help="Loss = L_att + L_per + γ·mean((M(x) − M'(x))²) on the edited images",
    )  # fmt: skip
    train = c.selectbox(
        "Train", ["branches", "feature_extractor", "all"], key="edit_ft_train",
        help="branches: the attention and perception branches (Mitsuhara et al.)",
    )  # fmt: skip
    d, e = st.columns(2)
    test_limit = d.number_input(
        "Test images for before/after accuracy", 0, 100_000, 500, 100, key="edit_ft_test",
        help="A fixed sample of the model's test split (0: all of it); skipped without the data",
    )  # fmt: skip
    replay = e.checkbox(
        "Replay the training data", True, key="edit_ft_replay",
        help="Mix batches of the model's training data in, when it is found, so that accuracy "
        "does not collapse on a few edits",
    )  # fmt: skip
    stem = ref.filename.split("/")[0].removesuffix(".safetensors")
    name = st.text_input("New model's name", f"{stem}-{folder.name}", key="edit_ft_name")
    st.caption(f"Written to `{user_models_dir()}/<name>/`; every page's model picker lists it.")
    if st.button("Fine-tune", key="edit_ft", type="primary", icon=":material/model_training:"):
        config = FinetuneConfig(
            epochs=int(epochs), gamma=float(gamma), train=train,
            replay=None if replay else False, test_limit=int(test_limit) or 0,
        )  # fmt: skip
        st.session_state[FINETUNED] = (ref.key, finetune_from(ref, es, name, config))


def _ci(value: float, half: float, digits: int = 4) -> str:
    if value is None or value != value:  # None or NaN
        return "—"
    return f"{value:.{digits}f}" + (f" ± {half:.{digits}f}" if half == half and half else "")


def agreement_rows(result) -> list[dict[str, str]]:
    """Map agreement on the edited images and test accuracy, before and after."""
    b, a = result.maps_before, result.maps_after
    rows = [
        {
            "measure": f"map MSE to the edited maps ({b.n} edited images, lower is closer)",
            "before": _ci(b.mse, b.mse_ci),
            "after": _ci(a.mse, a.mse_ci),
        }
    ]
    if b.n_erased:
        rows.append(
            {
                "measure": f"share of attention in the erased cells ({b.n_erased} images)",
                "before": _ci(b.erased_mass, b.erased_mass_ci),
                "after": _ci(a.erased_mass, a.erased_mass_ci),
            }
        )
    tb, ta = result.test_before or {}, result.test_after or {}
    if tb.get("accuracy") is not None and ta.get("accuracy") is not None:
        rows.append(
            {
                "measure": f"test accuracy, % ({tb.get('n')} images)",
                "before": f"{tb['accuracy']:.2f}",
                "after": f"{ta['accuracy']:.2f}",
            }
        )
    return rows


def paired_text(comparison: dict | None) -> str:
    """The paired test of the accuracy change in words (``""`` without test data)."""
    if not comparison:
        return ""
    low, high = comparison.get("ci95", [float("nan")] * 2)
    rows = comparison.get("rows") or [{}]
    p = rows[0].get("p_mcnemar")
    return (
        f"Accuracy change after − before: {comparison['accuracy_difference']:+.2f} points "
        f"(paired bootstrap 95% CI {low:+.2f} … {high:+.2f}; McNemar exact p = {p:.3g}, "
        f"n = {comparison.get('n')})."
    )


def show_finetuned(result) -> None:
    """Map agreement and test accuracy before/after of the last fine-tuning."""
    st.success(
        f"Fine-tuned model written to `{result.checkpoint}`: choose it in any page's model picker.",
        icon=":material/check_circle:",
    )
    st.dataframe(pd.DataFrame(agreement_rows(result)), hide_index=True, width="stretch")
    text = paired_text(result.comparison)
    st.caption(text or "Test accuracy not measured: the model's test data is not available here.")
    if result.replay:
        st.caption(f"Replay: {result.replay}")
