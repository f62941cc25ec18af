"""Plain-language help for each metric (issue #22, item 6): every number column on the Scorecard
has a tooltip from the glossary, and the pages that show metrics explain how to read them."""

from __future__ import annotations

import pandas as pd
import pytest
import streamlit as st

from abn.metrics import glossary

from .conftest import assert_clean, run_page


@pytest.fixture
def shown_tables(monkeypatch) -> list[tuple[pd.DataFrame, dict]]:
    """Every ``st.dataframe`` call's data (a Styler's frame) and ``column_config``."""
    shown = []
    original = st.dataframe

    def spy(data=None, *args, **kwargs):
        shown.append((getattr(data, "data", data), kwargs.get("column_config") or {}))
        return original(data, *args, **kwargs)

    monkeypatch.setattr(st, "dataframe", spy)
    return shown


def unexplained(frame: pd.DataFrame, config: dict) -> list[str]:
    """The number columns of ``frame`` without a glossary tooltip."""
    texts = {t.help for t in glossary.TERMS.values()}
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    return [c for c in numeric if (config.get(c) or {}).get("help") not in texts]


@pytest.mark.slow
def test_every_number_on_the_scorecard_has_its_help(app_env, tiny_cifar, shown_tables):
    at = run_page("pages/5_Scorecard.py")
    at.slider(key="sc_n").set_value(20).run()
    at.slider(key="sc_steps").set_value(8).run()
    at.button(key="sc_go").click().run()
    assert_clean(at)
    frames = {tuple(f.columns): (f, c) for f, c in shown_tables}
    columns = {c for names in frames for c in names}
    for key in ("deletion_auc", "insertion_auc", "avg_drop", "increase", "n", "p_holm"):
        assert any(c.startswith(glossary.term(key).name) for c in columns), key
    for frame, config in frames.values():
        assert not unexplained(frame, config), (list(frame.columns), unexplained(frame, config))
    panels = [e for e in at.expander if e.label == "How to read these numbers"]
    assert len(panels) == 1
    text = panels[0].markdown[0].value
    for key in ("deletion_auc", "insertion_auc", "avg_drop", "increase", "p_holm"):
        assert glossary.term(key).help in text, key


def test_compare_agreement_tables_say_how_to_read_them(app_env):
    at = run_page("pages/2_Compare.py")
    assert_clean(at)
    panels = [e for e in at.expander if e.label == "How to read these numbers"]
    assert len(panels) == 1
    assert glossary.help_text("spearman") in panels[0].markdown[0].value
    titles = {
        m.value: m.help for m in at.markdown if m.value in ("**Spearman ρ**", "**IoU of top 20%**")
    }
    assert titles == {
        "**Spearman ρ**": glossary.help_text("spearman"),
        "**IoU of top 20%**": glossary.help_text("iou"),
    }


def test_the_one_image_scorecard_explains_its_aucs(app_env, shown_tables):
    at = run_page("pages/5_Scorecard.py")  # the gallery's first image: its curves and AUCs
    assert_clean(at)
    (frame, config), *_ = shown_tables
    assert list(frame.columns) == [glossary.term(k).name + a for k, a in
                                   (("deletion_auc", " ↓"), ("insertion_auc", " ↑"))]  # fmt: skip
    assert not unexplained(frame, config)
    assert [e.label for e in at.expander].count("How to read these numbers") == 1
