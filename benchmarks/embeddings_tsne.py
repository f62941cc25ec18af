"""t-SNE for the Embeddings page: openTSNE (FFT gradients, the page's ``abn.embeddings.tsne_2d``)
against scikit-learn's Barnes-Hut TSNE (the page's t-SNE until #22), side by side.

Both get the same N×C points, the same perplexity (30), PCA initialisation and thread count,
and run in interleaved rounds (so load changes on a shared machine hit both alike). Prints the
median wall time of each with the range over rounds, and the quality of each 2-D map: the
leave-one-out 5-NN accuracy of the classes in 2-D and scikit-learn's trustworthiness (k = 10,
how well the map keeps each point's nearest neighbours of the C-dimensional space; 1 is best).
openTSNE runs both ways, FFT-interpolated and Barnes-Hut gradients (the page takes FFT from
abn.embeddings.FFT_FROM points on). Writes JSON to benchmarks/results/embeddings_tsne_cpu.json.

Points: a 10-class Gaussian mixture (``--source synthetic``, default 5,000×512, the size #22
names), or the pooled last-stage features of a shipped model on a class-balanced test sample
(``--source imagenette``: ABN ResNet-18 with attention, g'(x), 512 dimensions).

    OMP_NUM_THREADS=2 python benchmarks/embeddings_tsne.py --threads 2 --rounds 3
    OMP_NUM_THREADS=2 python benchmarks/embeddings_tsne.py --source imagenette --n 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "embeddings_tsne_cpu.json"


def synthetic(n: int, dim: int, classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points of a ``classes``-component Gaussian mixture in ``dim`` dimensions whose
    classes overlap (class means N(0, 1) per coordinate, noise σ = 3)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    means = rng.normal(0, 1, (classes, dim))
    x = means[labels] + rng.normal(0, 3, (n, dim))
    return x.astype(np.float32), labels


def imagenette(n: int, root: str | None) -> tuple[np.ndarray, np.ndarray]:
    """ABN ResNet-18's pooled g'(x) features on ``n`` class-balanced Imagenette val images."""
    import torch

    import abn
    from abn.data import build_dataset
    from abn.data.transforms import transform_for
    from abn.embeddings import WITH_ATTENTION, perception_features, sample_indices

    model = abn.load(REPO / "assets" / "imagenette-resnet18-abn.safetensors").eval()
    dataset = build_dataset(model.card.dataset, "val", root, transform=transform_for(model.card))
    indices = sample_indices(dataset.targets, n)
    feats = []
    for start in range(0, len(indices), 100):
        batch = torch.stack([dataset[int(i)][0] for i in indices[start : start + 100]])
        feats.append(perception_features(model, batch)[0][WITH_ATTENTION].numpy())
    return np.concatenate(feats), np.asarray(dataset.targets)[indices]


def sklearn_tsne(x: np.ndarray, threads: int, seed: int = 0) -> np.ndarray:
    """The page's t-SNE before #22: scikit-learn, Barnes-Hut, PCA init, 1,000 iterations."""
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (len(x) - 1) / 3)
    tsne = TSNE(
        2,
        perplexity=perplexity,
        init="pca",
        random_state=seed,
        learning_rate="auto",
        n_jobs=threads,
    )
    return tsne.fit_transform(x)


def opentsne_fft(x: np.ndarray, threads: int, seed: int = 0) -> np.ndarray:
    """abn.embeddings.tsne_2d: openTSNE, FFT-interpolated gradients, PCA init, 750 iterations."""
    from abn.embeddings import tsne_2d

    return tsne_2d(x, seed=seed, n_jobs=threads, gradient="fft")


def opentsne_bh(x: np.ndarray, threads: int, seed: int = 0) -> np.ndarray:
    """abn.embeddings.tsne_2d: openTSNE, Barnes-Hut gradients, PCA init, 750 iterations."""
    from abn.embeddings import tsne_2d

    return tsne_2d(x, seed=seed, n_jobs=threads, gradient="bh")


def quality(x: np.ndarray, xy: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.manifold import trustworthiness

    from abn.embeddings import knn_loo_predictions

    knn = float((knn_loo_predictions(xy, labels, 5) == labels).mean())
    return {"knn5_2d": knn, "trustworthiness_10": float(trustworthiness(x, xy, n_neighbors=10))}


def cpu_name() -> str:
    """The CPU's model name (Linux), else the platform's machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cell(seconds: list[float]) -> str:
    return f"{statistics.median(seconds):.1f} s ({min(seconds):.1f}–{max(seconds):.1f})"


def markdown_table(results: dict, threads: int = 1) -> str:
    """README's table: median time (range over rounds) per method and size, from the stored
    synthetic runs with ``threads`` threads."""
    rows = sorted(
        (r for r in results.values() if r["source"] == "synthetic" and r["threads"] == threads),
        key=lambda r: r["n"],
    )
    lines = [
        "| points × dimensions (rounds) | scikit-learn | openTSNE Barnes-Hut | openTSNE FFT |",
        "|---|---|---|---|",
    ]
    for r in rows:
        t = r["seconds"]
        lines.append(
            f"| {r['n']:,} × {r['dim']} ({r['rounds']}) | {_cell(t['sklearn'])} | "
            f"{_cell(t['opentsne_bh'])} | {_cell(t['opentsne_fft'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=("synthetic", "imagenette"), default="synthetic")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=512, help="synthetic only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--root", default=None, help="data root (imagenette)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    import torch
    from openTSNE import __version__ as opentsne_version
    from sklearn import __version__ as sklearn_version

    torch.set_num_threads(args.threads)
    if args.source == "synthetic":
        x, labels = synthetic(args.n, args.dim)
    else:
        x, labels = imagenette(args.n, args.root)
    print(f"{args.source}: {x.shape[0]}×{x.shape[1]} points, {args.threads} threads")
    fns = {"sklearn": sklearn_tsne, "opentsne_fft": opentsne_fft, "opentsne_bh": opentsne_bh}
    times: dict[str, list[float]] = {k: [] for k in fns}
    maps: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            maps[name] = fn(x, args.threads)
            times[name].append(time.perf_counter() - t0)
            print(f"  round {r + 1}: {name} {times[name][-1]:.1f} s", flush=True)
    result = {
        "source": args.source,
        "n": int(x.shape[0]),
        "dim": int(x.shape[1]),
        "threads": args.threads,
        "rounds": args.rounds,
        "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "versions": {"sklearn": sklearn_version, "openTSNE": opentsne_version},
        "seconds": {k: v for k, v in times.items()},
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "quality": {k: quality(x, maps[k], labels) for k in fns},
    }
    for name in fns:
        t, q = times[name], result["quality"][name]
        print(
            f"{name:12s} median {statistics.median(t):6.1f} s (range {min(t):.1f}–{max(t):.1f}, "
            f"{len(t)} rounds) · 2-D 5-NN accuracy {q['knn5_2d']:.3f} · trustworthiness "
            f"{q['trustworthiness_10']:.3f}"
        )
    for name in ("opentsne_fft", "opentsne_bh"):
        speedup = result["median_s"]["sklearn"] / result["median_s"][name]
        print(f"{name}: {speedup:.2f}× scikit-learn's speed (ratio of medians)")
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    previous[f"{args.source}_{x.shape[0]}x{x.shape[1]}_t{args.threads}"] = result
    args.out.write_text(json.dumps(previous, indent=2) + "\n")
    print(markdown_table(previous, args.threads))


if __name__ == "__main__":
    main()
