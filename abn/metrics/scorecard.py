"""Score several explanation methods on the same images: one row per image and method.

Each method explains its own model's predicted class; the metrics then perturb the image by that
map and query the same model, so every method is judged on the model it explains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from abn.stats import ALPHA, holm, mean_ci, paired_t

from .confidence import confidence_change, road
from .perturbation import perturbation_curves

METRICS = ("deletion", "insertion", "confidence", "road")
HIGHER_IS_BETTER = {
    "deletion_auc": False,
    "insertion_auc": True,
    "avg_drop": False,
    "increase": True,
    "road_morf": False,
    "road_lerf": True,
}
_NAMES = {"deletion_auc": "deletion AUC", "insertion_auc": "insertion AUC",
          "avg_drop": "Average Drop %", "increase": "Increase in Conf. %",
          "road_morf": "ROAD MoRF", "road_lerf": "ROAD LeRF"}  # fmt: skip
#: Display names of the metrics, with the direction that is better.
LABELS = {k: f"{_NAMES[k]} {'↑' if up else '↓'}" for k, up in HIGHER_IS_BETTER.items()}


@dataclass
class Entry:
    """One column of the scorecard: ``method`` explaining ``model``, shown as ``label``."""

    label: str
    model: nn.Module
    method: str


def _explain(entry: Entry, images: torch.Tensor, progress=None):
    from abn.explain import explain

    return explain(entry.model, images, entry.method, target=None, progress=progress)


def score_batch(
    entry: Entry,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    metrics: Sequence[str] = METRICS,
    steps: int = 16,
    batch_size: int = 256,
    progress: Callable[[float, str], None] | None = None,
) -> pd.DataFrame:
    """Scores of one method on one batch of preprocessed images (``progress``: the
    explanation's, see :func:`abn.explain.explain`)."""
    ex = _explain(entry, images, progress)
    maps, targets = ex.maps.to(images.device), ex.targets.to(images.device)
    cols: dict[str, torch.Tensor] = {
        "target": ex.targets.cpu(),
        "confidence": ex.target_probabilities.cpu(),
        "seconds_per_image": torch.full((len(images),), ex.seconds / len(images)),
    }
    if labels is not None:
        cols["label"] = labels.cpu()
        cols["correct"] = (ex.predicted.cpu() == labels.cpu()).float()
    model = entry.model
    for mode in ("deletion", "insertion"):
        if mode in metrics:
            curves = perturbation_curves(model, images, maps, targets, mode, steps,
                                         batch_size=batch_size)  # fmt: skip
            cols[f"{mode}_auc"] = curves.auc
    if "confidence" in metrics:
        conf = confidence_change(model, images, maps, targets)
        cols["avg_drop"] = conf["drop"] * 100
        cols["increase"] = conf["increase"] * 100
    if "road" in metrics:
        cols.update(road(model, images, maps, targets))
    frame = pd.DataFrame({k: v.numpy() for k, v in cols.items()})
    frame.insert(0, "method", entry.label)
    return frame


def sample_batches(
    card,
    data: str | None = None,
    split: str = "test",
    n: int = 1000,
    batch_size: int = 32,
    seed: int = 0,
    root=None,
    device: torch.device | str = "cpu",
) -> tuple[Callable[[], object], int, int]:
    """A seeded random sample of ``n`` images of a split, preprocessed for ``card``'s model.

    Returns ``(batches, n, number_of_batches)``; ``batches()`` yields ``(index, images, labels)``.
    """
    from abn.data import build_dataset, dataset_info
    from abn.data.transforms import transform_for
    from abn.evaluate import check_classes

    if n < 1 or batch_size < 1:
        raise ValueError(f"need n >= 1 and batch_size >= 1, not {n} and {batch_size}")
    check_classes(card, dataset_info(data or card.dataset, root))
    ds = build_dataset(data or card.dataset, split, root=root, transform=transform_for(card))
    chosen = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n]

    def batches():
        for part in chosen.split(batch_size):
            items = [ds[int(i)] for i in part]
            images = torch.stack([x for x, _ in items]).to(device)
            labels = torch.as_tensor([int(y) for _, y in items])
            yield part, images, labels

    return batches, len(chosen), -(-len(chosen) // batch_size)


def score(
    entries: Sequence[Entry],
    batches: Callable[[], object],
    metrics: Sequence[str] = METRICS,
    steps: int = 16,
    progress: Callable[[int, int, str], None] | None = None,
    total_batches: int | None = None,
) -> pd.DataFrame:
    """Run every entry over ``batches()`` (an iterable of ``(index, images, labels)``).

    ``progress(done, total, label)`` is called after each batch, and within a batch as its
    explanation advances (``done`` then has a fractional part), so slow methods move the bar.
    """
    frames = []
    done, total = 0, (total_batches or 0) * len(entries)
    for entry in entries:
        for index, images, labels in batches():
            within = None
            if progress is not None:

                def within(fraction: float, message: str, done=done, label=entry.label) -> None:
                    progress(done + 0.9 * fraction, total, label)

            frame = score_batch(entry, images, labels, metrics, steps, progress=within)
            frame.insert(1, "image", index.numpy())
            frames.append(frame)
            done += 1
            if progress is not None:
                progress(done, total, entry.label)
    return pd.concat(frames, ignore_index=True)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% confidence half-width of every metric, one row per method."""
    metric_cols = [c for c in HIGHER_IS_BETTER if c in table.columns]
    extra = [c for c in ("correct", "confidence", "seconds_per_image") if c in table.columns]
    rows = []
    for method, group in table.groupby("method", sort=False):
        row: dict[str, object] = {"method": method, "n": len(group)}
        for col in metric_cols + extra:
            mean, half, _ = mean_ci(group[col].to_numpy())
            row[col] = mean
            row[f"{col}_ci95"] = half
        rows.append(row)
    return pd.DataFrame(rows)


def format_summary(summary: pd.DataFrame) -> str:
    """A plain-text table: mean ± 95% CI per metric (↑ higher is better, ↓ lower)."""
    cols = [c for c in HIGHER_IS_BETTER if c in summary.columns]
    head = ["method", "n"] + [f"{c} {'↑' if HIGHER_IS_BETTER[c] else '↓'}" for c in cols]
    lines = []
    for _, r in summary.iterrows():
        cells = [str(r["method"]), str(int(r["n"]))]
        cells += [f"{r[c]:.3f} ± {r[f'{c}_ci95']:.3f}" if r[f"{c}_ci95"] == r[f"{c}_ci95"]
                  else f"{r[c]:.3f}" for c in cols]  # fmt: skip
        lines.append(cells)
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*cells) for cells in lines])


def reference_method(entries: Sequence[Entry]) -> str:
    """The label of the entry the others are compared with: ABN's attention map, else the
    first entry."""
    if not entries:
        raise ValueError("no scorecard entries")
    return next((e.label for e in entries if e.method == "abn"), entries[0].label)


def paired_differences(table: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """Every method against ``reference`` (a label of ``table["method"]``; default: the table's
    first method, see :func:`reference_method`) on the same images.

    One row per method and metric: the mean of (method − reference) over the images both were
    scored on, its paired 95% t-interval, the paired t-test's two-sided p-value, the p-value
    Holm-adjusted over all the rows, and which of the two is significantly better (α = 0.05;
    empty when neither is).
    """
    if reference is None:
        if table.empty:
            raise ValueError("the scorecard table is empty")
        reference = table["method"].iloc[0]
    if reference not in set(table["method"]):
        raise ValueError(f"no method {reference!r} in the scorecard table")
    metric_cols = [c for c in HIGHER_IS_BETTER if c in table.columns]
    ref = table[table["method"] == reference].set_index("image")[metric_cols]
    rows = []
    for method in dict.fromkeys(table["method"]):
        if method == reference:
            continue
        other = table[table["method"] == method].set_index("image")[metric_cols]
        paired = other.merge(ref, left_index=True, right_index=True, suffixes=("", "_ref"))
        for col in metric_cols:
            mean, half, p, n = paired_t(paired[col] - paired[f"{col}_ref"])
            rows.append({"method": method, "reference": reference, "metric": col, "n": n,
                         "difference": mean, "ci95": half, "ci_low": mean - half,
                         "ci_high": mean + half, "p": p})  # fmt: skip
    frame = pd.DataFrame(rows, columns=["method", "reference", "metric", "n", "difference",
                                        "ci95", "ci_low", "ci_high", "p"])  # fmt: skip
    tested = frame["p"].notna()
    frame["p_holm"] = float("nan")
    frame.loc[tested, "p_holm"] = holm(frame.loc[tested, "p"].to_numpy())
    frame["better"] = [_better(r) for r in frame.itertuples()]
    return frame


def _better(row) -> str:
    if not row.p_holm <= ALPHA or row.difference == 0:
        return ""
    method_higher = row.difference > 0
    return row.method if method_higher == HIGHER_IS_BETTER[row.metric] else row.reference


def format_differences(diffs: pd.DataFrame) -> str:
    """A plain-text table of :func:`paired_differences`."""
    if diffs.empty:
        return ""
    reference = diffs["reference"].iloc[0]
    head = ["method", "metric", "n", f"Δ vs {reference}", "95% CI", "p (Holm)", "better"]
    lines = []
    for r in diffs.itertuples():
        interval = f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]" if r.ci95 == r.ci95 else "—"
        p_text = (
            "—" if r.p_holm != r.p_holm else ("<0.001" if r.p_holm < 0.001 else f"{r.p_holm:.3f}")
        )
        lines.append([r.method, LABELS[r.metric], str(r.n), f"{r.difference:+.3f}", interval, p_text,
                      r.better or "—"])  # fmt: skip
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    title = (f"paired differences (method − {reference}, same images): mean, 95% t-interval, "
             f"paired t-test Holm-adjusted over {len(diffs)} tests, better at α = {ALPHA}")  # fmt: skip
    return "\n".join([title, fmt.format(*head)] + [fmt.format(*cells) for cells in lines])
