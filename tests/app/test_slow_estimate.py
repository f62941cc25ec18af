"""Slow methods on Compare and the scorecard split: a measured time estimate before they run,
and progress while they do (issue 22, item 5)."""

from __future__ import annotations

from .conftest import assert_clean, run_page


def test_compare_estimates_and_finishes_score_cam(app_env):
    at = run_page("pages/2_Compare.py")
    at.multiselect(key="cmp_family").set_value(["scorecam"]).run()
    assert_clean(at)
    notes = [i.value for i in at.info]
    estimate = [n for n in notes if n.startswith("Score-CAM runs many forward passes")]
    assert estimate and "on this machine" in estimate[0], notes
    assert "about" in estimate[0] or "under a second" in estimate[0]
    titles = [m.value.strip("*") for m in at.markdown if m.value.startswith("**")]
    assert {"Score-CAM · ABN", "Score-CAM · baseline"} <= set(titles)
    assert not at.get("progress")  # the bar is gone once every map is done
    # fast methods alone: no estimate
    at.multiselect(key="cmp_family").set_value(["gradcam"]).run()
    assert not [i for i in at.info if "forward passes" in i.value]


def test_compare_bar_moves_within_score_cam(app_env, monkeypatch):
    """The bar's fraction moves per batch of Score-CAM's masked passes, not once per method."""
    from streamlit.delta_generator import DeltaGenerator

    seen: list[float] = []
    real = DeltaGenerator.progress

    def spy(self, value, text=None, **kw):
        seen.append(float(value))
        return real(self, value, text, **kw)

    monkeypatch.setattr(DeltaGenerator, "progress", spy)
    at = run_page("pages/2_Compare.py")
    at.multiselect(key="cmp_family").set_value(["scorecam"]).run()
    assert_clean(at)
    # five cells (ABN attention, class map, CAM, Score-CAM on both): the bar stands at k/5
    # between cells; values in between come from within Score-CAM's masked passes
    inside = [v for v in seen if min(abs(v - k / 5) for k in range(6)) > 1e-6]
    assert len(inside) >= 4, seen


def test_scorecard_split_shows_its_estimate(app_env):
    at = run_page("pages/5_Scorecard.py")
    captions = [c for c in at.caption.values if c.startswith("Takes ")]
    assert captions and "on this machine for 60 images" in captions[0], at.caption.values
    at.slider(key="sc_n").set_value(120).run()
    assert [c for c in at.caption.values if "for 120 images" in c]
