"""Inspect: both branches' top-k predictions and the attention map of one or more images."""

from __future__ import annotations

import streamlit as st

from app import compute, layout, links, views
from app.errors import error_boundary
from app.familiarity import show_familiarity, suggest_model
from app.images import Picked, fit_note, image_picker
from app.models import (
    ModelRef,
    class_names,
    is_abn,
    is_multiclass,
    load,
    model_picker,
    share_name,
)

layout.setup(
    "Inspect",
    "Upload images or pick them from the gallery: see what both branches predict and where "
    "the attention map looks.",
    ":material/image_search:",
)
PREDICTED = "predicted class"


def method_picker(ref: ModelRef) -> tuple[str, int | None]:
    """The method (those of the registry that fit the model) and the class it explains."""
    model = load(ref)
    offered = compute.methods_for(model)
    default = compute.default_method(model)
    if st.session_state.get("inspect_method_of") != ref.key:  # another model: its own map first
        first = "inspect_method_of" not in st.session_state  # a new session: the link's method
        st.session_state["inspect_method"] = (
            links.initial_one(
                links.METHOD,
                offered,
                default,
                "a method for this model",
                None,
                compute.method_title,
            )
            if first
            else default
        )
        st.session_state["inspect_method_of"] = ref.key
    method = st.selectbox(
        "Method",
        offered,
        format_func=compute.method_title,
        help=compute.methods_help(offered),
        key="inspect_method",
    )
    links.write(links.METHOD, [method], [default])
    names = class_names(ref.card)
    agnostic = not compute.takes_target(method)
    targets, word = [PREDICTED, *names], {PREDICTED: "predicted"}
    if "inspect_target" not in st.session_state:
        st.session_state["inspect_target"] = links.initial_one(
            links.TARGET, targets, PREDICTED, "a class of this model", word
        )
    choice = st.selectbox(
        "Target class",
        targets,
        key="inspect_target",
        disabled=agnostic,
        help="The class the map explains (class-specific methods only).",
    )
    links.write(links.TARGET, [PREDICTED if agnostic else choice], [PREDICTED], word)
    if agnostic:
        st.caption(
            f"{compute.method_title(method)} is one map for every class: no target to choose."
        )
    return method, None if agnostic or choice not in names else names.index(choice)


def show_image(
    ref: ModelRef, picked: Picked, k: int, alpha: float, cmap: str, i: int, how: tuple | None
) -> None:
    """One image: overlay, raw map, both branches' top-k, downloads."""
    model = load(ref)
    method, target = how or (compute.default_method(model), None)
    result = compute.explanation(ref, picked, method, target)
    pred = compute.predict(ref, picked)
    view = compute.prepare(ref, picked).view
    names = class_names(ref.card)
    over = views.overlay_image(view, result.maps[0], alpha, cmap)
    with st.container(border=True):
        truth = f" · true class: **{picked.label}**" if picked.label else ""
        st.subheader(picked.name, anchor=False)
        title = compute.method_title(method)
        what = "ABN attention map M(x)" if method == "abn" else title
        if not model.is_abn:
            what += " (no attention branch)"
        if compute.takes_target(method):
            what += f" of **{result.name_of(int(result.targets[0]))}**"
        st.caption(
            f"{what} · predicted **{result.name_of(int(result.predicted[0]))}**{truth} · "
            f"{fit_note(picked.image.size, ref.card)}"
        )
        show_familiarity(ref, picked)
        suggest_model(picked, ref, "inspect_model", prefer=is_abn)
        c1, c2, c3 = st.columns([1, 1, 1.1], gap="medium")
        with c1:
            st.image(over, caption="Map over the image", width="stretch")
            views.download_buttons(views.stem_of(picked.name), over, result.raw[0], f"dl{i}")
        with c2:
            st.plotly_chart(
                views.map_figure(result.raw[0], cmap, "Raw map", height=300),
                key=f"raw{i}",
                width="stretch",
            )
            lo, hi = float(result.raw[0].min()), float(result.raw[0].max())
            fixed = views.color_range(result.raw[0].numpy()) == (0.0, 1.0)
            scale = "colours 0…1" if fixed else "colours span its own range"
            st.caption(
                f"{result.raw.shape[-2]}×{result.raw.shape[-1]} cells, {lo:.3f}…{hi:.3f} ({scale})"
            )
        with c3:
            views.show_topk("Perception branch (final prediction)", pred.perception, names, k)
            views.show_topk("Attention branch", pred.attention, names, k)


with st.sidebar:
    ref = None
    with error_boundary("Choosing the model"):
        ref = model_picker(
            "Model", is_multiclass, "a single-label classifier", key="inspect_model", prefer=is_abn
        )
    k = st.slider("Top-k", 1, 10, 5, key="inspect_k")
    how = None
    if ref is not None:
        with error_boundary("Choosing the method"):
            how = method_picker(ref)
alpha, cmap = views.overlay_controls("inspect")

if ref is None:
    st.info("Choose a model in the sidebar (or load your own checkpoint) to start.")
    st.stop()

pictures: list[Picked] = []
with error_boundary("Choosing images"):
    pictures = image_picker(ref.card, "inspect", multiple=True)
if not pictures:
    st.info("Upload one or more images, or choose from the gallery.")
for i, picked in enumerate(pictures):
    with error_boundary(f"Explaining {picked.name}"):
        show_image(ref, picked, k, alpha, cmap, i, how)
links.share_box({"model": share_name(ref)})
