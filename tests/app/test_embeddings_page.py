"""The Embeddings page of #22 under AppTest: one selection highlighted in all three panels, the
selected images most typical first, and an uploaded image placed into every map."""

from __future__ import annotations

import base64
import json

import numpy as np
from streamlit.testing.v1 import AppTest

from app import embedview

from .conftest import png
from .test_pages import assert_clean, embeddings_with_two_selected, run_page, selected_captions


def _array(value) -> np.ndarray:
    """A figure's array as Plotly serialises it: a list, or base64 ``bdata`` with a dtype."""
    if isinstance(value, dict) and "bdata" in value:
        a = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return a.reshape([int(s) for s in str(shape).split(",")]) if shape else a
    return np.asarray(value)


def _charts(at: AppTest) -> dict[str, dict]:
    """Every t-SNE panel's figure by chart key."""
    return {e.key: json.loads(e.proto.spec) for e in at.main if (e.key or "").startswith("tsne_")}


def _marker_by_index(fig: dict) -> dict[int, tuple[float, float]]:
    """(size, opacity) of each dataset point of a figure."""
    out = {}
    for trace in fig["data"]:
        if "customdata" not in trace:
            continue
        index = _array(trace["customdata"]).reshape(len(_array(trace["x"])), -1)[:, 0]
        marker = trace["marker"]
        size = np.broadcast_to(_array(marker["size"]), index.shape)
        opacity = np.broadcast_to(_array(marker["opacity"]), index.shape)
        out |= {int(i): (float(s), float(o)) for i, s, o in zip(index, size, opacity, strict=True)}
    return out


def _select(at: AppTest, panel: str, indices) -> AppTest:
    at.session_state[embedview.chart_key(panel)] = {
        "selection": {"points": [{"customdata": [int(i)]} for i in indices], "box": [], "lasso": []}
    }
    return at.run()


def _assert_highlighted(at: AppTest, chosen: set[int]) -> None:
    charts = _charts(at)
    assert set(charts) == {"tsne_plain", "tsne_abn_g", "tsne_abn_ga"}
    for key, fig in charts.items():
        marker = _marker_by_index(fig)
        assert len(marker) == 40, key
        big = {i for i, (s, o) in marker.items() if (s, o) == (10, 1.0)}
        faded = {i for i, (s, o) in marker.items() if (s, o) == (5, embedview.FADED["opacity"])}
        assert big == chosen and faded == set(marker) - chosen, key


def test_selection_is_highlighted_in_every_panel_and_replaced_by_the_next(app_env, tiny_cifar):
    at = embeddings_with_two_selected()  # points 0 and 5, selected in the right panel
    assert_clean(at)
    _assert_highlighted(at, {0, 5})
    at.radio(key="emb_colour").set_value("confidence").run()  # a display option: kept
    _assert_highlighted(at, {0, 5})
    _select(at, "plain", [7, 8, 9])  # a new selection in another panel replaces it
    assert_clean(at)
    _assert_highlighted(at, {7, 8, 9})
    at.button(key="emb_clear").click().run()
    marker = _marker_by_index(_charts(at)["tsne_abn_g"])
    assert {v for v in marker.values()} == {(6, 0.85)}  # nothing selected: all alike


def _abn_features(root) -> tuple[np.ndarray, np.ndarray]:
    """The ABN cache file's indices and pooled g'(x) features."""
    for path in (root / ".cache" / "embeddings").glob("*.npz"):
        with np.load(path) as z:
            if "features__perception_g_prime" in z.files:
                return z["indices"], z["features__perception_g_prime"]
    raise AssertionError("no ABN embedding cached")


def test_selected_images_most_typical_first_with_a_cap(app_env, tiny_cifar):
    at = embeddings_with_two_selected()
    chosen = list(range(0, 40, 2))  # 20 points, more than the 16 shown
    _select(at, "abn_g", chosen)
    assert_clean(at)
    indices, features = _abn_features(tiny_cifar)
    x = features[np.searchsorted(indices, chosen)].astype(np.float64)
    expected = [chosen[j] for j in np.argsort(np.linalg.norm(x - x.mean(0), axis=1))]
    shown = [int(c.split(" · ")[0][1:]) for c in selected_captions(at)]
    assert shown == expected[: embedview.MAX_SELECTED]
    assert shown != sorted(shown)  # not the lowest dataset indices
    caption = next(c for c in at.caption.values if c.startswith("20 selected"))
    assert "showing 16 of 20" in caption and "Most typical first" in caption


def test_upload_is_placed_as_a_star_in_every_panel_with_its_neighbours(app_env, tiny_cifar):
    at = run_page("pages/3_Embeddings.py")
    at.slider(key="emb_n").set_value(50).run()
    at.button[0].click().run()
    at.file_uploader(key="emb_files").set_value(("photo.png", png(), "image/png")).run()
    assert_clean(at)
    for key, fig in _charts(at).items():
        stars = [t for t in fig["data"] if t.get("marker", {}).get("symbol") == "star"]
        assert len(stars) == 1, key
        assert (
            stars[0]["name"].startswith("★ photo.png → ")
            and stars[0]["text"][0] in (stars[0]["name"][2:])
        )
        xy = np.array([_array(stars[0]["x"])[0], _array(stars[0]["y"])[0]], float)
        points = [t for t in fig["data"] if "customdata" in t]
        span = np.concatenate([_array(t["x"]) for t in points])
        assert np.isfinite(xy).all() and span.min() - 50 < xy[0] < span.max() + 50, key
    assert "Placed: photo.png" in [h.value for h in at.header]
    assert any(m.value.startswith("Predicted class — Baseline: **") for m in at.markdown)
    table = at.dataframe[0].value
    assert len(table) == embedview.NEIGHBOURS and table["distance"].is_monotonic_increasing
    bad = at.file_uploader(key="emb_files").set_value(("x.png", b"<html>no</html>", "image/png"))
    bad.run()
    assert not at.exception
    assert not any(h.value.startswith("Placed:") for h in at.header)
