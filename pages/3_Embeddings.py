"""Embeddings (Fig. 6): t-SNE of the perception branch's last-stage features, the baseline's and
ABN's without and with attention, and how well each clusters by class."""

from __future__ import annotations

import streamlit as st

from app import compute, embedview, layout, views
from app.config import card_root, dataset_dir, dataset_info
from app.embedview import cache_path, compute_embedding
from app.errors import DATA_HINT, error_boundary
from app.images import eval_split
from app.models import abn_with_baselines, load

layout.setup(
    "Embeddings",
    "t-SNE of the perception branch's last-stage feature maps (GAP-pooled, right before the "
    "classifier) on a dataset split, as in Fig. 6 of the paper: the plain baseline's, and ABN's "
    "perception branch run on g(x) without the attention map and on g'(x) with it. Under each "
    "plot: how well the classes cluster in those features. Select points (box or lasso) in any "
    "plot to highlight them in all three and see those images with their attention maps; "
    "upload an image to place it into the maps as a star.",
    ":material/scatter_plot:",
)

with st.sidebar:
    abn_ref, plain_ref, _ = abn_with_baselines("emb", cam=False)
    st.caption(embedview.MULTITASK_NOTE)

if abn_ref is None:
    st.info("Choose an ABN model in the sidebar (or load your own checkpoint) to start.")
    st.stop()

card = abn_ref.card
root = card_root(card)
if dataset_dir(card) is None:
    where = f"not found under `{root}`" if root else "not recorded in its card"
    st.warning(
        f"**No dataset here.** This model was trained on `{card.dataset or 'an unnamed dataset'}`"
        f", {where}.\n\n{DATA_HINT}",
        icon=":material/dataset:",
    )
    st.stop()

with st.sidebar:
    splits = list(dataset_info(card.dataset, root).splits)
    split = st.selectbox("Split", splits, index=splits.index(eval_split(card)), key="emb_split")
    n = st.slider("Points", 50, 3000, 500, 50, key="emb_n", help="Images sampled, class-balanced")
    size = compute.split_size(card.dataset, split, str(root))
    if 0 < size < n:
        n = size
        st.caption(f"`{split}` holds {size} images: all of them are used.")
    colour = st.radio("Colour by", embedview.COLOUR_BY, key="emb_colour")
    pictures = embedview.upload_picker()

refs = {"Baseline": plain_ref, "ABN": abn_ref} if plain_ref else {"ABN": abn_ref}
with error_boundary("Computing the embeddings"):
    keys = {name: compute.weights_key(ref) for name, ref in refs.items()}
    cached = all(cache_path(k, card.dataset, split, n, root).is_file() for k in keys.values())
    slot = st.empty()
    if not cached and not slot.button(
        "Compute t-SNE", type="primary", icon=":material/play_arrow:"
    ):
        st.info(
            f"t-SNE of {n} images of `{card.dataset}/{split}` for {len(refs)} model(s) is not "
            "cached yet: it takes a little while once, then loads instantly from "
            f"`{root / '.cache' / 'embeddings'}`."
        )
        st.stop()
    slot.empty()
    embeddings = {}
    bar = st.progress(0.0, "Starting…")
    for i, (name, ref) in enumerate(refs.items()):

        def progress(f: float, msg: str, i: int = i, name: str = name) -> None:
            bar.progress(min(1.0, (i + f) / len(refs)), f"{name}: {msg}")

        embeddings[name] = compute_embedding(
            load(ref), keys[name], split=split, n=n, root=root, progress=progress
        )
    bar.empty()

    panels = embedview.panels(embeddings)
    data = (tuple(keys.values()), split, n)  # what the points are; colour is display only
    selected = embedview.current_selection(data, [p.key for p in panels])
    uploads = [embedview.read_upload(refs, p) for p in pictures]
    cols = st.columns(len(panels), gap="medium")
    for col, panel in zip(cols, panels, strict=True):
        with col:
            st.markdown(f"**{panel.title}**")
            placed = embedview.placed_in(data, panel, uploads)
            event = st.plotly_chart(
                embedview.scatter(panel, colour, selected, placed),
                key=embedview.chart_key(panel.key),
                on_select="rerun",
                selection_mode=("box", "lasso"),
                width="stretch",
            )
            embedview.record_event(data, panel.key, event)
            if panel.quality is not None:
                st.caption(embedview.quality_text(panel.quality))
            st.caption(embedview.summary(panel.embedding))
    st.caption(embedview.QUALITY_NOTE)
    st.caption(
        "From the disk cache." if all(e.from_cache for e in embeddings.values()) else "Computed."
    )
    abn_emb = embeddings["ABN"]

    for upload in uploads:
        st.header(f"Placed: {upload.picked.name}")
        guesses = " · ".join(f"{m}: **{c}**" for m, c in upload.prediction.items())
        st.markdown(f"Predicted class — {guesses}. Shown as a ★ in every map.")
        st.caption(
            "The ★ is placed by openTSNE into the fixed map, an approximation: its 2-D "
            "neighbours can differ from its neighbours in feature space, listed below."
        )
        kind, table = embedview.neighbours(abn_emb, upload)
        if not table.empty:
            st.caption(
                f"Its {len(table)} nearest of the {len(abn_emb.indices)} embedded `{split}` "
                f"images, by Euclidean distance between ABN's pooled features "
                f"({embedview.KIND_LABELS[kind]}), not in the 2-D map:"
            )
            st.dataframe(table, hide_index=True)

    st.header("Selected images")
    if not selected:
        st.caption("Drag a box or lasso over points in any plot to see those images here.")
    else:
        ordered = embedview.order_selection(abn_emb, selected)
        chosen = ordered[: embedview.MAX_SELECTED]
        views_, result = compute.dataset_maps(abn_ref, split, chosen, str(root))
        alpha, cmap = views.overlay_controls("emb")
        st.caption(embedview.order_caption(abn_emb, len(ordered), len(chosen)))
        st.button(
            "Clear selection",
            key="emb_clear",
            icon=":material/deselect:",
            on_click=embedview.clear_selection,
            args=(data,),
        )
        embedview.show_selection(abn_emb, chosen, views_, result, alpha, cmap)
