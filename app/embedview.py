"""Views of t-SNE embeddings: the scatter plots, their selection, and the selected images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from abn.embeddings import WITH_ATTENTION, WITHOUT_ATTENTION, ClusterQuality, Embedding
from abn.embeddings import cache_path as cache_path  # for the pages
from abn.embeddings import compute_embedding as compute_embedding  # for the pages

from . import views

COLOUR_BY = ("true class", "predicted class", "correctness", "confidence")
MAX_SELECTED = 16
SELECTION_COLUMNS = 8


@dataclass
class Panel:
    """One scatter plot: a model's embedding of one feature kind."""

    title: str
    key: str
    embedding: Embedding
    kind: str

    @property
    def quality(self) -> ClusterQuality | None:
        return self.embedding.quality.get(self.kind)


def panels(embeddings: dict[str, Embedding]) -> list[Panel]:
    """Fig. 6's panels, all of the perception branch's last-stage features: the baseline's, and
    ABN's without attention (the branch on g(x)) and with it (on g'(x))."""
    out = []
    if "Baseline" in embeddings:
        baseline = embeddings["Baseline"]
        out.append(Panel("Baseline (plain) · branch on g(x)", "plain", baseline, WITHOUT_ATTENTION))
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


def scatter(panel: Panel, colour: str) -> go.Figure:
    """A t-SNE scatter coloured by ``colour`` with the image's facts on hover."""
    df = frame(panel.embedding, panel.kind)
    kwargs = {}
    if colour == "confidence":
        kwargs = {"color_continuous_scale": "Viridis", "range_color": (0, 1)}
    elif colour == "correctness":
        kwargs = {"color_discrete_map": {"correct": "#2a9d8f", "wrong": "#e76f51"}}
    else:
        kwargs = {"category_orders": {colour: list(panel.embedding.class_names)}}
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
    fig.update_traces(marker={"size": 6, "opacity": 0.8})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(
        height=430,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        legend={"orientation": "h", "y": -0.02, "title": None, "font": {"size": 10}},
        dragmode="lasso",
    )
    return fig


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


SELECTION_STATE = "emb_selection"  # (embedding, panel) → SelectionEntry


@dataclass(frozen=True)
class SelectionEntry:
    """A panel's kept selection, and the chart (display options) and event it last came from."""

    chart: str
    event: frozenset[int]
    selection: frozenset[int]


def kept_selection(data: tuple, panel: str, chart: str, event) -> set[int]:
    """The points selected in ``panel`` of embedding ``data``, kept across display options.

    Streamlit identifies a plotly chart by its figure, so recolouring makes a new chart with an
    empty selection; the selection is therefore kept in the session, per embedding and panel,
    and replaced only when the user selects (or clears) in the chart of the same display
    options (``chart``) that it last came from.
    """
    store = st.session_state.setdefault(SELECTION_STATE, {})
    now = frozenset(selected_indices(event))
    entry = store.get((data, panel))
    if entry is None or (entry.chart == chart and entry.event != now):
        entry = SelectionEntry(chart, now, now)
    elif entry.chart != chart:  # a recoloured chart: its empty event is no choice of the user
        entry = SelectionEntry(chart, now, now or entry.selection)
    store[(data, panel)] = entry
    return set(entry.selection)


def clear_selection(data: tuple) -> None:
    """Forget the kept selections of embedding ``data`` (until the user selects again)."""
    store = st.session_state.get(SELECTION_STATE, {})
    for k, entry in list(store.items()):
        if k[0] == data:
            store[k] = SelectionEntry(entry.chart, entry.event, frozenset())


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
