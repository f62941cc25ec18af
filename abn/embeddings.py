"""t-SNE of perception-branch features (Fig. 6 of the paper), cached on disk.

For a model and a dataset split, :func:`compute_embedding` pools (GAP) every image's feature maps
``g(x)`` and, for ABN, the attended ones ``g'(x)``, projects each set to 2-D with t-SNE, and
stores everything with the predictions in one ``.npz`` file under
``<data root>/.cache/embeddings/``, keyed by the checkpoint's hash, dataset, split and size.
A second call with the same key reads that file instead of recomputing.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from abn.card import ModelCard
from abn.checkpoint import atomic_write_bytes
from abn.data import build_dataset, default_data_root
from abn.data.transforms import transform_for

__all__ = [
    "CACHE_VERSION",
    "Embedding",
    "cache_dir",
    "cache_path",
    "compute_embedding",
    "fingerprint",
    "load_images",
    "pooled_features",
    "sample_indices",
    "tsne_2d",
]

CACHE_VERSION = 1
#: ``progress(fraction in [0, 1], message)``
Progress = Callable[[float, str], None]


@dataclass
class Embedding:
    """t-SNE coordinates of one model's features on ``indices`` of a split.

    ``coords`` maps a feature kind (``"features"``: g(x); ``"attended_features"``: g'(x), ABN
    only) to N×2 coordinates; ``probs`` are the model's N×K class probabilities; ``from_cache``
    says whether it was read from disk.
    """

    indices: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    coords: dict[str, np.ndarray]
    class_names: list[str]
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
    """The cache file for one (checkpoint, dataset, split, n)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{dataset}_{split}")
    return cache_dir(root) / f"{key}_{safe}_n{n}_v{CACHE_VERSION}.npz"


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
def pooled_features(
    model: nn.Module, images: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """GAP of ``features`` (and ``attended_features`` where present), and class probabilities."""
    out = model(images)
    pooled = {"features": out.features.mean(dim=(2, 3))}
    if out.attended_features is not None:
        pooled["attended_features"] = out.attended_features.mean(dim=(2, 3))
    return pooled, out.logits.softmax(dim=1)


def tsne_2d(x: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE (scikit-learn, PCA init) with perplexity capped for small ``N``."""
    from sklearn.manifold import TSNE

    n = len(x)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {n}")
    perplexity = min(perplexity, (n - 1) / 3)
    tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, learning_rate="auto")
    return tsne.fit_transform(np.asarray(x, dtype=np.float32)).astype(np.float32)


def _extract(model, dataset, indices, batch_size, progress) -> tuple[dict, np.ndarray]:
    feats: dict[str, list[torch.Tensor]] = {}
    probs = []
    device = next(model.parameters()).device
    for start in range(0, len(indices), batch_size):
        batch = indices[start : start + batch_size]
        x = torch.stack([dataset[int(i)][0] for i in batch]).to(device)
        pooled, p = pooled_features(model, x)
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
    """t-SNE of ``model``'s pooled features on ``n`` images of ``split`` of its card's dataset.

    ``key`` identifies the weights (use :func:`fingerprint` of the checkpoint). Raises
    :class:`abn.data.DataError` when the dataset is not under ``root``.
    """
    progress = progress or (lambda _f, _m: None)
    card: ModelCard = model.card
    if card.task != "multiclass":
        raise ValueError(f"embeddings need a single-label classifier; {card.arch} is {card.task}")
    path = cache_path(key, card.dataset, split, n, root)
    if use_cache and path.is_file():
        progress(1.0, "Loaded from cache")
        return _load(path)
    dataset = build_dataset(card.dataset, split, root, transform=transform_for(card))
    targets = getattr(dataset, "targets", None)
    if targets is None:
        targets = [dataset[i][1] for i in range(len(dataset))]
    indices = sample_indices(targets, n)
    feats, probs = _extract(model, dataset, indices, batch_size, progress)
    coords = {}
    for i, (kind, x) in enumerate(feats.items()):
        progress(0.6 + 0.4 * i / len(feats), f"t-SNE of {kind} ({len(x)} points)…")
        coords[kind] = tsne_2d(x)
    names = list(card.class_names) or [str(c) for c in range(card.num_classes)]
    emb = Embedding(
        indices=indices,
        labels=np.asarray(targets)[indices].astype(np.int64),
        probs=probs,
        coords=coords,
        class_names=names,
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
    np.savez_compressed(
        buf,
        indices=emb.indices,
        labels=emb.labels,
        probs=emb.probs,
        class_names=np.asarray(emb.class_names),
        **arrays,
    )
    atomic_write_bytes(path, buf.getvalue())


def _load(path: Path) -> Embedding:
    with np.load(path, allow_pickle=False) as z:
        coords = {k.split("__", 1)[1]: z[k] for k in z.files if k.startswith("coords__")}
        return Embedding(
            indices=z["indices"],
            labels=z["labels"],
            probs=z["probs"],
            coords=coords,
            class_names=[str(c) for c in z["class_names"]],
            from_cache=True,
        )
