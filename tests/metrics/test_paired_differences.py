"""The scorecard's paired differences: each method against the ABN map on the same images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from abn.metrics.scorecard import (
    Entry,
    format_differences,
    paired_differences,
    reference_method,
)
from abn.stats import holm


def _table(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, n)
    frames = []
    for method, shift in (("gradcam (plain)", 0.0), ("abn (abn)", 0.0), ("cam (cam)", -0.1)):
        deletion = base + shift + rng.normal(0, 0.02, n)  # cam: planted 0.1 lower (better)
        insertion = base[::-1] + rng.normal(0, 0.05, n)  # no planted difference
        frames.append(pd.DataFrame({"method": method, "image": np.arange(n),
                                    "deletion_auc": deletion, "insertion_auc": insertion}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_the_reference_is_the_abn_map_wherever_it_is_listed() -> None:
    entries = [Entry(f"{m} ({v})", None, m) for m, v in
               (("gradcam", "plain"), ("abn", "abn"), ("cam", "cam"))]  # fmt: skip
    assert reference_method(entries) == "abn (abn)"
    assert reference_method([e for e in entries if e.method != "abn"]) == "gradcam (plain)"
    assert paired_differences(_table())["reference"].iloc[0] == "gradcam (plain)"  # the first


def test_paired_differences_match_a_paired_t_test_and_holm() -> None:
    table = _table()
    shuffled = table.sample(frac=1.0, random_state=1)  # pairing is by image, not by row order
    diffs = paired_differences(shuffled, reference="abn (abn)")
    assert set(diffs["method"]) == {"gradcam (plain)", "cam (cam)"}
    assert (diffs["reference"] == "abn (abn)").all() and (diffs["n"] == 40).all()
    by = table.set_index(["method", "image"])
    for r in diffs.itertuples():
        a = by.loc[r.method][r.metric].sort_index()
        b = by.loc["abn (abn)"][r.metric].sort_index()
        ref = sps.ttest_rel(a, b)
        assert r.difference == pytest.approx((a - b).mean())
        assert r.p == pytest.approx(ref.pvalue)
        assert r.ci_low == pytest.approx(ref.confidence_interval().low)
    assert diffs["p_holm"].to_numpy() == pytest.approx(holm(diffs["p"].to_numpy()))
    planted = diffs.set_index(["method", "metric"])
    cam = planted.loc[("cam (cam)", "deletion_auc")]
    assert cam["ci_high"] < 0 and cam["better"] == "cam (cam)"  # lower deletion AUC is better
    null = planted.loc[("gradcam (plain)", "deletion_auc")]
    assert null["ci_low"] < 0 < null["ci_high"] and null["better"] == ""
    text = format_differences(diffs)
    assert "method − abn (abn)" in text and "Holm-adjusted over 4 tests" in text


def test_paired_differences_use_only_images_both_methods_scored() -> None:
    table = _table()
    table = table[~((table["method"] == "cam (cam)") & (table["image"] < 10))]
    diffs = paired_differences(table, reference="abn (abn)")
    assert diffs.set_index("method").loc["cam (cam)", "n"].tolist() == [30, 30]
    with pytest.raises(ValueError, match="no method 'nope'"):
        paired_differences(table, reference="nope")
