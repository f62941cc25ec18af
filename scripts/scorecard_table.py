"""Print Markdown tables (for README.md) from ``python -m abn scorecard`` output folders.

Per folder: the per-method means with their 95% intervals, then each method's paired difference
from the ABN map on the same images (``differences.csv``, else computed from ``scorecard.csv``).

python scripts/scorecard_table.py artifacts/scorecard/cifar10 artifacts/scorecard/imagenette
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from abn.metrics.scorecard import ALPHA, LABELS, paired_differences

DECIMALS = {"avg_drop": 1, "increase": 1}
COLUMNS = [  # summary column, header, decimals
    *((key, label, DECIMALS.get(key, 3)) for key, label in LABELS.items()),
    ("seconds_per_image", "s / image", 3),
]


def cell(row: pd.Series, column: str, decimals: int) -> str:
    if column not in row or pd.isna(row[column]):
        return "—"
    ci = row.get(f"{column}_ci95")
    text = f"{row[column]:.{decimals}f}"
    return (
        text
        if ci is None or pd.isna(ci) or column == "seconds_per_image"
        else (f"{text} ± {ci:.{decimals}f}")
    )


def sanity_cell(checks: dict, method: str) -> str:
    found = checks.get("sanity", {}).get(method)
    if not found:
        return "—"
    return "pass" if found["verdict"] == "pass" else "**fail**"


def table(folder: Path) -> str:
    summary = pd.read_csv(folder / "summary.csv")
    checks_path = folder / "checks.json"
    checks = json.loads(checks_path.read_text()) if checks_path.exists() else {}
    columns = [c for c in COLUMNS if c[0] in summary.columns]
    head = ["method (model)", "n", *(h for _, h, _ in columns), "sanity check"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in summary.iterrows():
        cells = [row["method"], str(int(row["n"]))]
        cells += [cell(row, c, d) for c, _, d in columns]
        cells.append(sanity_cell(checks, row["method"]))
        lines.append("| " + " | ".join(cells) + " |")
    interventions = checks.get("intervention")
    if interventions:
        names = {"uniform": "a uniform map", "inverted": "its inverse",
                 "shuffled": "another image's map"}  # fmt: skip
        parts = [
            f"{names.get(kind, kind)}: probability drop {v['drop']:.3f}, prediction changed "
            f"{100 * v['flipped']:.1f}%"
            for kind, v in interventions.items()
        ]
        n = next(iter(interventions.values())).get("n", "?")
        lines.append("")
        lines.append(
            f"ABN intervention ({n} images), its own attention map replaced by "
            + "; ".join(parts)
            + "."
        )
    return "\n".join(lines)


def differences(folder: Path) -> pd.DataFrame | None:
    """The folder's paired differences, or ``None`` when it has no per-image scores."""
    if (folder / "differences.csv").exists():
        return pd.read_csv(folder / "differences.csv", keep_default_na=False, na_values=[""])
    if (folder / "scorecard.csv").exists():
        return paired_differences(pd.read_csv(folder / "scorecard.csv"))
    return None


def difference_table(diffs: pd.DataFrame) -> str:
    """Methods × metrics: mean difference from the reference ± its paired 95% half-width, with
    ``*`` where the paired t-test is significant after Holm."""
    if diffs.empty:
        return ""
    reference = diffs["reference"].iloc[0]
    metrics = [m for m in LABELS if m in set(diffs["metric"])]
    head = [f"method − {reference}", "n", *(LABELS[m] for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, rows in diffs.groupby("method", sort=False):
        by_metric = rows.set_index("metric")
        cells = [method, str(int(rows["n"].min()))]
        for m in metrics:
            r = by_metric.loc[m]
            d = DECIMALS.get(m, 3)
            star = " *" if r["p_holm"] <= ALPHA else ""
            cells.append(f"{r['difference']:+.{d}f} ± {r['ci95']:.{d}f}{star}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Paired on the same images: ± is the 95% t half-width of the mean difference; "
              f"* the paired t-test is significant at {ALPHA} after Holm over the "
              f"{int(diffs['p'].notna().sum())} tests."]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    for folder in parser.parse_args().folders:
        print(f"**{folder.name}**\n\n{table(folder)}\n")
        diffs = differences(folder)
        if diffs is not None and not diffs.empty:
            print(f"{difference_table(diffs)}\n")


if __name__ == "__main__":
    main()
