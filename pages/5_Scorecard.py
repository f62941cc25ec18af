"""Scorecard: how faithful is each map to the model it explains?"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app import compute, glossary, layout, links
from app.compute import LABELS, paired_differences, reference_method, summarize
from app.config import card_root
from app.errors import DataError, error_boundary
from app.familiarity import show_familiarity
from app.glossary import help_text
from app.images import eval_split, image_picker
from app.models import abn_with_baselines, share_name

layout.setup(
    "Scorecard",
    "Deletion and insertion (RISE): pixels are removed (set to the mean colour) or revealed on a "
    "blurred copy in the "
    "order a map ranks them while the explained class's probability is tracked. A faithful map "
    "makes deletion fall fast (low AUC) and insertion rise fast (high AUC).",
    ":material/fact_check:",
)


PALETTE = px.colors.qualitative.D3  # one colour per method, in both tabs
SHOWN = ("deletion_auc", "insertion_auc", "avg_drop", "increase")  # the page's metrics (no ROAD)
PAIRED = ("difference", "ci_low", "ci_high", "p_holm", "better")


def helped(columns: dict[str, str]) -> dict:
    """``st.dataframe``'s ``column_config``: each shown column (name → glossary key) with its
    plain-language tooltip."""
    return {name: st.column_config.Column(help=help_text(k)) for name, k in columns.items()}


def how_to_read() -> None:
    """The "How to read these numbers" panel: every number this page shows, in plain words."""
    with st.expander("How to read these numbers", icon=":material/help:"):
        st.markdown(glossary.how_to_read([*SHOWN, "n", *PAIRED]))


def curves_figure(cells, curves: dict) -> go.Figure:
    fig = make_subplots(1, 2, subplot_titles=("Deletion (lower AUC is better)",
                                               "Insertion (higher AUC is better)"))  # fmt: skip
    for i, cell in enumerate(cells):
        c = curves[cell.label]
        for col, mode in enumerate(("deletion", "insertion"), start=1):
            fig.add_scatter(
                x=c["fractions"], y=c[mode], row=1, col=col, mode="lines",
                name=f"{cell.label} ({mode[:3]}. AUC {float(c[f'{mode}_auc']):.3f})",
                line={"color": PALETTE[i % len(PALETTE)]}, legendgroup=cell.label,
            )  # fmt: skip
    fig.update_xaxes(title="fraction of pixels", range=[0, 1])
    fig.update_yaxes(title="P(explained class)", range=[0, 1.02])
    fig.update_layout(height=420, margin={"t": 40, "b": 10}, legend={"font": {"size": 11}})
    return fig


def auc_table(cells, curves: dict) -> pd.DataFrame:
    keys = ("deletion_auc", "insertion_auc")
    rows = [{"method": c.label, **{LABELS[k]: float(curves[c.label][k]) for k in keys}}
            for c in cells]  # fmt: skip
    return pd.DataFrame(rows).set_index("method")


def show_split(cells, summary: pd.DataFrame, table: pd.DataFrame) -> None:
    cols = [c for c in LABELS if c in summary.columns]
    view = summary.set_index("method")[["n", *cols]]
    view.columns = ["n", *[LABELS[c] for c in cols]]
    st.dataframe(
        view.style.format("{:.3f}", subset=view.columns[1:]),
        width="stretch",
        column_config=helped({"n": "n", **{LABELS[c]: c for c in cols}}),
    )
    st.caption(
        "Means over the sample. Average Drop and Increase in Confidence (Grad-CAM++ paper) mask "
        "the image with each map min-max scaled to [0, 1]."
    )
    show_differences(cells, table)
    metric = st.selectbox(
        "Distribution of",
        cols,
        format_func=LABELS.get,
        key="sc_metric",
        help=glossary.how_to_read(cols),
    )
    order = [c.label for c in cells]  # the one-image tab's colours, method for method
    fig = px.box(table, x="method", y=metric, points="outliers", color="method",
                 category_orders={"method": order}, color_discrete_sequence=PALETTE,
                 labels={metric: LABELS[metric], "method": ""})  # fmt: skip
    fig.update_layout(showlegend=False, height=380, margin={"t": 10})
    st.plotly_chart(fig, key="sc_box", width="stretch")
    st.download_button("Per-image scores (CSV)", table.to_csv(index=False).encode(),
                       "scorecard.csv", "text/csv", icon=":material/download:")  # fmt: skip


def show_differences(cells, table: pd.DataFrame) -> None:
    """Each method minus the ABN map on the same images, with its paired interval and test."""
    diffs = paired_differences(table, reference_method(cells)) if len(cells) > 1 else pd.DataFrame()
    if diffs.empty:
        return
    view = diffs.assign(metric=diffs["metric"].map(LABELS))[
        ["method", "metric", "n", "difference", "ci_low", "ci_high", "p_holm", "better"]
    ]
    delta = f"Δ vs {diffs['reference'].iloc[0]}"
    view.columns = ["method", "metric", "n", delta, "95% CI low",
                    "95% CI high", "p (Holm)", "significantly better"]  # fmt: skip
    st.markdown(f"**Paired differences from {diffs['reference'].iloc[0]}** (the same images)")
    config = helped(dict(zip(["n", delta, *view.columns[4:]], ["n", *PAIRED], strict=True)))
    st.dataframe(view.style.format("{:+.3f}", subset=view.columns[3:6])
                 .format("{:.3g}", subset=["p (Holm)"]), hide_index=True, width="stretch",
                 column_config=config)  # fmt: skip
    st.caption(
        "Per metric, each method's score minus the ABN map's on each image: the mean, its 95% "
        "t-interval, and the paired t-test's p-value, Holm-adjusted over all the rows; "
        "'significantly better' names the better of the two where p (Holm) ≤ 0.05."
    )


RESULTS = "sc_results"  # SplitRun → per-image table, this session's, newest last
KEEP_RESULTS = 8


class SplitRun(NamedTuple):
    """What a split scorecard depends on (its models and methods are in ``cells``). A tuple:
    the page defines its classes again on every run, and a dataclass equals only instances of
    its own class, so a result kept from an earlier run was never found again."""

    cells: tuple[compute.Cell, ...]
    split: str
    n: int
    steps: int

    def describe(self) -> str:
        methods = len(self.cells)
        return f"{self.n} images, {self.steps} steps per curve, {methods} maps"


def remember(run: SplitRun, table: pd.DataFrame) -> None:
    """Keep ``run``'s table in the session (the newest last, at most ``KEEP_RESULTS``)."""
    results = st.session_state.setdefault(RESULTS, {})
    results.pop(run, None)
    results[run] = table
    while len(results) > KEEP_RESULTS:
        results.pop(next(iter(results)))


def shown_run(run: SplitRun) -> SplitRun | None:
    """The result to show: ``run``'s own if it was scored, else the newest one of the same
    models and split (a display option such as the one-image steps never discards it)."""
    results = st.session_state.get(RESULTS, {})
    if run in results:
        return run
    same = [r for r in results if r.split == run.split and _models(r) == _models(run)]
    return same[-1] if same else None


def _models(run: SplitRun) -> frozenset[str]:
    return frozenset(c.ref.key for c in run.cells)


def score_one(cells, picked, steps: int, i: int, titled: bool) -> None:
    """One image's deletion/insertion curves and AUC table (a heading when there are several)."""
    if titled:
        st.subheader(picked.name, anchor=False)
    for model_ref in dict.fromkeys(cell.ref for cell in cells):  # each model's own signal
        show_familiarity(model_ref, picked, who=model_ref.label)
    bar = st.progress(0.0, "Scoring…")
    curves = {}
    for n, cell in enumerate(cells):
        bar.progress(n / len(cells), f"Deletion and insertion of {cell.label}…")
        curves[cell.label] = compute.perturbation(cell.ref, picked, cell.method, steps)
    bar.empty()
    st.plotly_chart(curves_figure(cells, curves), key=f"sc_curves_{i}", width="stretch")
    st.dataframe(
        auc_table(cells, curves).style.format("{:.3f}"),
        width="stretch",
        column_config=helped({LABELS[k]: k for k in ("deletion_auc", "insertion_auc")}),
    )


with st.sidebar:
    abn_ref, plain_ref, cam_ref = abn_with_baselines("sc")
    offered = compute.post_hoc_methods()
    family = links.multiselect(
        "Post-hoc methods (on both models)",
        offered,
        compute.default_post_hoc(),
        "a post-hoc method",
        key="sc_family",
        shown=compute.method_title,
        help=compute.methods_help(offered),
    )
    steps = st.slider("Steps per curve", 8, 64, 16, step=8, key="sc_steps")

if abn_ref is None:
    st.info("Choose an ABN model in the sidebar (or load your own checkpoint) to start.")
    st.stop()

cells = [c for c in compute.comparison_cells(abn_ref, plain_ref, cam_ref, family)
         if c.method != "abn-class"]  # fmt: skip
how_to_read()
one, split = st.tabs(["One image", "A dataset split"])

with one:
    pictures = []
    with error_boundary("Choosing the image"):
        pictures = image_picker(abn_ref.card, "sc", several_uploads=True)
    for i, picked in enumerate(pictures):
        with error_boundary(f"Scoring the maps of {picked.name}"):
            score_one(cells, picked, steps, i, titled=len(pictures) > 1)
    if not pictures:
        st.info("Upload images or choose one from the gallery.")

with split:
    test_split = eval_split(abn_ref.card)
    st.markdown(
        f"Every method explains its own model's prediction on the same seeded sample of "
        f"**{abn_ref.card.dataset}/{test_split}**, and each is compared with the ABN map image "
        "by image; the CLI (`python -m abn scorecard`) also gives each method's 95% intervals."
    )
    n = st.slider("Images", 20, 500, 60, step=20, key="sc_n")
    run = SplitRun(tuple(cells), test_split, n, steps)
    with error_boundary("Estimating the time"):
        st.caption(
            f"Takes {compute.about(compute.split_estimate(cells, n, steps))} on this machine "
            f"for {n} images × {len(cells)} maps (from a measured forward pass of each model)."
        )
    if st.button("Compute the scorecard", key="sc_go", icon=":material/play_arrow:"):
        with error_boundary("Scoring the dataset split"):
            bar = st.progress(0.0, "Scoring the split…")

            def progress(done: int, total: int, label: str) -> None:
                batch = min(int(done) + 1, total)  # ``done`` moves within a batch too
                bar.progress(min(done / max(total, 1), 1.0), f"{label}: batch {batch}/{total}")

            root = card_root(abn_ref.card)
            if root is None:
                raise DataError(f"{abn_ref.card.dataset}: the model's card records no data root")
            table = compute.split_scores(cells, test_split, n, steps, str(root), progress)
            bar.empty()
            remember(run, table)
    shown = shown_run(run)
    if shown is not None:
        if shown != run:
            st.caption(
                f"Scored earlier with {shown.describe()}; the settings now "
                f"({run.describe()}) are not scored yet: press the button to score them."
            )
        table = st.session_state[RESULTS][shown]
        show_split(list(shown.cells), summarize(table), table)
links.share_box({"model": share_name(abn_ref)})
