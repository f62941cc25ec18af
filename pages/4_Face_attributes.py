"""Face attributes: the multi-task ABN's 40 per-attribute attention maps and scores."""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from app import compute, layout, views
from app.errors import error_boundary
from app.familiarity import face_notes, show_familiarity
from app.images import Picked, image_picker
from app.models import ModelRef, companion_picker, is_variant, model_picker

layout.setup(
    "Face attributes",
    "The multi-task ABN predicts 40 CelebA attributes, each with its own attention map. Sort "
    "and filter them, enlarge a few, and compare with the plain baseline's Grad-CAM.",
    ":material/face:",
)
GRID_COLUMNS = 8


def attribute_table(names: list[str], probs) -> pd.DataFrame:
    return pd.DataFrame({"attribute": names, "P(present)": probs.astype(float)})


def filtered(table: pd.DataFrame, sort: str, query: str, threshold: float) -> pd.DataFrame:
    """Rows matching ``query`` with P ≥ ``threshold``, sorted by score or name."""
    rows = table[table["P(present)"] >= threshold]
    if query:
        rows = rows[rows["attribute"].str.contains(query, case=False, regex=False)]
    if sort == "score":
        return rows.sort_values("P(present)", ascending=False, kind="stable")
    return rows.sort_values("attribute", kind="stable") if sort == "name" else rows


def show_grid(rows: pd.DataFrame, view, maps, alpha: float, cmap: str) -> None:
    names = list(rows["attribute"])
    for start in range(0, len(names), GRID_COLUMNS):
        cols = st.columns(GRID_COLUMNS, gap="small")
        for col, (i, row) in zip(
            cols, rows.iloc[start : start + GRID_COLUMNS].iterrows(), strict=False
        ):
            with col:
                st.image(
                    views.overlay_image(view, maps[i], alpha, cmap, size=160),
                    caption=f"{row['attribute'].replace('_', ' ')} · {row['P(present)']:.2f}",
                    width="stretch",
                )


def enlarge_key(ref: ModelRef, picked: Picked) -> str:
    """The "Enlarge" widget's key, one per (model, image): Streamlit identifies a keyed
    multiselect by its key alone and keeps its old selection when only ``default`` changes, so
    one key for every image left the previous image's attributes enlarged (issue #22, item 3).
    A new image gets a new widget, starting from its own top attributes."""
    ident = hashlib.sha256(f"{ref.key}\0{picked.digest}".encode()).hexdigest()[:16]
    return f"face_enlarge_{ident}"


def show_enlarged(abn_ref, plain_ref, picked: Picked, index: int, name: str, alpha, cmap, maps):
    view = compute.prepare(abn_ref, picked).view
    with st.container(border=True):
        st.subheader(name.replace("_", " "), anchor=False)
        left, right = st.columns(2, gap="medium")
        with left:
            st.image(views.overlay_image(view, maps[index], alpha, cmap), width="stretch")
            p = float(compute.predict(abn_ref, picked).perception[index])
            st.caption(f"ABN attention map M(x) (its own values, 0…1) · P(present) = {p:.2f}")
        with right:
            if plain_ref is None:
                st.info("No plain multi-task baseline available for Grad-CAM.")
                return
            result = compute.explanation(plain_ref, picked, "gradcam", index)
            pview = compute.prepare(plain_ref, picked).view
            st.image(views.overlay_image(pview, result.maps[0], alpha, cmap), width="stretch")
            p = float(result.probabilities[0, index])
            st.caption(
                f"Baseline Grad-CAM (min-max scaled) · P(present) = {p:.2f} · "
                f"{1000 * result.seconds:.0f} ms"
            )


def keyed(name: str, i: int) -> str:
    """The first image's widgets keep their plain keys; later images' get their index."""
    return name if i == 0 else f"{name}_{i}"


def show_face(abn_ref: ModelRef, plain_ref, picked: Picked, alpha, cmap, i: int) -> None:
    """One face's section: its scores (sorted, filtered), the grid of maps, enlarged ones."""
    result = compute.attribute_maps(abn_ref, picked)
    names = abn_ref.card.class_names or [f"attribute {t}" for t in range(abn_ref.card.num_classes)]
    table = attribute_table(names, result.probabilities)
    view = compute.prepare(abn_ref, picked).view

    top = st.columns([1, 3], gap="large")
    with top[0]:
        st.image(views.upscale(view), caption=picked.name, width="stretch")
        face_notes(picked, show_familiarity(abn_ref, picked))
    with top[1]:
        c1, c2, c3 = st.columns(3)
        sort = c1.radio(
            "Sort by", ["score", "name", "card order"], horizontal=True, key=keyed("face_sort", i)
        )
        query = c2.text_input(
            "Filter attributes", key=keyed("face_query", i), placeholder="e.g. hair"
        )
        threshold = c3.slider("Min. P(present)", 0.0, 1.0, 0.0, 0.05, key=keyed("face_min", i))
        rows = filtered(table, sort, query, threshold)
        st.dataframe(
            rows,
            hide_index=True,
            width="stretch",
            height=views.table_height(len(rows)),  # every row, no inner scrolling
            column_config={
                "P(present)": st.column_config.ProgressColumn(
                    "P(present)", format="%.2f", min_value=0.0, max_value=1.0
                )
            },
        )
        st.download_button(
            "Scores (CSV)",
            table.to_csv(index=False).encode(),
            "attributes.csv",
            "text/csv",
            icon=":material/download:",
            key=keyed("face_csv", i),
        )

    st.header(f"Attention maps ({len(rows)} of {len(table)} attributes)")
    if rows.empty:
        st.info("No attribute matches the filter.")
    show_grid(rows, view, result.maps, alpha, cmap)

    st.header("Enlarge")
    default = list(rows["attribute"][:2])
    chosen = st.multiselect(
        "Attributes to enlarge", names, default=default, key=enlarge_key(abn_ref, picked)
    )
    for name in chosen:
        with error_boundary(f"Explaining {name}"):
            show_enlarged(
                abn_ref, plain_ref, picked, names.index(name), name, alpha, cmap, result.maps
            )


with st.sidebar:
    abn_ref = plain_ref = None
    with error_boundary("Choosing the models"):
        abn_ref = model_picker(
            "Multi-task ABN",
            is_variant("abn_multitask"),
            "a multi-task ABN model (variant 'abn_multitask')",
            "face_abn",
        )
        plain_ref = companion_picker(
            "Plain multi-task baseline", abn_ref, ("plain_multitask",), "face_plain"
        )
alpha, cmap = views.overlay_controls("face")

if abn_ref is None:
    st.warning(
        "No multi-task ABN model (variant `abn_multitask`) is available. Train one on CelebA "
        "(`python -m abn train …`) or load your own checkpoint in the sidebar.",
        icon=":material/face:",
    )
    st.stop()

pictures: list[Picked] = []
with error_boundary("Choosing the face"):
    pictures = image_picker(abn_ref.card, "face", faces=True, several_uploads=True)
if not pictures:
    st.info("Upload faces or choose one from the gallery.")
    st.stop()
for i, picked in enumerate(pictures):
    if i:
        st.divider()
    with error_boundary(f"Computing the attribute maps of {picked.name}"):
        show_face(abn_ref, plain_ref, picked, alpha, cmap, i)
