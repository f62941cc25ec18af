"""Views of t-SNE embeddings: the scatter plots, their selection, and the selected images."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from abn.embeddings import (
    KIND_LABELS,
    WITH_ATTENTION,
    WITHOUT_ATTENTION,
    ClusterQuality,
    Embedding,
    nearest,
    perception_features,
    place,
)
from abn.embeddings import cache_path as cache_path  # for the pages
from abn.embeddings import compute_embedding as compute_embedding  # for the pages

from . import views
from .images import Picked, _read_uploads, to_input, upload_limits
from .models import ModelRef, load

COLOUR_BY = ("true class", "predicted class", "correctness", "confidence")
MAX_SELECTED = 16
SELECTION_COLUMNS = 8
MAX_PLACED = 5  # uploaded images placed into the maps at once
NEIGHBOURS = 5  # nearest embedded images listed for each placed image

#: Class colours: Okabe & Ito's seven colours (without black, which the placed-image star
#: uses) plus Tol's indigo, a brown and a light grey. Every pair stays clearly apart under normal
#: vision (CIEDE2000 ≥ 20, where Plotly's ``Safe`` falls to 15) and fairly apart under simulated
#: deuteranopia, protanopia and tritanopia (≥ 10; no ten colours are fully CVD-safe), which is
#: why each class also gets its own marker symbol (:data:`SYMBOLS`). Some are dark or light, so
#: every marker gets a mid-grey edge (:data:`EDGE`) that stands out on both themes.
PALETTE: tuple[str, ...] = (
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#009E73",  # bluish green
    "#F0E442",  # yellow
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#332288",  # indigo
    "#8C564B",  # brown
    "#BBBBBB",  # light grey
)
#: one marker symbol per class, so colour is not the only cue ("star" marks placed uploads)
SYMBOLS: tuple[str, ...] = (
    "circle",
    "square",
    "diamond",
    "triangle-up",
    "x",
    "triangle-down",
    "cross",
    "pentagon",
    "hexagon",
    "triangle-left",
)
EDGE = "rgba(128, 128, 128, 0.9)"
CORRECTNESS_COLOURS = {"correct": PALETTE[4], "wrong": PALETTE[5]}  # blue / vermillion, CVD-safe
POINT = {"size": 6, "opacity": 0.85}  # every point when nothing is selected
CHOSEN = {"size": 10, "opacity": 1.0}  # selected points
FADED = {"size": 5, "opacity": 0.3}  # the others while a selection exists
STAR = {
    "symbol": "star",
    "size": 20,
    "color": "#111111",
    "line": {"width": 1.5, "color": "#ffffff"},
}


@dataclass
class Panel:
    """One scatter plot: a model's embedding of one feature kind."""

    title: str
    key: str
    embedding: Embedding
    kind: str
    model: str = "ABN"  # whose features: "Baseline" or "ABN"

    @property
    def quality(self) -> ClusterQuality | None:
        return self.embedding.quality.get(self.kind)


def panels(embeddings: dict[str, Embedding]) -> list[Panel]:
    """Fig. 6's panels, all of the perception branch's last-stage features: the baseline's, and
    ABN's without attention (the branch on g(x)) and with it (on g'(x))."""
    out = []
    if "Baseline" in embeddings:
        baseline = embeddings["Baseline"]
        out.append(
            Panel(
                "Baseline (plain) · branch on g(x)",
                "plain",
                baseline,
                WITHOUT_ATTENTION,
                "Baseline",
            )
        )
    abn = embeddings["ABN"]
    out.append(Panel("ABN without attention · branch on g(x)", "abn_g", abn, WITHOUT_ATTENTION))
    if WITH_ATTENTION in abn.coords:
        out.append(Panel("ABN with attention · branch on g'(x)", "abn_ga", abn, WITH_ATTENTION))
    return out


QUALITY_NOTE = (
    "Every panel embeds the perception branch's last-stage feature maps (the network's last "
    "stage, right before pooling and the classifier), averaged over space (GAP). Cluster "
    "quality is measured on those pooled features themselves (C dimensions, Euclidean), not on "
    "the 2-D t-SNE map, whose distances between clusters mean little: leave-one-out k-NN "
    "accuracy with a Wilson 95% interval, and the mean silhouette coefficient of the true "
    "classes (−1 to 1) with a bootstrap 95% interval over images. Chance: always answering the "
    "commonest class."
)

MULTITASK_NOTE = (
    "Multi-task ABN models (face attributes) are not offered here: they apply one attention map "
    "per attribute, so there is no single g'(x) to embed. See **Face attributes** for them."
)


def quality_text(q: ClusterQuality) -> str:
    """One line: k-NN accuracy and silhouette, each with its 95% interval, and n."""
    knn = f"{q.k}-NN accuracy **{q.knn_accuracy:.1%}** ({q.knn_ci[0]:.1%}–{q.knn_ci[1]:.1%})"
    if np.isnan(q.silhouette):
        sil = "silhouette n/a (needs two classes)"
    else:
        lo, hi = q.silhouette_ci
        sil = f"silhouette **{q.silhouette:.3f}** ({lo:.3f} to {hi:.3f})"
    return f"{knn} · {sil} · n = {q.n} · chance {q.chance:.0%}"


def frame(emb: Embedding, kind: str) -> pd.DataFrame:
    """One row per point: coordinates, dataset index, classes, correctness, confidence."""
    xy = emb.coords[kind]
    names = np.asarray(emb.class_names)
    return pd.DataFrame(
        {
            "x": xy[:, 0],
            "y": xy[:, 1],
            "index": emb.indices,
            "true class": names[emb.labels],
            "predicted class": names[emb.predictions],
            "correctness": np.where(emb.correct, "correct", "wrong"),
            "confidence": emb.confidence,
        }
    )


@dataclass(frozen=True)
class Placed:
    """An uploaded image placed into one panel's map: where, and what the model predicts."""

    name: str
    prediction: str
    xy: tuple[float, float]

    @property
    def label(self) -> str:
        return f"{self.name} → {self.prediction}"


def scatter(
    panel: Panel,
    colour: str,
    selected: Collection[int] = (),
    placed: Sequence[Placed] = (),
) -> go.Figure:
    """A t-SNE scatter coloured by ``colour`` with the image's facts on hover; the dataset
    indices ``selected`` drawn larger and opaque, the other points faded; each ``placed``
    upload a labelled star."""
    df = frame(panel.embedding, panel.kind)
    kwargs = {}
    if colour == "confidence":
        kwargs = {"color_continuous_scale": "Viridis", "range_color": (0, 1)}
    elif colour == "correctness":
        kwargs = {"color_discrete_map": CORRECTNESS_COLOURS}
    else:
        names = list(panel.embedding.class_names)
        kwargs = {
            "category_orders": {colour: names},
            "color_discrete_sequence": list(PALETTE),
            "symbol": colour,
            "symbol_sequence": list(SYMBOLS),
        }
    fig = px.scatter(
        df,
        x="x",
        y="y",
        color=colour,
        custom_data=["index"],
        hover_data={
            "x": False,
            "y": False,
            "index": True,
            "true class": True,
            "predicted class": True,
            "confidence": ":.2f",
        },
        **kwargs,
    )
    fig.update_traces(marker={**POINT, "line": {"width": 0.6, "color": EDGE}})
    highlight(fig, selected)
    middle = (df["x"].min() + df["x"].max()) / 2
    for p in placed:  # the label on the side with room, so the plot's edge does not cut it
        fig.add_trace(star(p, "top left" if p.xy[0] > middle else "top right"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(
        height=430,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        legend={"orientation": "h", "y": -0.02, "title": None, "font": {"size": 11}},
        dragmode="lasso",
    )
    return fig


def highlight(fig: go.Figure, selected: Collection[int]) -> None:
    """Draw the points whose dataset index is in ``selected`` larger and opaque and fade the
    others (per-point marker sizes and opacities); nothing selected, nothing changes.

    Plotly draws a legend entry with its trace's mean opacity, so a class with nothing selected
    would get a faded entry: each class's entry moves to a marker-only twin at full opacity in
    the same legend group (clicking it still hides or shows the class)."""
    chosen = np.fromiter((int(i) for i in selected), dtype=np.int64)
    if not len(chosen):
        return
    for trace in list(fig.data):
        if trace.customdata is None:
            continue
        mask = np.isin(np.asarray(trace.customdata)[:, 0].astype(np.int64), chosen)
        trace.marker.size = np.where(mask, CHOSEN["size"], FADED["size"]).tolist()
        trace.marker.opacity = np.where(mask, CHOSEN["opacity"], FADED["opacity"]).tolist()
        if trace.showlegend is not False and isinstance(trace.marker.color, str):
            fig.add_trace(_legend_entry(trace))
            trace.showlegend = False


def _legend_entry(trace) -> go.Scatter:
    """A legend-only twin of a class's trace, drawn at full opacity."""
    return go.Scatter(
        x=[None],
        y=[None],
        mode="markers",
        name=trace.name,
        legendgroup=trace.legendgroup or trace.name,
        marker={
            **POINT,
            "opacity": 1.0,
            "color": trace.marker.color,
            "symbol": trace.marker.symbol,
            "line": trace.marker.line,
        },
        hoverinfo="skip",
    )


def star(p: Placed, label_at: str = "top center") -> go.Scatter:
    """A placed upload: a dark star with a white edge (visible on light and dark themes),
    labelled with its file name and the model's prediction."""
    return go.Scatter(
        x=[p.xy[0]],
        y=[p.xy[1]],
        mode="markers+text",
        marker=STAR,
        text=[p.label],
        textposition=label_at,
        cliponaxis=False,
        name=f"★ {p.label}",
        hovertemplate=f"{p.label}<br>(uploaded, placed into the map)<extra></extra>",
    )


def selected_indices(event) -> set[int]:
    """Dataset indices of the points selected in a ``st.plotly_chart(on_select=...)`` event."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return set()
    out = set()
    for p in points:
        data = p.get("customdata")
        if data is not None:
            out.add(int(data[0] if isinstance(data, (list, tuple)) else data))
    return out


SELECTION_STATE = "emb_selection"  # embedding → Selection


@dataclass
class Selection:
    """One embedding's selection, shown in every panel, and the last event seen per panel."""

    points: frozenset[int] = frozenset()
    events: dict[str, frozenset[int]] = field(default_factory=dict)


def chart_key(panel: str) -> str:
    return f"tsne_{panel}"


def _state(data: tuple) -> Selection:
    return st.session_state.setdefault(SELECTION_STATE, {}).setdefault(data, Selection())


def current_selection(data: tuple, panels: Sequence[str]) -> set[int]:
    """The points selected in embedding ``data``, before its panels are drawn.

    One selection for all panels: a lasso or box in any panel replaces it, and every panel
    draws it (:func:`highlight`). Drawing it changes each panel's figure, so Streamlit makes a
    new chart with an empty selection (as it does when a display option such as "Colour by"
    changes); the selection is therefore kept in the session, and a panel's event counts as
    the user's only when it differs from the one that panel's chart last reported
    (:func:`record_event`, after drawing).
    """
    state = _state(data)
    for panel in panels:
        now = frozenset(selected_indices(st.session_state.get(chart_key(panel))))
        if now != state.events.get(panel, frozenset()):
            state.points = now
            state.events[panel] = now
    return set(state.points)


def record_event(data: tuple, panel: str, event) -> None:
    """Remember what ``panel``'s chart, just drawn, reports (see :func:`current_selection`)."""
    _state(data).events[panel] = frozenset(selected_indices(event))


def clear_selection(data: tuple) -> None:
    """Forget the selection of embedding ``data`` (until the user selects again)."""
    _state(data).points = frozenset()


def order_selection(emb: Embedding, selected: Collection[int]) -> list[int]:
    """The ``selected`` dataset indices, most typical first: by distance to the selection's
    centre (the mean of their pooled features, :func:`centre_kind`), nearest first; ties and
    points without features by index."""
    rows = {int(i): r for r, i in enumerate(emb.indices)}
    chosen = sorted(int(i) for i in selected if int(i) in rows)
    kind = centre_kind(emb)
    if not chosen or kind is None:
        return chosen
    x = np.asarray(emb.features[kind], dtype=np.float64)[[rows[i] for i in chosen]]
    distance = np.linalg.norm(x - x.mean(axis=0), axis=1)
    return [chosen[j] for j in np.argsort(distance, kind="stable")]


def centre_kind(emb: Embedding) -> str | None:
    """The features that order a selection: ABN's with attention (what it classifies from),
    else without; ``None`` if the embedding holds no features."""
    for kind in (WITH_ATTENTION, WITHOUT_ATTENTION):
        if kind in emb.features:
            return kind
    return None


def order_caption(emb: Embedding, total: int, shown: int) -> str:
    kind = centre_kind(emb)
    how = (
        f"Most typical first: nearest to the selection's centre (mean of the {KIND_LABELS[kind]}"
        " features, pooled) first, outliers last."
        if kind
        else "In dataset order."
    )
    return f"{total} selected; showing {shown} of {total}, with ABN's attention map. {how}"


def summary(emb: Embedding) -> str:
    return (
        f"{len(emb.indices)} images · the model's accuracy on them {emb.correct.mean():.1%} · "
        f"mean confidence {emb.confidence.mean():.2f}"
    )


def show_selection(emb: Embedding, chosen, views_, result, alpha: float, cmap: str) -> None:
    """The selected images, each with its attention map and the model's prediction."""
    row_of = {int(i): r for r, i in enumerate(emb.indices)}
    for start in range(0, len(chosen), SELECTION_COLUMNS):
        cols = st.columns(SELECTION_COLUMNS, gap="small")
        for j, col in enumerate(cols[: len(chosen) - start]):
            k = start + j
            r = row_of.get(int(chosen[k]))
            truth = emb.class_names[emb.labels[r]] if r is not None else "?"
            pred = result.name_of(int(result.predicted[k]))
            with col:
                st.image(views.upscale(views_[k], 128), width="stretch")
                st.image(
                    views.overlay_image(views_[k], result.maps[k], alpha, cmap, size=128),
                    caption=f"#{chosen[k]} · {truth} → {pred}",
                    width="stretch",
                )


# ----------------------------------------------------------------------------- uploads


@dataclass(frozen=True)
class Upload:
    """An uploaded image as each model sees it: pooled features per kind and the prediction."""

    picked: Picked
    features: dict[str, dict[str, np.ndarray]]  # model name → feature kind → C values
    prediction: dict[str, str]  # model name → predicted class


def upload_picker() -> list[Picked]:
    """Images to place into the maps, read by the app's safe reader (unreadable files are
    reported by name; the same image twice is placed once); at most :data:`MAX_PLACED`."""
    files = st.file_uploader(
        "Place your images into the maps",
        accept_multiple_files=True,
        key="emb_files",
        help="Each image is run through the models and placed into every map as a star, "
        "without moving the map (openTSNE's transform); its nearest images are listed.",
    )
    st.caption(upload_limits())
    picked = _read_uploads(files or [])
    if len(picked) > MAX_PLACED:
        st.caption(f"Placing the first {MAX_PLACED} of {len(picked)} images.")
    return picked[:MAX_PLACED]


@st.cache_data(show_spinner=False, max_entries=64)
def _pooled(key: str, digest: str, _model, _x) -> tuple[dict[str, np.ndarray], np.ndarray]:
    pooled, probs = perception_features(_model, _x)
    return {k: v[0].float().numpy() for k, v in pooled.items()}, probs[0].float().numpy()


def read_upload(refs: dict[str, ModelRef], picked: Picked) -> Upload:
    """Each model's pooled features of ``picked`` and its predicted class."""
    features, prediction = {}, {}
    for name, ref in refs.items():
        x, _ = to_input(picked.image, ref.card)
        pooled, probs = _pooled(ref.key, picked.digest, load(ref), x)
        features[name] = pooled
        prediction[name] = ref.card.class_names[int(probs.argmax())]
    return Upload(picked, features, prediction)


@st.cache_data(show_spinner=False, max_entries=128)
def _place(data: tuple, panel: str, digest: str, _emb: Embedding, kind: str, new: np.ndarray):
    xy = place(_emb.features[kind], _emb.coords[kind], new[None])[0]
    return float(xy[0]), float(xy[1])


def placed_in(data: tuple, panel: Panel, uploads: Sequence[Upload]) -> list[Placed]:
    """Where each upload lands in ``panel``'s map (none if the embedding has no features)."""
    if panel.kind not in panel.embedding.features:
        return []
    out = []
    for u in uploads:
        new = u.features[panel.model][panel.kind]
        xy = _place(data, panel.key, u.picked.digest, panel.embedding, panel.kind, new)
        out.append(Placed(u.picked.name, u.prediction[panel.model], xy))
    return out


def neighbours(emb: Embedding, upload: Upload, k: int = NEIGHBOURS) -> tuple[str, pd.DataFrame]:
    """The ``k`` embedded images nearest to ``upload`` in ABN's pooled features (with
    attention when there are such features), as a table, and which features were used."""
    kind = centre_kind(emb)
    if kind is None:
        return "", pd.DataFrame()
    rows, dist = nearest(emb.features[kind], upload.features["ABN"][kind], k)
    rows, dist = rows[0], dist[0]
    names = np.asarray(emb.class_names)
    table = pd.DataFrame(
        {
            "image": [f"#{int(i)}" for i in emb.indices[rows]],
            "true class": names[emb.labels[rows]],
            "ABN predicts": names[emb.predictions[rows]],
            "distance": dist,
        }
    )
    return kind, table
