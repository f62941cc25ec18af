"""Reproduce README.md's "Fig. 6 in numbers": cluster quality of the shipped models' panels.

For CIFAR-10 (n=3000) and Imagenette (n=2000), on class-balanced samples of the test split
(abn.embeddings.sample_indices), pools the perception branch's last-stage features
(abn.embeddings.perception_features) of the plain baseline and of ABN without and with attention,
scores each panel with abn.embeddings.cluster_quality (leave-one-out 5-NN accuracy with a Wilson
interval, silhouette with a bootstrap interval), and compares panels paired over the same images
with abn.stats.paired_bootstrap_ci. Prints Markdown and writes docs/embeddings/fig6.json.
No t-SNE. Minutes on 2 CPU cores:

OMP_NUM_THREADS=2 python scripts/embeddings_table.py [--root ./data]
"""

from __future__ import annotations

import argparse
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import silhouette_samples

import abn
from abn.data import build_dataset
from abn.data.transforms import transform_for
from abn.embeddings import (
    WITH_ATTENTION,
    WITHOUT_ATTENTION,
    cluster_quality,
    knn_loo_predictions,
    perception_features,
    sample_indices,
)
from abn.stats import paired_bootstrap_ci

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
OUT = REPO / "docs" / "embeddings" / "fig6.json"
BATCH = 100
# (asset prefix, README row label, sample size)
DATASETS = (
    ("cifar10-resnet20", "CIFAR-10 ResNet-20", 3000),
    ("imagenette-resnet18", "Imagenette ResNet-18", 2000),
)
# panel name: (model variant, feature kind)
PANELS = {
    "baseline": ("plain", WITHOUT_ATTENTION),
    "abn_g": ("abn", WITHOUT_ATTENTION),
    "abn_g_prime": ("abn", WITH_ATTENTION),
}
NAMES = {"baseline": "baseline", "abn_g": "ABN g(x)", "abn_g_prime": "ABN g'(x)"}
# paired differences reported in the README paragraph: (minuend, subtrahend)
PAIRS = (("abn_g", "baseline"), ("abn_g_prime", "baseline"), ("abn_g_prime", "abn_g"))


def pooled_features(path: Path, root: str, n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Pooled features per kind of one checkpoint on ``n`` test images, and their labels."""
    model = abn.load(path).eval()
    card = model.card
    dataset = build_dataset(card.dataset, card.splits["test"], root, transform=transform_for(card))
    idx = sample_indices(dataset.targets, n)
    feats: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(idx), BATCH):
        x = torch.stack([dataset[int(i)][0] for i in idx[start : start + BATCH]])
        pooled, _ = perception_features(model, x)
        for kind, v in pooled.items():
            feats.setdefault(kind, []).append(v.float().numpy())
    labels = np.asarray(dataset.targets)[idx].astype(np.int64)
    return {k: np.concatenate(v) for k, v in feats.items()}, labels


def measure(prefix: str, n: int, root: str) -> dict:
    """Cluster quality of the three panels and their paired differences for one dataset."""
    by_variant, labels = {}, None
    for variant in ("plain", "abn"):
        by_variant[variant], lab = pooled_features(
            ASSETS / f"{prefix}-{variant}.safetensors", root, n
        )
        if labels is not None and not np.array_equal(labels, lab):
            raise RuntimeError("the plain and ABN samples differ")
        labels = lab
    panels, per_image = {}, {}
    for name, (variant, kind) in PANELS.items():
        x = by_variant[variant][kind]
        q = cluster_quality(x, labels)
        panels[name] = {
            "knn_accuracy": q.knn_accuracy,
            "knn_ci": list(q.knn_ci),
            "silhouette": q.silhouette,
            "silhouette_ci": list(q.silhouette_ci),
        }
        hits = (knn_loo_predictions(np.asarray(x, np.float64), labels, q.k) == labels).astype(float)
        per_image[name] = (hits, silhouette_samples(np.asarray(x, np.float64), labels))
    diffs = []
    for a, b in PAIRS:
        knn = paired_bootstrap_ci(per_image[a][0] - per_image[b][0])
        sil = paired_bootstrap_ci(per_image[a][1] - per_image[b][1])
        diffs.append({"a": a, "b": b, "knn": list(knn), "silhouette": list(sil)})
    return {"models": [f"assets/{prefix}-{v}.safetensors" for v in ("plain", "abn")], "n": len(labels),
            "k": 5, "panels": panels, "differences": diffs}  # fmt: skip


def fmt(v: float, digits: int, sign: str = "") -> str:
    """``v`` rounded half away from zero: 5-NN accuracies are exact ratios (1627/2000 = 0.8135),
    so a tie must not be decided by the float's binary representation (81.35 -> 81.4)."""
    d = Decimal(f"{v:.12f}").quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    d = abs(d) if d.is_zero() else d  # no "−0.000"
    return f"{d:{sign}.{digits}f}".replace("-", "−")  # the README's minus sign


def markdown(results: dict) -> str:
    def pct(v, ci):
        return f"{fmt(100 * v, 1)}% ({fmt(100 * ci[0], 1)}–{fmt(100 * ci[1], 1)})"

    def sil(v, ci):
        return f"{fmt(v, 3)} ({fmt(ci[0], 3)}–{fmt(ci[1], 3)})"

    def signed(v, digits):
        return fmt(v, digits, "+")

    lines = ["| model (n) | | baseline | ABN without attention, g(x) | ABN with attention, g'(x) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for prefix, label, _ in DATASETS:
        r = results[prefix]
        p = [r["panels"][name] for name in PANELS]
        lines.append(f"| {label} ({r['n']}) | 5-NN | "
                     + " | ".join(pct(q["knn_accuracy"], q["knn_ci"]) for q in p) + " |")  # fmt: skip
        lines.append("| | silhouette | "
                     + " | ".join(sil(q["silhouette"], q["silhouette_ci"]) for q in p) + " |")  # fmt: skip
    lines += ["", "Paired differences over the same images (mean, percentile bootstrap 95% interval):",
              "", "| dataset | difference | 5-NN (points) | silhouette |", "|---|---|---|---|"]  # fmt: skip
    for prefix, label, _ in DATASETS:
        for d in results[prefix]["differences"]:
            k, s = [100 * v for v in d["knn"]], d["silhouette"]
            lines.append(f"| {label} | {NAMES[d['a']]} − {NAMES[d['b']]} | {signed(k[0], 1)} ({signed(k[1], 1)} "
                         f"to {signed(k[2], 1)}) | {signed(s[0], 3)} ({signed(s[1], 3)} to "
                         f"{signed(s[2], 3)}) |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="./data", help="data root (default ./data)")
    p.add_argument(
        "--out", type=Path, default=OUT, help=f"JSON output (default {OUT.relative_to(REPO)})"
    )
    args = p.parse_args(argv)
    results = {prefix: measure(prefix, n, args.root) for prefix, _, n in DATASETS}
    print(markdown(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
