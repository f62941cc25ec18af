"""ABN dashboard: what an Attention Branch Network is, the models at hand, and the pages."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import layout
from app.config import assets_dir, data_root
from app.diagram import ABN_DOT
from app.errors import error_boundary
from app.models import accuracy, discover

layout.setup(
    "Attention Branch Networks",
    "Explore what ABN models look at — Fukui et al., CVPR 2019.",
    ":material/visibility:",
)

st.markdown(
    "An **Attention Branch Network** adds an *attention branch* to an ordinary CNN: from the "
    "features *g(x)* of the **feature extractor** it predicts the classes the way CAM does and, "
    "on the way, produces an **attention map M(x)**. "
    "The map re-weights the features, *g'(x) = (1 + M(x))·g(x)*, and the **perception branch** "
    "classifies from those attended features, so attention and prediction are trained together. "
    "The map is therefore both a visual explanation that comes free with every forward pass and "
    "a mechanism that improves accuracy."
)
with st.container(border=True):
    st.graphviz_chart(ABN_DOT, width="stretch")


def _accuracy_text(card) -> str:
    value = accuracy(card)
    return f"{value:.2f} %" if value is not None else "not evaluated yet"


st.header("Models")
with error_boundary("Listing the models"):
    refs, problems = discover()
    if refs:
        rows = [
            {
                "model": f"{r.card.arch} · {r.card.variant}",
                "dataset": r.card.dataset or "—",
                "classes": r.card.num_classes,
                "class names": ", ".join(r.card.class_names[:3])
                + (" …" if len(r.card.class_names) > 3 else ""),
                "accuracy": _accuracy_text(r.card),
                "file": r.filename,
            }
            for r in refs
        ]
        st.dataframe(
            pd.DataFrame(rows),
            hide_index=True,
            width="stretch",
            column_config={
                "class names": st.column_config.TextColumn("class names", width="medium"),
                "accuracy": st.column_config.TextColumn(
                    "accuracy", help="Perception branch, test split, from the model card"
                ),
                "file": st.column_config.TextColumn("file", width="large"),
            },
        )
    else:
        st.info(
            f"No models found in `{assets_dir()}`. Train one (`python -m abn train …`) or load "
            "your own checkpoint on any page."
        )
    for problem in problems:
        st.warning(problem, icon=":material/warning:")
    if not data_root().is_dir():
        st.caption(
            f"No dataset under `{data_root()}`: galleries use bundled sample photos and the "
            "Embeddings page needs `python -m abn data prepare`."
        )

st.header("Pages")
descriptions = {
    "inspect": "Predictions of both branches and the attention map of your images.",
    "compare": "ABN attention next to CAM, the Grad-CAM family, RISE, Integrated Gradients and Occlusion — and how they agree.",
    "embeddings": "t-SNE of the last stage's features: baseline, ABN without and with attention (Fig. 6), with cluster quality.",
    "faces": "40 per-attribute attention maps of the multi-task CelebA model.",
    "scorecard": "Deletion/insertion curves and scores: is each map faithful to its model?",
    "edit": "Edit an ABN's attention map, watch the prediction change, fine-tune from the edits.",
    "report": "Many images or a ZIP → one HTML report to download: maps, predictions, scores.",
}
CARDS_PER_ROW = 4  # more per row cuts the titles at 1440 px
items = list(descriptions.items())
for start in range(0, len(items), CARDS_PER_ROW):
    cols = st.columns(CARDS_PER_ROW)
    for col, (name, text) in zip(cols, items[start : start + CARDS_PER_ROW], strict=False):
        with col, st.container(border=True):
            layout.page_link(name)
            st.caption(text)
