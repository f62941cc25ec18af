"""Fig. 6 of the paper: t-SNE of the perception branch's last-stage features, cached on disk,
and how well they cluster by class.

Fig. 6 embeds "the feature maps at the final layer on residual block 4": the output of the
perception branch's body (the network's last stage, before GAP and the classifier; VGG: pool5,
before its fully connected layers). :func:`perception_features` pools them (GAP) per image in
two settings, named by the branch's input:

- :data:`WITHOUT_ATTENTION` (``"perception_g"``): the branch run on g(x). For a plain model this
  is simply its last stage (Fig. 6 left); for an ABN, its perception branch with no attention map
  applied (Fig. 6 centre).
- :data:`WITH_ATTENTION` (``"perception_g_prime"``, ABN only): the branch run on
  g'(x) = apply_attention(g(x), M(x)), the features the ABN classifies from (Fig. 6 right).

:func:`compute_embedding` projects each set to 2-D with t-SNE (openTSNE), scores it with
:func:`cluster_quality` (k-NN accuracy and silhouette in the pooled C-dimensional space, not the
2-D map), and stores everything with the predictions and the pooled features in one ``.npz``
file under ``<data root>/.cache/embeddings/``, keyed by the checkpoint's hash, dataset, split,
size, t-SNE and cache format. A second call with the same key reads that file instead of
recomputing. :func:`place` puts new images into a stored map (openTSNE's transform) and
:func:`nearest` finds their nearest embedded images in feature space. Multi-task ABNs are
refused: they have one g'(x) per attribute, not one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from abn.card import ModelCard
from abn.checkpoint import atomic_write_bytes
from abn.data import build_dataset, default_data_root
from abn.data.transforms import transform_for
from abn.models.branches import apply_attention

__all__ = [
    "CACHE_VERSION",
    "FFT_FROM",
    "KIND_LABELS",
    "TSNE_METHOD",
    "WITHOUT_ATTENTION",
    "WITH_ATTENTION",
    "ClusterQuality",
    "Embedding",
    "cache_dir",
    "cache_path",
    "cluster_quality",
    "compute_embedding",
    "fingerprint",
    "gradient_method",
    "knn_loo_predictions",
    "load_images",
    "nearest",
    "perception_features",
    "place",
    "sample_indices",
    "tsne_2d",
    "wilson_interval",
]

CACHE_VERSION = 3  # 1: GAP of g(x) and g'(x) at the split point; 2: scikit-learn's t-SNE
#: the t-SNE that made a cache file's maps: part of its name and recorded inside it (change it,
#: or CACHE_VERSION, with anything that changes the maps, such as FFT_FROM)
TSNE_METHOD = "opentsne"
#: maps of this many points or more use FFT-interpolated gradients, smaller ones Barnes-Hut:
#: FFT's grid costs about the same at any N, so it was slower than Barnes-Hut up to 3,000
#: points and faster at 5,000 (benchmarks/embeddings_tsne.py; the page embeds at most 3,000)
FFT_FROM = 5000
WITHOUT_ATTENTION = "perception_g"
WITH_ATTENTION = "perception_g_prime"
KIND_LABELS = {
    WITHOUT_ATTENTION: "perception branch on g(x), without attention",
    WITH_ATTENTION: "perception branch on g'(x), with attention",
}
#: ``progress(fraction in [0, 1], message)``
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class ClusterQuality:
    """How well one set of pooled features separates the classes, measured on ``n`` images in
    the features' own (C-dimensional) space, Euclidean distances.

    ``knn_accuracy``: leave-one-out ``k``-NN accuracy (each image classified by the majority
    class of its ``k`` nearest other images; ties go to the lowest class index), with its
    Wilson 95% interval ``knn_ci``. ``silhouette``: mean silhouette coefficient with the true
    classes as clusters (in [-1, 1]), with a 95% percentile-bootstrap interval over images
    ``silhouette_ci`` (the per-image coefficients resampled). ``chance``: the k-NN accuracy of
    always answering the commonest class.
    """

    n: int
    k: int
    knn_accuracy: float
    knn_ci: tuple[float, float]
    silhouette: float
    silhouette_ci: tuple[float, float]
    chance: float


@dataclass
class Embedding:
    """t-SNE coordinates of one model's features on ``indices`` of a split.

    ``coords`` maps a feature kind (:data:`WITHOUT_ATTENTION`; :data:`WITH_ATTENTION` for ABN)
    to N×2 coordinates, ``features`` to the N×C pooled features they were computed from (to
    place new images into the map, :func:`place`) and ``quality`` to its
    :class:`ClusterQuality`; ``probs`` are the model's N×K class probabilities; ``tsne`` names
    the t-SNE that made the maps; ``from_cache`` says whether it was read from disk.
    """

    indices: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    coords: dict[str, np.ndarray]
    class_names: list[str]
    quality: dict[str, ClusterQuality] = field(default_factory=dict)
    features: dict[str, np.ndarray] = field(default_factory=dict)
    tsne: str = TSNE_METHOD
    from_cache: bool = False

    @property
    def predictions(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predictions == self.labels


def fingerprint(source: str | os.PathLike[str] | bytes) -> str:
    """First 16 hex digits of the SHA-256 of a checkpoint file (or its bytes)."""
    h = hashlib.sha256()
    if isinstance(source, (bytes, bytearray)):
        h.update(source)
    else:
        with open(source, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def cache_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """``<data root>/.cache/embeddings``."""
    return Path(root or default_data_root()) / ".cache" / "embeddings"


def cache_path(key: str, dataset: str, split: str, n: int, root=None) -> Path:
    """The cache file for one (checkpoint, dataset, split, n), named also by the t-SNE and the
    cache format (:data:`TSNE_METHOD`, :data:`CACHE_VERSION`): files of other code are never
    read as this code's."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{dataset}_{split}")
    return cache_dir(root) / f"{key}_{safe}_n{n}_{TSNE_METHOD}_v{CACHE_VERSION}.npz"


def sample_indices(targets: Sequence[int], n: int, seed: int = 0) -> np.ndarray:
    """``n`` indices (all if fewer), as balanced over classes as possible; deterministic, sorted."""
    targets = np.asarray(targets)
    if n >= len(targets):
        return np.arange(len(targets))
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(targets == c)) for c in np.unique(targets)]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < n:
        for idx in per_class:
            if depth < len(idx) and len(chosen) < n:
                chosen.append(int(idx[depth]))
        depth += 1
    return np.sort(np.asarray(chosen))


@torch.no_grad()
def perception_features(
    model: nn.Module, images: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """GAP of the perception branch's body output per kind, and the class probabilities.

    Every model gives :data:`WITHOUT_ATTENTION` (its perception branch on g(x)); an ABN also
    gives :data:`WITH_ATTENTION` (on g'(x)), and its probabilities are its prediction, the
    branch's on g'(x).
    """
    if getattr(model, "is_multitask", False):
        raise ValueError(
            "a multi-task model has one perception input g'(x) per attribute, not one to embed"
        )
    branch = model.perception_branch
    g = model.feature_extractor(images)
    maps = {WITHOUT_ATTENTION: branch.features(g)}
    if getattr(model, "is_abn", False):
        _, attention, _ = model.attention_branch(g)
        maps[WITH_ATTENTION] = branch.features(apply_attention(g, attention, model.mechanism))
    logits = branch.head(maps.get(WITH_ATTENTION, maps[WITHOUT_ATTENTION]))
    return {k: v.mean(dim=(2, 3)) for k, v in maps.items()}, logits.softmax(dim=1)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% for ``z`` = 1.96)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def knn_loo_predictions(x: np.ndarray, labels: np.ndarray, k: int = 5) -> np.ndarray:
    """Leave-one-out ``k``-NN predictions: each point voted on by its ``k`` nearest others."""
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=k).fit(x, labels).predict(None)


def _silhouette(
    x: np.ndarray, labels: np.ndarray, n_boot: int, seed: int
) -> tuple[float, tuple[float, float]]:
    from sklearn.metrics import silhouette_samples

    if not 2 <= len(np.unique(labels)) <= len(labels) - 1:
        return math.nan, (math.nan, math.nan)
    s = silhouette_samples(x, labels)
    rng = np.random.default_rng(seed)
    boot = s[rng.integers(0, len(s), (n_boot, len(s)))].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(s.mean()), (float(lo), float(hi))


def cluster_quality(
    features: np.ndarray, labels: np.ndarray, k: int = 5, n_boot: int = 1000, seed: int = 0
) -> ClusterQuality:
    """k-NN accuracy and silhouette of N×C ``features`` with classes ``labels`` (see
    :class:`ClusterQuality`); ``k`` shrinks to N − 1 for tiny samples."""
    x = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(labels)
    if x.ndim != 2 or len(x) != n or n < 2:
        raise ValueError(f"need N×C features for N ≥ 2 labels; got {x.shape} and {n} labels")
    k = min(k, n - 1)
    hits = int((knn_loo_predictions(x, labels, k) == labels).sum())
    silhouette, silhouette_ci = _silhouette(x, labels, n_boot, seed)
    return ClusterQuality(
        n=n,
        k=k,
        knn_accuracy=hits / n,
        knn_ci=wilson_interval(hits, n),
        silhouette=silhouette,
        silhouette_ci=silhouette_ci,
        chance=float(np.bincount(np.unique(labels, return_inverse=True)[1]).max() / n),
    )


def tsne_2d(
    x: np.ndarray,
    seed: int = 0,
    perplexity: float = 30.0,
    n_jobs: int | None = None,
    gradient: str | None = None,
) -> np.ndarray:
    """2-D t-SNE of N×C ``x`` (openTSNE: PCA initialisation, perplexity capped to (N − 1) / 3
    for small ``N``; :data:`TSNE_METHOD`). ``gradient``: how the repulsive forces are
    approximated, ``"fft"`` (interpolation on a grid) or ``"bh"`` (Barnes-Hut), by default
    :func:`gradient_method`; ``n_jobs``: threads, default torch's thread count."""
    from openTSNE import TSNE

    n = len(x)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {n}")
    tsne = TSNE(
        2,
        perplexity=_perplexity(n, perplexity),
        initialization="pca",
        negative_gradient_method=gradient or gradient_method(n),
        n_jobs=n_jobs or torch.get_num_threads(),
        random_state=seed,
    )
    return np.asarray(tsne.fit(np.asarray(x, dtype=np.float32)), dtype=np.float32)


def gradient_method(n: int) -> str:
    """openTSNE's gradient for a map of ``n`` points: ``"fft"`` from :data:`FFT_FROM` on."""
    return "fft" if n >= FFT_FROM else "bh"


def _perplexity(n: int, perplexity: float) -> float:
    return min(perplexity, (n - 1) / 3)


def place(
    reference: np.ndarray,
    coords: np.ndarray,
    new: np.ndarray,
    seed: int = 0,
    perplexity: float = 30.0,
) -> np.ndarray:
    """2-D positions of M new points in the t-SNE map ``coords`` of N×C ``reference`` points.

    openTSNE's ``TSNEEmbedding.transform``: each new point starts at the median position of its
    nearest reference points (C-dimensional Euclidean distances) and is optimised against the
    fixed map, ignoring the other new points; the map itself does not move. ``new`` holds M×C
    features of the same kind as ``reference``.
    """
    from openTSNE import TSNEEmbedding
    from openTSNE.affinity import PerplexityBasedNN

    reference = np.asarray(reference, dtype=np.float32)
    new = np.atleast_2d(np.asarray(new, dtype=np.float32))
    if reference.ndim != 2 or len(coords) != len(reference) or new.shape[1] != reference.shape[1]:
        raise ValueError(
            f"need N×C reference features with N×2 coordinates and M×C new points; got "
            f"{reference.shape}, {np.shape(coords)} and {new.shape}"
        )
    affinities = PerplexityBasedNN(
        reference,
        perplexity=_perplexity(len(reference), perplexity),
        method="exact",
        n_jobs=torch.get_num_threads(),
        random_state=seed,
    )
    embedding = TSNEEmbedding(np.asarray(coords, dtype=np.float64), affinities, random_state=seed)
    k = min(25, len(reference) - 1)
    return np.asarray(embedding.transform(new, k=k, perplexity=min(5, k / 3)), dtype=np.float32)


def nearest(reference: np.ndarray, new: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ``k`` reference points nearest to each new point (C-dimensional Euclidean
    distances; M×k, nearest first) and their distances."""
    reference = np.asarray(reference, dtype=np.float64)
    new = np.atleast_2d(np.asarray(new, dtype=np.float64))
    d = np.sqrt(np.maximum(((new[:, None, :] - reference[None]) ** 2).sum(-1), 0))
    rows = np.argsort(d, axis=1, kind="stable")[:, : min(k, len(reference))]
    return rows, np.take_along_axis(d, rows, axis=1)


def _extract(model, dataset, indices, batch_size, progress) -> tuple[dict, np.ndarray]:
    feats: dict[str, list[torch.Tensor]] = {}
    probs = []
    device = next(model.parameters()).device
    for start in range(0, len(indices), batch_size):
        batch = indices[start : start + batch_size]
        x = torch.stack([dataset[int(i)][0] for i in batch]).to(device)
        pooled, p = perception_features(model, x)
        for k, v in pooled.items():
            feats.setdefault(k, []).append(v.float().cpu())
        probs.append(p.float().cpu())
        done = min(start + batch_size, len(indices))
        progress(0.6 * done / len(indices), f"Features: {done}/{len(indices)} images")
    cat = {k: torch.cat(v).numpy() for k, v in feats.items()}
    return cat, torch.cat(probs).numpy()


def compute_embedding(
    model: nn.Module,
    key: str,
    *,
    split: str,
    n: int,
    root: str | os.PathLike[str] | None = None,
    batch_size: int = 128,
    progress: Progress | None = None,
    use_cache: bool = True,
) -> Embedding:
    """t-SNE and cluster quality of ``model``'s pooled last-stage features (see
    :func:`perception_features`) on ``n`` images of ``split`` of its card's dataset.

    ``key`` identifies the weights (use :func:`fingerprint` of the checkpoint). Raises
    :class:`abn.data.DataError` when the dataset is not under ``root``, and ``ValueError`` for a
    multi-label (multi-task) model.
    """
    progress = progress or (lambda _f, _m: None)
    card: ModelCard = model.card
    if card.task != "multiclass":
        raise ValueError(
            f"embeddings need a single-label classifier; {card.arch} is {card.task} (a multi-task "
            "ABN has one g'(x) per attribute, so Fig. 6 has no single 'with attention' panel)"
        )
    path = cache_path(key, card.dataset, split, n, root)
    cached = _load(path) if use_cache and path.is_file() else None
    if cached is not None:
        progress(1.0, "Loaded from cache")
        return cached
    dataset = build_dataset(card.dataset, split, root, transform=transform_for(card))
    targets = getattr(dataset, "targets", None)
    if targets is None:
        targets = [dataset[i][1] for i in range(len(dataset))]
    indices = sample_indices(targets, n)
    feats, probs = _extract(model, dataset, indices, batch_size, progress)
    labels = np.asarray(targets)[indices].astype(np.int64)
    coords, quality = {}, {}
    for i, (kind, x) in enumerate(feats.items()):
        progress(0.6 + 0.4 * i / len(feats), f"t-SNE of the {KIND_LABELS[kind]} ({len(x)} points)…")
        quality[kind] = cluster_quality(x, labels)
        coords[kind] = tsne_2d(x)
    names = list(card.class_names) or [str(c) for c in range(card.num_classes)]
    emb = Embedding(
        indices=indices,
        labels=labels,
        probs=probs,
        coords=coords,
        class_names=names,
        quality=quality,
        features={k: v.astype(np.float32) for k, v in feats.items()},
    )
    _save(emb, path)
    progress(1.0, "Done")
    return emb


def load_images(
    card: ModelCard, split: str, indices: Sequence[int], root=None
) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Images ``indices`` of a split: the model's input batch and the H×W×3 uint8 originals."""
    raw = build_dataset(card.dataset, split, root)
    dataset = build_dataset(card.dataset, split, root, transform=transform_for(card))
    x = torch.stack([dataset[int(i)][0] for i in indices])
    return x, [raw[int(i)][0].permute(1, 2, 0).numpy() for i in indices]


def _save(emb: Embedding, path: Path) -> None:
    import io

    buf = io.BytesIO()
    arrays = {f"coords__{k}": v for k, v in emb.coords.items()}
    arrays |= {f"features__{k}": v for k, v in emb.features.items()}
    np.savez_compressed(
        buf,
        indices=emb.indices,
        labels=emb.labels,
        probs=emb.probs,
        class_names=np.asarray(emb.class_names),
        quality=np.asarray(json.dumps({k: asdict(q) for k, q in emb.quality.items()})),
        made_by=np.asarray(json.dumps({"version": CACHE_VERSION, "tsne": emb.tsne})),
        **arrays,
    )
    atomic_write_bytes(path, buf.getvalue())


def _load(path: Path) -> Embedding | None:
    """The embedding cached at ``path``, or ``None`` when the file was made by other code (an
    older format, another t-SNE) or cannot be read: it is then computed again."""
    try:
        with np.load(path, allow_pickle=False) as z:
            made_by = json.loads(str(z["made_by"])) if "made_by" in z.files else {}
            if made_by != {"version": CACHE_VERSION, "tsne": TSNE_METHOD}:
                return None
            return _embedding(z)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # damaged or foreign: again
        return None


def _embedding(z) -> Embedding:
    def by_kind(prefix: str) -> dict[str, np.ndarray]:
        return {k.split("__", 1)[1]: z[k] for k in z.files if k.startswith(prefix)}

    return Embedding(
        indices=z["indices"],
        labels=z["labels"],
        probs=z["probs"],
        coords=by_kind("coords__"),
        class_names=[str(c) for c in z["class_names"]],
        quality=_quality_from_json(str(z["quality"])),
        features=by_kind("features__"),
        from_cache=True,
    )


def _quality_from_json(text: str) -> dict[str, ClusterQuality]:
    out = {}
    for kind, q in json.loads(text).items():
        q["knn_ci"], q["silhouette_ci"] = tuple(q["knn_ci"]), tuple(q["silhouette_ci"])
        out[kind] = ClusterQuality(**q)
    return out
