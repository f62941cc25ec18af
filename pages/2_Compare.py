"""Compare: one image, many explanation methods, a shared colour scale and their agreement."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import compute, glossary, layout, links, views
from app.compute import agreement_matrix, minmax_per_map
from app.errors import error_boundary
from app.familiarity import show_familiarity, suggest_model
from app.images import Picked, image_picker
from app.models import ModelRef, abn_with_baselines, class_names, is_abn, share_name

layout.setup(
    "Compare",
    "One image, many explanations: ABN's attention and class map, CAM, and post-hoc methods "
    "(the Grad-CAM family, RISE, Integrated Gradients, Occlusion) on the plain baseline and on "
    "the ABN model — with the time each took and how much they agree.",
    ":material/compare:",
)
COLUMNS = 4  # thumbnails per row: large enough to see where each map looks


def show_grid(cells, results, picked: Picked, alpha: float, cmap: str) -> None:
    """Overlays in a grid; each with its model's prediction and the method's time."""
    for row in range(0, len(cells), COLUMNS):
        cols = st.columns(COLUMNS, gap="small")
        for col, cell in zip(cols, cells[row : row + COLUMNS], strict=False):
            result = results[cell.label]
            view = compute.prepare(cell.ref, picked).view
            pred = int(result.predicted[0])
            p = float(result.probabilities[0, pred])
            with col, st.container(border=True):
                st.markdown(f"**{cell.label}**")
                shown = minmax_per_map(result.maps[:1])[0]  # ABN's raw M(x) too: one scale for all
                st.image(views.overlay_image(view, shown, alpha, cmap), width="stretch")
                target = (
                    f"target {result.name_of(int(result.targets[0]))}"
                    if compute.takes_target(cell.method)
                    else "one map for every class"  # M(x), EigenCAM: the same for any target
                )
                st.caption(
                    f"predicts **{result.name_of(pred)}** ({p:.1%}) · {target} · "
                    f"{1000 * result.seconds:.0f} ms"
                )


def common_target(choice: str, names: list[str], abn: ModelRef, picked: Picked) -> int | None:
    """The class every map explains (``None``: each model its own prediction), said in a caption."""
    if choice == PER_MODEL:
        st.caption(
            "Each map explains its own model's predicted class: **the maps may explain different "
            "classes** (each card names its target)."
        )
        return None
    if choice in names:
        return names.index(choice)
    target = int(compute.predict(abn, picked).perception.argmax())
    st.caption(f"target: **{names[target]}** (the ABN model's prediction) for every map")
    return target


def agreement_tables(cells, results: dict, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spearman and top-``fraction`` IoU matrices (rows: full labels, columns: short ones)."""
    maps = {c.label: results[c.label].maps[0].numpy() for c in cells}
    names, rho = agreement_matrix(maps, "spearman")
    _, iou = agreement_matrix(maps, "iou", fraction)
    short = [c.short or c.label for c in cells]
    return pd.DataFrame(rho, names, short), pd.DataFrame(iou, names, short)


def show_agreement(cells, results: dict, i: int = 0) -> None:
    st.header("Agreement between the maps")
    st.caption(
        "Spearman rank correlation of all pixels, and overlap (IoU) of each map's top 20% pixels. "
        "1 means identical rankings / regions."
    )
    if i == 0:
        with st.expander("How to read these numbers", icon=":material/help:"):
            st.markdown(glossary.how_to_read(["spearman", "iou"]))
    rho, iou = agreement_tables(cells, results, 0.2)
    for frame, title, stem in ((rho, "Spearman ρ", "spearman"), (iou, "IoU of top 20%", "iou")):
        st.markdown(f"**{title}**", help=glossary.help_text(stem))
        st.dataframe(
            frame.style.format("{:.2f}").background_gradient(cmap="Blues", vmin=0, vmax=1),
            width="stretch",
            height=views.table_height(len(frame)),  # every row, no inner scrolling
        )
        st.download_button(
            f"{title} (CSV)",
            frame.to_csv().encode(),
            f"agreement_{stem}.csv",
            "text/csv",
            icon=":material/download:",
            key=f"cmp_csv_{stem}_{i}",
        )


def show_picture(cells, picked: Picked, choice: str, names: list[str], i: int) -> None:
    """One image's section: its target, every method's map, and their agreement (the page's
    ABN model, opacity and colormap)."""
    st.header(picked.name)
    for model_ref in dict.fromkeys(cell.ref for cell in cells):  # each model's own signal
        show_familiarity(model_ref, picked, who=model_ref.label)
    suggest_model(picked, abn_ref, "cmp_abn", accept=is_abn)
    target = common_target(choice, names, abn_ref, picked)
    results = {}
    bar = st.progress(0.0, "Computing maps…")
    for n, cell in enumerate(cells):
        bar.progress(n / len(cells), f"Computing {cell.label}…")

        def moved(fraction: float, message: str, n=n, label=cell.label) -> None:
            bar.progress((n + fraction) / len(cells), f"Computing {label}… {fraction:.0%}")

        results[cell.label] = compute.explanation(cell.ref, picked, cell.method, target, moved)
    bar.empty()
    show_grid(cells, results, picked, alpha, cmap)
    show_agreement(cells, results, i)


with st.sidebar:
    abn_ref, plain_ref, cam_ref = abn_with_baselines("cmp")
    offered = compute.post_hoc_methods()
    family = links.multiselect(
        "Post-hoc methods (on both models)",
        offered,
        compute.default_post_hoc(),
        "a post-hoc method",
        key="cmp_family",
        shown=compute.method_title,
        help=compute.methods_help(offered),
    )
alpha, cmap = views.overlay_controls("cmp")

if abn_ref is None:
    st.info("Choose an ABN model in the sidebar (or load your own checkpoint) to start.")
    st.stop()

pictures: list[Picked] = []
top = st.columns([2, 1], gap="large")
with top[0], error_boundary("Choosing the image"):
    pictures = image_picker(abn_ref.card, "cmp", several_uploads=True)
if not pictures:
    st.info("Upload images or choose one from the gallery.")
    st.stop()
names = class_names(abn_ref.card)
COMMON, PER_MODEL = "the ABN model's prediction (every map)", "each model's own prediction"
with top[1]:
    choice = links.selectbox(
        "Target class",
        [COMMON, PER_MODEL, *names],
        COMMON,
        "a target on this page",
        key="cmp_target",
        tokens={COMMON: "abn-prediction", PER_MODEL: "each-model"},
    )

cells = []
with error_boundary("Choosing the methods"):
    cells = compute.comparison_cells(abn_ref, plain_ref, cam_ref, family)
st.plotly_chart(
    views.colorbar_figure(cmap), key="cmp_colorbar", width="stretch", config={"staticPlot": True}
)
with error_boundary("Estimating the time"):
    slow = compute.slow_estimate(cells, len(pictures)) if cells else None
    if slow:
        st.info(
            f"{', '.join(slow[1])} run{'s' if len(slow[1]) == 1 else ''} many forward passes: "
            f"{compute.about(slow[0])} for {len(pictures)} image(s) on this machine (from a "
            "measured forward pass of each model). The bar below follows them.",
            icon=":material/timer:",
        )
for i, picked in enumerate(pictures if cells else []):
    with error_boundary(f"Computing the maps of {picked.name}"):
        show_picture(cells, picked, choice, names, i)
if cells:
    st.caption(
        f"Each map is min-max scaled to [0, 1] here, ABN's attention map included (Inspect shows "
        f"its raw values), and all share one colour scale ({cmap})."
    )
links.share_box({"model": share_name(abn_ref)})
