"""The Batch report page's pieces: uploads → sources, the report built with a progress bar and
kept per its inputs, its preview and its download (the work is :mod:`abn.report`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from abn.report import Report, Skipped, Source, build_report, sources_from_uploads

from . import compute
from .models import ModelRef, load

KEPT = 4  # finished reports kept per session (going back to earlier choices is instant)
FILE_NAME = "abn-report.html"


@dataclass
class Finished:
    """A built report and its page."""

    report: Report
    html: str


def options(ref: ModelRef) -> tuple[list[str], bool]:
    """The sidebar's method picker (the registry's methods that fit the model; its own map
    first, again whenever the model changes) and whether to compute the scores (single-label
    models only)."""
    model = load(ref)
    offered = compute.methods_for(model)
    if st.session_state.get("report_methods_of") != ref.key:
        st.session_state["report_methods"] = [compute.default_method(model)]
        st.session_state["report_methods_of"] = ref.key
    methods = st.multiselect(
        "Methods",
        offered,
        format_func=compute.method_title,
        help=compute.methods_help(offered),
        key="report_methods",
    )
    scores = st.checkbox(
        "Faithfulness scores",
        key="report_scores",
        disabled=model.is_multitask,
        help="Deletion/insertion AUC, Average Drop, Increase in Confidence and ROAD per image "
        "and method, summarised at the top: about 40 forward passes per image and method "
        "(single-label models only).",
    )
    return methods, scores and not model.is_multitask


def read_uploads(files) -> tuple[list[Source], list[Skipped], str]:
    """The uploads' images (a ZIP's expanded), what was skipped, and a key of their content."""
    pairs = [(f.name, f.getvalue()) for f in files]
    h = hashlib.sha256()
    for name, data in pairs:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    sources, skipped = sources_from_uploads(pairs)
    return sources, skipped, h.hexdigest()[:20]


def _kept() -> dict[tuple, Finished]:
    return st.session_state.setdefault("report_results", {})


def finished(key: tuple) -> Finished | None:
    """The report already built for ``key`` in this session, if any."""
    return _kept().get(key)


def build(
    ref: ModelRef,
    sources: list[Source],
    skipped: list[Skipped],
    methods: list[str],
    scores: bool,
    key: tuple,
) -> Finished:
    """Build the report with a progress bar per image, and keep it under ``key``."""
    bar = st.progress(0.0, f"Explaining {len(sources)} image(s)…")

    def progress(done: int, total: int, name: str) -> None:
        bar.progress(done / max(total, 1), f"{done}/{total} · {name}")

    checkpoint = ref.data if ref.data is not None else ref.path
    command = f"dashboard, Batch report page: {len(sources) + len(skipped)} upload(s)"
    report = build_report(
        load(ref), sources, methods, skipped=skipped, scores=scores, checkpoint=checkpoint,
        command=command, progress=progress,
    )  # fmt: skip
    bar.empty()
    done = Finished(report, report.to_html())
    kept = _kept()
    kept[key] = done
    while len(kept) > KEPT:
        kept.pop(next(iter(kept)))
    return done


def show(done: Finished) -> None:
    """The summary preview, what was skipped, and the download button."""
    report = done.report
    st.success(
        f"Report ready: {len(report.images)} image(s), {len(report.skipped)} skipped.",
        icon=":material/check_circle:",
    )
    st.download_button(
        "Download the report (HTML)",
        data=done.html.encode("utf-8"),
        file_name=FILE_NAME,
        mime="text/html",
        icon=":material/download:",
        type="primary",
        key="report_download",
    )
    st.caption(
        f"{_size(len(done.html))}, one self-contained file (opens offline) · "
        f"unlike the training data: {report.calibration}"
    )
    if report.scored:
        st.subheader("Faithfulness scores (mean over the images)", anchor=False)
        st.dataframe(_score_preview(report), hide_index=True, width="stretch")
    st.subheader("Summary", anchor=False)
    if report.images:
        st.dataframe(report.summary(), hide_index=True, width="stretch")
    else:
        st.warning("No image could be read: the report lists each file and why.")
    if report.skipped:
        st.subheader("Skipped", anchor=False)
        st.dataframe(
            pd.DataFrame([{"input": s.name, "reason": s.reason} for s in report.skipped]),
            hide_index=True,
            width="stretch",
        )


def _score_preview(report: Report) -> pd.DataFrame:
    from abn.metrics.scorecard import LABELS

    table = report.score_table()
    cols = [c for c in LABELS if c in table.columns]
    out = table[["method", "n", *cols]].rename(columns=LABELS)
    return out.round(3)


def _size(n_bytes: int) -> str:
    """A file size for people: kB below a megabyte, else MB."""
    return f"{n_bytes / 1e3:.0f} kB" if n_bytes < 1e6 else f"{n_bytes / 1e6:.1f} MB"
