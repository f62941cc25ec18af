"""Batch report: several images or a ZIP → one self-contained HTML report to download."""

from __future__ import annotations

import streamlit as st

from app import layout
from app import report as batch
from app.errors import error_boundary
from app.images import UPLOAD_FORMATS, upload_limits
from app.models import model_picker

layout.setup(
    "Batch report",
    "Upload several images or a ZIP of them: every image explained by one model, in one HTML "
    "file that opens offline (the same as `python -m abn report`).",
    ":material/summarize:",
)

ref = None
with st.sidebar:
    with error_boundary("Choosing the model"):
        ref = model_picker("Model", lambda card: True, "a model", key="report_model")
    methods: list[str] = []
    scores = False
    if ref is not None:
        with error_boundary("Choosing the methods"):
            methods, scores = batch.options(ref)

if ref is None:
    st.info("Choose a model in the sidebar (or load your own checkpoint) to start.")
    st.stop()

files = st.file_uploader(
    "Images or ZIP archives",
    accept_multiple_files=True,
    key="report_files",
    help=f"{UPLOAD_FORMATS}, or ZIP archives of them; unreadable files are listed in the "
    "report with the reason",
)
st.caption(upload_limits())
if not files:
    st.info("Upload two or more images (or a ZIP of them) to make a report.")
    st.stop()
if not methods:
    st.warning("Choose at least one method in the sidebar.")
    st.stop()

with error_boundary("Making the report"):
    sources, skipped, content = batch.read_uploads(files)
    key = (ref.key, content, tuple(methods), scores)
    pending = st.empty()  # the button while there is no report; gone once it is made
    done = batch.finished(key)
    if done is None:
        with pending.container():
            st.caption(f"{len(sources)} image(s) to explain, {len(skipped)} skipped so far.")
            make = st.button("Make the report", type="primary", key="report_make")
        if make:
            done = batch.build(ref, sources, skipped, methods, scores, key)
            pending.empty()
    if done is not None:
        batch.show(done)
