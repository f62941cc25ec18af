"""How well does the "unlike the training data" signal tell another pack's images from the
model's own test images?

For every shipped model with a calibration (``assets/<stem>.familiarity.npz``, made by
``abn familiarity calibrate``): the AUROC of both scores of :mod:`abn.familiarity` (Mahalanobis
on pooled features, energy), the model's own test images (the calibration's, not used to fit)
against ``--n`` images of each other pack's test split (CIFAR-10 test, Imagenette val,
CelebA-HQ test faces), each preprocessed as the model's own input (resized to it). With 95%
percentile-bootstrap intervals (ID and OOD resampled separately) and the share of the other
pack's images flagged *unlike* at the calibration's threshold (its 99th percentile: about 1% of
the model's own test images flagged), with a Wilson interval.

    python benchmarks/familiarity_auroc.py --data-root data --n 300 --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import torch

import abn
from abn.data import build_dataset, evaluation_split
from abn.data.transforms import transform_for
from abn.embeddings import wilson_interval
from abn.familiarity import SCORES, load_calibration

REPO = Path(__file__).resolve().parents[1]
# pack name → (dataset, split) of the images it contributes as "other data"
PACKS = {
    "CIFAR-10": ("cifar10", "test"),
    "Imagenette": ("imagenette", "val"),
    "CelebA-HQ faces": ("celeba-hq", "test"),
}
PACK_OF = {
    "cifar10": "CIFAR-10",
    "imagenette": "Imagenette",
    "celeba-hq": "CelebA-HQ faces",
    "celeba-hq-by-number": "CelebA-HQ faces",
}


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney U)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    n1, n0 = len(pos), len(neg)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def bootstrap_ci(pos, neg, reps: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of :func:`auroc` (both groups resampled)."""
    rng = np.random.default_rng(seed)
    vals = [auroc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(reps)]
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def other_images(pack: str, root: str, n: int) -> list[torch.Tensor]:
    """``n`` images of a pack's test split (uint8 3×H×W, stored size), a fixed random draw."""
    dataset, split = PACKS[pack]
    ds = build_dataset(dataset, evaluation_split(dataset, split, root), root)
    idx = np.sort(np.random.default_rng(0).permutation(len(ds))[:n])
    return [ds[int(i)][0] for i in idx]


def score_images(model, cal, images, batch: int) -> dict[str, np.ndarray]:
    """Both scores of ``images``, each preprocessed as ``model``'s input."""
    tf = transform_for(model.card)
    out: dict[str, list[np.ndarray]] = {s: [] for s in SCORES}
    for start in range(0, len(images), batch):
        x = torch.stack([tf(im) for im in images[start : start + batch]])
        for k, v in cal.scores(model, x).items():
            out[k].append(v)
    return {k: np.concatenate(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--assets", default=str(REPO / "assets"))
    ap.add_argument("--n", type=int, default=300, help="images per other pack")
    ap.add_argument("--reps", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/familiarity_auroc.json"))
    ap.add_argument(
        "--only", default="*", help="checkpoint glob; other models' rows in --out are kept"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    cache: dict[str, list[torch.Tensor]] = {}
    rows = []
    kept = previous_rows(Path(args.out), args.only)
    for ckpt in sorted(Path(args.assets).glob(f"{args.only}.safetensors")):
        model = abn.load(ckpt)
        cal = load_calibration(ckpt, model)
        if cal is None:
            print(f"{ckpt.name}: no calibration, skipped")
            continue
        own = PACK_OF.get(model.card.dataset)
        for pack in PACKS:
            if pack == own:
                continue
            if pack not in cache:
                cache[pack] = other_images(pack, args.data_root, args.n)
            t0 = time.time()
            ood = score_images(model, cal, cache[pack], args.batch)
            for score in SCORES:
                ind = cal.test_scores[score]
                flagged = int((cal.percentile(ood[score], score) > cal.threshold).sum())
                row = {
                    "model": ckpt.stem,
                    "other": pack,
                    "score": score,
                    "chosen": score == cal.score,
                    "auroc": auroc(ood[score], ind),
                    "ci95": bootstrap_ci(ood[score], ind, args.reps),
                    "n_own_test": len(ind),
                    "n_other": len(ood[score]),
                    "flagged_at_threshold": flagged / len(ood[score]),
                    "flagged_ci95": wilson_interval(flagged, len(ood[score])),
                    "threshold_percentile": cal.threshold,
                }
                rows.append(row)
                lo, hi = row["ci95"]
                print(
                    f"{ckpt.stem:<38} vs {pack:<16} {score:<12} AUROC {row['auroc']:.3f} "
                    f"[{lo:.3f}, {hi:.3f}] flagged {100 * row['flagged_at_threshold']:.1f}% "
                    f"({time.time() - t0:.0f} s)",
                    flush=True,
                )
    rows = sorted(kept + rows, key=lambda r: r["model"])
    result = {
        "what": "AUROC of the unlike-the-training-data scores: the model's own test images "
        "(calibration) vs another pack's test images, resized to the model's input",
        "command": "python benchmarks/familiarity_auroc.py "
        f"--data-root {args.data_root} --n {args.n} --threads {args.threads}",
        "hardware": f"{platform.processor() or platform.machine()}, {args.threads} threads "
        "(2-core AMD EPYC, shared with other work: measured under load)",
        "torch": torch.__version__,
        "seconds_last_run": round(time.time() - started, 1),
        "bootstrap_reps": args.reps,
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    print(markdown(rows))


def previous_rows(out: Path, only: str) -> list[dict]:
    """The rows of ``out`` (an earlier run) for models ``only`` does not match."""
    if only == "*" or not out.is_file():
        return []
    return [r for r in json.loads(out.read_text())["rows"] if not fnmatch(r["model"], only)]


def markdown(rows: list[dict]) -> str:
    """The README's table: one line per (model, other pack), both scores side by side."""
    lines = [
        "| model | other pack (n) | Mahalanobis AUROC [95% CI] | energy AUROC [95% CI] "
        "| flagged at 99th pct (chosen score) |",
        "|---|---|---|---|---|",
    ]
    keyed = {(r["model"], r["other"], r["score"]): r for r in rows}
    for model, other in dict.fromkeys((r["model"], r["other"]) for r in rows):
        cells = []
        for score in SCORES:
            r = keyed[(model, other, score)]
            lo, hi = r["ci95"]
            mark = "**" if r["chosen"] else ""
            cells.append(f"{mark}{r['auroc']:.3f}{mark} [{lo:.3f}, {hi:.3f}]")
        chosen = next(
            keyed[(model, other, s)] for s in SCORES if keyed[(model, other, s)]["chosen"]
        )
        n_own = chosen["n_own_test"]
        lines.append(
            f"| {model} (own test n={n_own}) | {other} ({chosen['n_other']}) | {cells[0]} | "
            f"{cells[1]} | {100 * chosen['flagged_at_threshold']:.1f}% |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
