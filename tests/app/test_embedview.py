"""app.embedview's pure helpers: Fig. 6's panels and the cluster-quality line under each."""

from __future__ import annotations

import math

import numpy as np

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
