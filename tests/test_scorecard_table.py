"""``scripts/scorecard_table.py``: the README's paired-difference table from a scorecard folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abn.metrics.scorecard import paired_differences, summarize

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "scorecard_table.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("scorecard_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _folder(tmp_path: Path, with_differences: bool) -> Path:
    rng = np.random.default_rng(0)
    n, base = 30, rng.uniform(0.2, 0.6, 30)
    table = pd.concat([
        pd.DataFrame({"method": m, "image": np.arange(n), "deletion_auc": base + shift
                      + rng.normal(0, 0.02, n), "avg_drop": 30 + rng.normal(0, 5, n)})
        for m, shift in (("abn (abn)", 0.0), ("cam (cam)", -0.1), ("gradcam (plain)", 0.0))
    ], ignore_index=True)  # fmt: skip
    table.to_csv(tmp_path / "scorecard.csv", index=False)
    summarize(table).to_csv(tmp_path / "summary.csv", index=False)
    if with_differences:
        paired_differences(table).to_csv(tmp_path / "differences.csv", index=False)
    return tmp_path


@pytest.mark.parametrize("with_differences", [True, False])
def test_the_difference_table_marks_only_the_planted_difference(script, tmp_path, with_differences):
    folder = _folder(tmp_path, with_differences)
    diffs = script.differences(folder)
    text = script.difference_table(diffs)
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()[2:4]}
    expected = diffs.set_index(["method", "metric"]).loc[("cam (cam)", "deletion_auc")]
    assert f"{expected['difference']:+.3f} ± {expected['ci95']:.3f} *" in rows["cam (cam)"]
    assert "*" not in rows["gradcam (plain)"]  # no planted difference
    assert text.splitlines()[0].startswith("| method − abn (abn) | n | deletion AUC ↓")
    assert "| abn (abn)" in script.table(folder)  # the per-method table is unchanged


def test_no_per_image_scores_no_difference_table(script, tmp_path) -> None:
    folder = _folder(tmp_path, False)
    (folder / "scorecard.csv").unlink()
    assert script.differences(folder) is None
