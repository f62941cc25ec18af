"""app.embedview's pure helpers: Fig. 6's panels and the cluster-quality line under each."""

from __future__ import annotations

import math

import numpy as np
import plotly.express as px
import pytest

from abn.embeddings import WITH_ATTENTION, WITHOUT_ATTENTION, ClusterQuality, Embedding
from app import embedview


def _embedding(kinds: tuple[str, ...]) -> Embedding:
    q = ClusterQuality(500, 5, 0.808, (0.771, 0.840), 0.176, (0.1596, 0.1931), 0.1)
    return Embedding(
        indices=np.arange(4),
        labels=np.zeros(4, np.int64),
        probs=np.full((4, 2), 0.5),
        coords={k: np.zeros((4, 2)) for k in kinds},
        class_names=["a", "b"],
        quality={k: q for k in kinds},
    )


def test_panels_follow_fig6_left_to_right():
    abn = _embedding((WITHOUT_ATTENTION, WITH_ATTENTION))
    panels = embedview.panels({"Baseline": _embedding((WITHOUT_ATTENTION,)), "ABN": abn})
    assert [(p.key, p.kind) for p in panels] == [
        ("plain", WITHOUT_ATTENTION),
        ("abn_g", WITHOUT_ATTENTION),
        ("abn_ga", WITH_ATTENTION),
    ]
    assert "without attention" in panels[1].title and "g'(x)" in panels[2].title
    assert panels[2].quality is abn.quality[WITH_ATTENTION]
    assert [p.key for p in embedview.panels({"ABN": abn})] == ["abn_g", "abn_ga"]


def test_quality_text_shows_both_numbers_intervals_and_n():
    q = _embedding((WITH_ATTENTION,)).quality[WITH_ATTENTION]
    assert embedview.quality_text(q) == (
        "5-NN accuracy **80.8%** (77.1%–84.0%) · silhouette **0.176** (0.160 to 0.193) · "
        "n = 500 · chance 10%"
    )
    one_class = ClusterQuality(9, 5, 1.0, (0.7, 1.0), math.nan, (math.nan, math.nan), 1.0)
    assert "silhouette n/a" in embedview.quality_text(one_class)


# ----------------------------------------------------------------------------- #22: selection,
# order, colours


def _ten_class_embedding() -> Embedding:
    rng = np.random.default_rng(0)
    n = 30
    labels = np.arange(n) % 10
    feats = rng.normal(0, 1, (n, 4))
    return Embedding(
        indices=np.arange(100, 100 + n),
        labels=labels,
        probs=np.eye(10)[labels] * 0.9 + 0.01,
        coords={WITHOUT_ATTENTION: rng.normal(0, 5, (n, 2)), WITH_ATTENTION: feats[:, :2]},
        class_names=[f"class {c}" for c in range(10)],
        features={WITHOUT_ATTENTION: -feats, WITH_ATTENTION: feats},
    )


def _points(fig) -> dict[int, tuple[float, float]]:
    out = {}
    for t in fig.data:
        if t.customdata is None:
            continue
        n = len(t.x)
        size = np.broadcast_to(np.asarray(t.marker.size), (n,))
        opacity = np.broadcast_to(np.asarray(t.marker.opacity), (n,))
        for i, s, o in zip(np.asarray(t.customdata)[:, 0], size, opacity, strict=True):
            out[int(i)] = (float(s), float(o))
    return out


def test_every_panel_carries_the_selection():
    emb = _ten_class_embedding()
    panels = embedview.panels({"Baseline": emb, "ABN": emb})
    chosen = {101, 117, 128}
    for colour in embedview.COLOUR_BY:
        for panel in panels:
            points = _points(embedview.scatter(panel, colour, chosen))
            assert len(points) == 30
            for i, marker in points.items():
                want = embedview.CHOSEN if i in chosen else embedview.FADED
                assert marker == (want["size"], want["opacity"]), (colour, panel.key, i)
    plain = _points(embedview.scatter(panels[0], "true class"))
    assert set(plain.values()) == {(embedview.POINT["size"], embedview.POINT["opacity"])}
    # the legend stays readable: one full-opacity entry per class, none faded
    fig = embedview.scatter(panels[0], "true class", chosen)
    entries = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in entries] == emb.class_names
    assert all(t.marker.opacity == 1.0 and t.customdata is None for t in entries)


def test_selection_ordered_by_distance_to_its_centre():
    emb = _ten_class_embedding()
    chosen = [103, 110, 111, 125, 129, 999]  # 999 is not in the embedding
    x = emb.features[WITH_ATTENTION][[3, 10, 11, 25, 29]]
    d = np.linalg.norm(x - x.mean(0), axis=1)
    expected = [chosen[j] for j in np.argsort(d)]
    assert embedview.order_selection(emb, set(chosen)) == expected != sorted(expected)
    no_features = _ten_class_embedding()
    no_features.features = {}
    assert embedview.order_selection(no_features, {129, 103}) == [103, 129]
    assert "Most typical first" in embedview.order_caption(emb, 20, 16)
    assert "showing 16 of 20" in embedview.order_caption(emb, 20, 16)


def _srgb(colour: str) -> np.ndarray:
    from plotly.colors import hex_to_rgb, unlabel_rgb

    rgb = hex_to_rgb(colour) if colour.startswith("#") else unlabel_rgb(colour)
    return np.asarray(rgb[:3], dtype=float) / 255


def _linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _lab(linear_rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of linear sRGB colours (rows)."""
    to_xyz = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    )
    xyz = np.clip(linear_rgb, 0, 1) @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


# Machado, Oliveira & Fernandes (2009), severity 1.0, on linear RGB
CVD = {
    "normal": np.eye(3),
    "deuteranopia": np.array(
        [
            [0.367322, 0.860646, -0.227968],
            [0.280085, 0.672501, 0.047413],
            [-0.01182, 0.04294, 0.968881],
        ]
    ),
    "protanopia": np.array(
        [
            [0.152286, 1.052583, -0.204868],
            [0.114503, 0.786281, 0.099216],
            [-0.003882, -0.048116, 1.051998],
        ]
    ),
    "tritanopia": np.array(
        [
            [1.255528, -0.076749, -0.178779],
            [-0.078411, 0.930809, 0.147602],
            [0.004733, 0.691367, 0.3039],
        ]
    ),
}


def _ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005) between broadcast CIELAB rows."""
    (l1, a1, b1), (l2, a2, b2) = np.moveaxis(lab1, -1, 0), np.moveaxis(lab2, -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    h1, h2 = np.degrees(np.arctan2(b1, a1)) % 360, np.degrees(np.arctan2(b2, a2)) % 360
    grey = c1 * c2 == 0
    dh = np.where(grey, 0, (h2 - h1 + 180) % 360 - 180)
    d_hue = 2 * np.sqrt(c1 * c2) * np.sin(np.radians(dh / 2))
    l_bar, c_bar = (l1 + l2) / 2, (c1 + c2) / 2
    h_sum = h1 + h2
    h_bar = np.where(
        np.abs(h1 - h2) > 180, (h_sum + np.where(h_sum < 360, 360, -360)) / 2, h_sum / 2
    )
    h_bar = np.where(grey, h_sum, h_bar)
    t = (
        1
        - 0.17 * np.cos(np.radians(h_bar - 30))
        + 0.24 * np.cos(np.radians(2 * h_bar))
        + 0.32 * np.cos(np.radians(3 * h_bar + 6))
        - 0.20 * np.cos(np.radians(4 * h_bar - 63))
    )
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c, s_h = 1 + 0.045 * c_bar, 1 + 0.015 * c_bar * t
    r_t = (
        -np.sin(np.radians(60 * np.exp(-(((h_bar - 275) / 25) ** 2))))
        * 2
        * np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7))
    )
    dl, dc, dhh = (l2 - l1) / s_l, (c2 - c1) / s_c, d_hue / s_h
    return np.sqrt(dl**2 + dc**2 + dhh**2 + r_t * dc * dhh)


def test_ciede2000_matches_sharmas_reference_pairs():
    pairs = [  # Sharma, Wu & Dalal (2005), table 1: pairs 1, 7, 17 and 25
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ]
    for lab1, lab2, expected in pairs:
        assert _ciede2000(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=1e-4)


def _min_difference(palette, matrix) -> float:
    lab = _lab(_linear(np.stack([_srgb(c) for c in palette])) @ matrix.T)
    d = _ciede2000(lab[:, None], lab[None]) + np.eye(len(palette)) * 1e9
    return float(d.min())


NORMAL_MIN, CVD_MIN = 20.0, 10.0  # CIEDE2000: clearly different side by side; fairly, with CVD


def test_palette_has_ten_colours_clearly_apart_and_fairly_apart_for_colour_blind_eyes():
    palette = embedview.PALETTE
    assert len(set(palette)) == 10
    assert _min_difference(palette, CVD["normal"]) > NORMAL_MIN
    for vision in ("deuteranopia", "protanopia", "tritanopia"):
        assert _min_difference(palette, CVD[vision]) > CVD_MIN, vision
    # the bar bites: Plotly's Safe (whose pinks and maroons the reviewers confused) fails it
    assert _min_difference(px.colors.qualitative.Safe[:10], CVD["normal"]) < NORMAL_MIN
    correct, wrong = embedview.CORRECTNESS_COLOURS.values()
    for vision, matrix in CVD.items():
        assert _min_difference((correct, wrong), matrix) > 2 * NORMAL_MIN, vision


def test_marker_edge_and_star_show_on_light_and_dark_themes():
    def luminance(colour: str) -> float:
        return float(_linear(_srgb(colour)) @ [0.2126, 0.7152, 0.0722])

    def contrast(a: str, b: str) -> float:
        hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
        return (hi + 0.05) / (lo + 0.05)

    edge = "rgb(128, 128, 128)"  # EDGE without its alpha
    assert embedview.EDGE.startswith("rgba(128, 128, 128")
    for background in ("#ffffff", "#0e1117"):  # Streamlit's light and dark backgrounds
        assert contrast(edge, background) >= 3
        star = embedview.STAR
        assert (
            max(contrast(star["color"], background), contrast(star["line"]["color"], background))
            >= 7
        )


def test_classes_get_distinct_palette_colours_and_the_star_is_labelled():
    emb = _ten_class_embedding()
    panel = embedview.panels({"ABN": emb})[0]
    placed = embedview.Placed("cat.jpg", "class 3", (1.0, 2.0))
    fig = embedview.scatter(panel, "true class", placed=[placed])
    classes = [t for t in fig.data if t.customdata is not None]
    assert len({t.marker.color for t in classes}) == 10
    assert {t.marker.color for t in classes} <= set(embedview.PALETTE)
    # colour is not the only cue: every class has its own marker symbol, also in the legend
    assert len({t.marker.symbol for t in classes}) == 10
    assert "star" not in {t.marker.symbol for t in classes}
    selected = embedview.scatter(panel, "true class", selected=[0, 1])
    entries = [t for t in selected.data if t.customdata is None]
    assert {(t.marker.color, t.marker.symbol) for t in entries} == {
        (t.marker.color, t.marker.symbol) for t in classes
    }
    star = fig.data[-1]
    assert star.marker.symbol == "star" and star.text == ("cat.jpg → class 3",)
    assert (star.x, star.y) == ((1.0,), (2.0,))
    assert "color" not in (fig.layout.legend.font.to_plotly_json())  # the theme colours it
