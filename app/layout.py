"""Page setup shared by every page: wide layout, title, one-line intro."""

from __future__ import annotations

import streamlit as st

PAGES = {
    "inspect": ("pages/1_Inspect.py", "Inspect", ":material/image_search:"),
    "compare": ("pages/2_Compare.py", "Compare", ":material/compare:"),
    "embeddings": ("pages/3_Embeddings.py", "Embeddings", ":material/scatter_plot:"),
    "faces": ("pages/4_Face_attributes.py", "Face attributes", ":material/face:"),
    "scorecard": ("pages/5_Scorecard.py", "Scorecard", ":material/fact_check:"),
    "edit": ("pages/6_Edit_attention.py", "Edit attention", ":material/edit:"),
    "report": ("pages/7_Batch_report.py", "Batch report", ":material/summarize:"),
}


def setup(title: str, intro: str, icon: str = ":material/visibility:") -> None:
    """Configure the page (wide) and show its heading and what it is for."""
    st.set_page_config(page_title=f"{title} · ABN", page_icon=icon, layout="wide")
    st.title(title)
    st.caption(intro)


def page_link(name: str, help_text: str = "") -> None:
    """A link to one of the dashboard's pages."""
    path, label, icon = PAGES[name]
    st.page_link(path, label=label, icon=icon, help=help_text or None)
