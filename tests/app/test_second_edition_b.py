"""Issue #22 items 3 and 4: widget state that follows the image, results that outlive
display-only options (AppTest on tiny untrained checkpoints)."""

from __future__ import annotations

import pytest

from .conftest import png
from .test_pages import (
    assert_clean,
    embeddings_with_two_selected,
    run_page,
    selected_captions,
    upload,
)

# ----------------------------------------------------------------------------- Face attributes


def _enlarged_titles(at) -> list[str]:
    return [s.value for s in at.subheader]


def _chips(at) -> list[str]:
    return [name.replace("_", " ") for name in at.multiselect[0].value]


def _top_two(at) -> list[str]:
    """The two highest-scoring attributes of the image shown (the table sorts by score)."""
    return [a.replace("_", " ") for a in at.dataframe[0].value["attribute"][:2]]


def test_faces_enlarged_panels_follow_the_new_image(app_env):
    at = run_page("pages/4_Face_attributes.py")
    assert_clean(at)
    before = _top_two(at)
    assert _enlarged_titles(at) == _chips(at) == before
    # from the gallery face to an upload, then to another upload
    seen = [before]
    for colour in ((250, 250, 250), (0, 0, 0)):
        upload(at, "face", ("face.png", png(colour, size=(64, 64)), "image/png"))
        assert_clean(at)
        seen.append(_top_two(at))
        assert _chips(at) == _enlarged_titles(at) == _top_two(at)
    assert len({tuple(s) for s in seen}) > 1, "the images must differ in their top attributes"


# ----------------------------------------------------------------------------- Scorecard


@pytest.mark.slow
def test_scorecard_split_result_survives_the_steps_slider(app_env, tiny_cifar, monkeypatch):
    import abn.metrics.scorecard as scorecard

    calls = []
    real = scorecard.score

    def counting(*args, **kwargs):
        calls.append(args[3] if len(args) > 3 else kwargs.get("steps"))
        return real(*args, **kwargs)

    monkeypatch.setattr(scorecard, "score", counting)
    at = run_page("pages/5_Scorecard.py")
    at.radio(key="sc_source").set_value("Upload").run()  # no one-image curves: the split only
    at.slider(key="sc_n").set_value(20).run()
    at.button(key="sc_go").click().run()
    assert_clean(at)
    summary = at.dataframe[0].value
    assert (summary["n"] == 20).all() and len(calls) == 1
    at.slider(key="sc_steps").set_value(8).run()
    assert_clean(at)
    assert at.dataframe, "the split result vanished when the one-image steps changed"
    assert at.dataframe[0].value.equals(summary)
    assert any("16 steps per curve" in c for c in at.caption.values)  # says what it shows
    at.slider(key="sc_steps").set_value(16).run()
    assert_clean(at)
    assert at.dataframe[0].value.equals(summary) and len(calls) == 1  # not computed again


# ----------------------------------------------------------------------------- Embeddings


def test_embeddings_selection_survives_colour_by(app_env, tiny_cifar):
    at = embeddings_with_two_selected()
    assert_clean(at)
    selected = selected_captions(at)
    assert len(selected) == 2
    for colour in ("correctness", "confidence", "true class"):
        at.radio(key="emb_colour").set_value(colour).run()
        assert_clean(at)
        assert selected_captions(at) == selected, colour
    at.session_state["tsne_abn_ga"] = {  # a new selection in the recoloured chart replaces it
        "selection": {"points": [{"customdata": [1]}], "box": [], "lasso": []}
    }
    at.run()
    assert [c.split(" · ")[0] for c in selected_captions(at)] == ["#1"]
    at.button(key="emb_clear").click().run()
    assert_clean(at)
    assert selected_captions(at) == []
    at.radio(key="emb_colour").set_value("correctness").run()
    assert selected_captions(at) == []  # a cleared selection stays cleared
