"""How unlike a model's training data an input is: an out-of-distribution score, calibrated.

Two scores, higher = less like the training data:

- :data:`MAHALANOBIS` (Lee et al., NeurIPS 2018, without input pre-processing or layer
  ensembling): the smallest Mahalanobis distance from an image's pooled features to a class
  mean, with one covariance shared by the classes (Ledoit-Wolf shrinkage), fitted on a subsample
  of the model's training split. Features (:func:`pooled_features`): the GAP of the perception
  branch's last stage on the input it classifies from (g'(x) for ABN, g(x) otherwise); for a
  multi-task ABN, the GAP of its attention branch's stage (one pass, not one perception pass
  per attribute), with one Gaussian for all faces (no single class to condition on).
- :data:`ENERGY` (Liu et al., NeurIPS 2020): −logsumexp of the logits; for multi-task models
  the sum over attributes of each attribute's 2-way energy.

A :class:`Calibration` holds the fitted statistics and both scores of the model's own test
images; a score's percentile among those is what :class:`Familiarity` reports, and an input is
*unlike* when its percentile exceeds ``threshold`` (99: about 1% of the model's own test images
are flagged). Which score a calibration uses (``score``) was chosen by measurement, energy
(``benchmarks/familiarity_auroc.py``; README, "Unlike the training data"): it separated the
other packs' images better than the Mahalanobis score on the last-stage features, or as well
within the intervals, for every shipped model, and needs no fitting.

Files: ``<checkpoint stem>.familiarity.npz`` beside the checkpoint (:func:`calibration_path`),
read with ``allow_pickle=False`` and tied to the checkpoint's stored SHA-256
(:func:`checkpoint_digest`): :func:`load_calibration` refuses another model's file.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from abn.checkpoint import atomic_write_bytes
from abn.models.branches import apply_attention

__all__ = [
    "DEFAULT_SCORE",
    "DEFAULT_THRESHOLD",
    "ENERGY",
    "FORMAT",
    "MAHALANOBIS",
    "SCORES",
    "TYPICAL_BELOW",
    "Calibration",
    "CalibrationError",
    "Familiarity",
    "calibrate",
    "calibrate_checkpoint",
    "calibration_path",
    "checkpoint_digest",
    "energy",
    "fit_gaussian",
    "load_calibration",
    "mahalanobis",
    "pooled_features",
]

FORMAT = "abn-familiarity/1"
MAHALANOBIS = "mahalanobis"
ENERGY = "energy"
SCORES = (MAHALANOBIS, ENERGY)
DEFAULT_SCORE = ENERGY  # chosen by benchmarks/familiarity_auroc.py (README)
DEFAULT_THRESHOLD = 99.0
#: below this percentile an input is typical of the model's test images (9 in 10 of them score
#: lower only above it)
TYPICAL_BELOW = 90.0
SUFFIX = ".familiarity.npz"
_DIGEST_KEY = "abn.sha256"  # the checkpoint metadata entry abn.checkpoint writes
#: ``progress(fraction in [0, 1], message)``
Progress = Callable[[float, str], None]


class CalibrationError(ValueError):
    """A calibration file that cannot be used: another model's, corrupt, or of another format."""


@dataclass(frozen=True)
class Familiarity:
    """How one input compares with the model's own test images.

    ``score``: the raw score (higher = less like the training data); ``percentile``: the share
    (0…100) of the model's test images with a lower score; ``unlike``: ``percentile`` is above
    the calibration's threshold.
    """

    score: float
    percentile: float
    unlike: bool

    @property
    def grade(self) -> str:
        """``"unlike"`` (above the threshold), ``"less typical"`` (at or above
        :data:`TYPICAL_BELOW`) or ``"typical"``. A missing warning proves nothing: the score
        misses many foreign images (README, "Unlike the training data")."""
        if self.unlike:
            return "unlike"
        return "less typical" if self.percentile >= TYPICAL_BELOW else "typical"

    def describe(self) -> str:
        """One plain-language line."""
        where = f"score above {self.percentile:.1f}% of its test images"
        if self.grade == "unlike":
            return f"Unlike its training data: {where}; treat the prediction with caution"
        if self.grade == "less typical":
            return f"No warning, but less typical than 9 in 10 of its test images ({where})"
        return f"No sign of unfamiliar input: typical of its test images ({where})"


# ---------------------------------------------------------------- scores


def _is_multitask_abn(model: nn.Module) -> bool:
    return bool(getattr(model, "is_multitask", False) and getattr(model, "is_abn", False))


@torch.no_grad()
def pooled_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """B×C: the GAP of the features the Mahalanobis score uses (see the module docstring)."""
    g = model.feature_extractor(x)
    if _is_multitask_abn(model):
        maps = model.attention_branch.stage(g)
    elif getattr(model, "is_abn", False):
        _, attention, _ = model.attention_branch(g)
        maps = model.perception_branch.features(apply_attention(g, attention, model.mechanism))
    else:
        maps = model.perception_branch.features(g)
    return maps.mean(dim=(2, 3)).float()


def energy(logits: torch.Tensor, variant: str = "") -> torch.Tensor:
    """B energies −logsumexp(logits); multi-task: summed over attributes (B×T×2 logits, or
    B×T single logits of ``plain_multitask``, read as the 2-way logits (0, z))."""
    logits = logits.float()
    if logits.dim() == 3:
        return -torch.logsumexp(logits, dim=-1).sum(dim=1)
    if variant == "plain_multitask":
        return -torch.nn.functional.softplus(logits).sum(dim=1)
    return -torch.logsumexp(logits, dim=1)


@torch.no_grad()
def _energy_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return energy(model(x).logits, getattr(getattr(model, "spec", None), "variant", ""))


def fit_gaussian(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class means (K×C, one row per label value in sorted order) and the precision (C×C) of
    the covariance the classes share (class-centred features, Ledoit-Wolf shrinkage)."""
    from sklearn.covariance import LedoitWolf

    f = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if f.ndim != 2 or len(f) != len(labels) or len(f) < 2:
        raise ValueError(f"need N×C features for N ≥ 2 labels; got {f.shape}, {len(labels)}")
    classes = np.unique(labels)
    means = np.stack([f[labels == c].mean(axis=0) for c in classes])
    centred = f - means[np.searchsorted(classes, labels)]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    return means, precision


def mahalanobis(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Per row: the smallest squared Mahalanobis distance to a class mean."""
    f = np.asarray(features, dtype=np.float64)
    fp = f @ precision
    mp = means @ precision
    d = (fp * f).sum(1, keepdims=True) - 2 * fp @ means.T + (mp * means).sum(1)[None, :]
    return d.min(axis=1)


# ---------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """One model's calibration: Gaussian statistics and its test images' scores (sorted).

    ``digest``: the checkpoint's stored SHA-256 (:func:`checkpoint_digest`); ``model``: what it
    was fitted for, in words; ``score``: the score :meth:`assess` reports (:data:`SCORES`);
    ``test_scores``: per score, its test images' scores, sorted; ``info``: how it was made.
    """

    digest: str
    model: str
    score: str
    means: np.ndarray
    precision: np.ndarray
    test_scores: dict[str, np.ndarray]
    threshold: float = DEFAULT_THRESHOLD
    info: str = ""

    def scores(self, model: nn.Module, x: torch.Tensor, which: Iterable[str] = SCORES) -> dict:
        """Raw scores of batch ``x`` (B,) per score name in ``which``."""
        out = {}
        for name in which:
            if name == MAHALANOBIS:
                feats = pooled_features(model, x).cpu().numpy()
                if feats.shape[1] != self.means.shape[1]:
                    raise CalibrationError(
                        f"this calibration is for {self.model} ({self.means.shape[1]} features), "
                        f"not a model with {feats.shape[1]}"
                    )
                out[name] = mahalanobis(feats, self.means, self.precision)
            elif name == ENERGY:
                out[name] = _energy_of(model, x).cpu().numpy().astype(np.float64)
            else:
                raise ValueError(f"unknown score {name!r}; choose from {', '.join(SCORES)}")
        return out

    def percentile(self, scores: np.ndarray, name: str | None = None) -> np.ndarray:
        """Per score: the share (0…100) of the test images' ``name`` scores below it."""
        ref = self.test_scores[name or self.score]
        return 100.0 * np.searchsorted(ref, np.asarray(scores), side="left") / len(ref)

    def assess(self, model: nn.Module, x: torch.Tensor) -> list[Familiarity]:
        """One :class:`Familiarity` per image of the preprocessed batch ``x``."""
        raw = self.scores(model, x, (self.score,))[self.score]
        pct = self.percentile(raw)
        return [
            Familiarity(float(s), float(p), bool(p > self.threshold))
            for s, p in zip(raw, pct, strict=True)
        ]

    @property
    def n_test(self) -> int:
        return len(self.test_scores[self.score])

    def with_score(self, score: str) -> Calibration:
        """This calibration reporting ``score`` instead."""
        if score not in self.test_scores:
            raise ValueError(f"no test scores for {score!r} in this calibration")
        return replace(self, score=score)

    def save(self, path: str | os.PathLike[str]) -> None:
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            format=np.asarray(FORMAT),
            digest=np.asarray(self.digest),
            model=np.asarray(self.model),
            score=np.asarray(self.score),
            threshold=np.asarray(self.threshold, dtype=np.float64),
            info=np.asarray(self.info),
            means=self.means.astype(np.float64),
            precision=self.precision.astype(np.float64),
            **{f"test__{k}": np.sort(v).astype(np.float64) for k, v in self.test_scores.items()},
        )
        atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Calibration:
        """Read a calibration file; :class:`CalibrationError` says why one cannot be used."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                fields = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise CalibrationError(
                f"{path.name} is not a readable calibration file: {exc}"
            ) from None
        return _from_arrays(fields, path.name)


def _text(fields: dict, key: str) -> str:
    value = fields[key]
    if value.dtype.kind != "U" or value.ndim != 0:
        raise CalibrationError(f"field {key!r} is not text")
    return str(value)


def _from_arrays(fields: dict[str, np.ndarray], source: str) -> Calibration:
    fmt = str(fields.get("format", "")) if "format" in fields else ""
    if fmt != FORMAT:
        raise CalibrationError(
            f"{source} is not a calibration of format {FORMAT} ({fmt or 'none'})"
        )
    missing = {"digest", "model", "score", "threshold", "means", "precision"} - set(fields)
    if missing:
        raise CalibrationError(f"{source} lacks {', '.join(sorted(missing))} (corrupt file)")
    try:
        means, precision = fields["means"], fields["precision"]
        c = means.shape[1] if means.ndim == 2 else -1
        if means.ndim != 2 or precision.shape != (c, c):
            raise CalibrationError(f"means {means.shape} and precision {precision.shape} disagree")
        tests = {k.split("__", 1)[1]: v for k, v in fields.items() if k.startswith("test__")}
        cal = Calibration(
            digest=_text(fields, "digest"),
            model=_text(fields, "model"),
            score=_text(fields, "score"),
            means=means.astype(np.float64),
            precision=precision.astype(np.float64),
            test_scores={k: v.astype(np.float64) for k, v in tests.items()},
            threshold=float(fields["threshold"]),
            info=_text(fields, "info") if "info" in fields else "",
        )
    except CalibrationError as exc:
        raise CalibrationError(f"{source}: {exc} (corrupt file)") from None
    arrays = [cal.means, cal.precision, *cal.test_scores.values()]
    if cal.score not in cal.test_scores or not cal.test_scores[cal.score].size:
        raise CalibrationError(f"{source} holds no test scores for its score {cal.score!r}")
    if not all(np.isfinite(a).all() for a in arrays) or not 0 < cal.threshold <= 100:
        raise CalibrationError(f"{source} holds non-finite statistics or a bad threshold")
    return cal


def calibration_path(checkpoint: str | os.PathLike[str]) -> Path:
    """``<checkpoint stem>.familiarity.npz`` beside the checkpoint."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + SUFFIX)


def checkpoint_digest(checkpoint: str | os.PathLike[str]) -> str:
    """The SHA-256 a checkpoint stores for its weights and card (read from its metadata, not
    recomputed: :func:`abn.load` checks it)."""
    try:
        with safe_open(str(checkpoint), framework="pt") as f:
            digest = (f.metadata() or {}).get(_DIGEST_KEY, "")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CalibrationError(f"cannot read {Path(checkpoint).name}: {exc}") from None
    if not digest:
        raise CalibrationError(f"{Path(checkpoint).name} stores no digest (not an ABN checkpoint)")
    return digest


def load_calibration(checkpoint: str | os.PathLike[str], model: nn.Module) -> Calibration | None:
    """The calibration beside ``checkpoint`` for ``model`` (loaded from it), ``None`` when there
    is none; :class:`CalibrationError` when it belongs to another model or is corrupt."""
    path = calibration_path(checkpoint)
    if not path.is_file():
        return None
    cal = Calibration.load(path)
    digest = checkpoint_digest(checkpoint)
    if cal.digest != digest:
        raise CalibrationError(
            f"{path.name} was computed for another model ({cal.model}, digest "
            f"{cal.digest[:12]}…), not {Path(checkpoint).name} (digest {digest[:12]}…): "
            "recompute it with `abn familiarity calibrate`"
        )
    del model  # its feature count is checked on first use (Calibration.scores)
    return cal


# ---------------------------------------------------------------- fitting


def _collect(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]],
    energy_too: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    feats, labels, energies = [], [], []
    for x, y in batches:
        feats.append(pooled_features(model, x).cpu().numpy())
        if y is not None:
            labels.append(np.asarray(y).reshape(len(x), -1)[:, 0])
        if energy_too:
            energies.append(_energy_of(model, x).cpu().numpy())
    cat = lambda parts: np.concatenate(parts) if parts else np.empty(0)  # noqa: E731
    return cat(feats), cat(labels), cat(energies)


def calibrate(
    model: nn.Module,
    fit_batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]],
    test_batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]],
    *,
    digest: str,
    description: str,
    score: str = DEFAULT_SCORE,
    threshold: float = DEFAULT_THRESHOLD,
    class_conditional: bool = True,
    info: str = "",
) -> Calibration:
    """Fit the Gaussian on ``fit_batches`` ((x, labels) of training images) and score
    ``test_batches`` with both scores. ``class_conditional=False`` fits one Gaussian."""
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose from {', '.join(SCORES)}")
    model.eval()
    feats, labels, _ = _collect(model, fit_batches, energy_too=False)
    if not class_conditional or len(labels) != len(feats):
        labels = np.zeros(len(feats), dtype=np.int64)
    means, precision = fit_gaussian(feats, labels)
    test_feats, _, test_energy = _collect(model, test_batches, energy_too=True)
    tests = {MAHALANOBIS: mahalanobis(test_feats, means, precision), ENERGY: test_energy}
    return Calibration(
        digest=digest,
        model=description,
        score=score,
        means=means,
        precision=precision,
        test_scores={k: np.sort(v.astype(np.float64)) for k, v in tests.items()},
        threshold=threshold,
        info=info,
    )


def _subsample(dataset, n: int, seed: int = 0) -> np.ndarray:
    """``n`` indices of ``dataset`` (all if fewer): class-balanced for a single-label dataset,
    else uniformly at random; deterministic, sorted."""
    from abn.embeddings import sample_indices

    targets = getattr(dataset, "targets", None)
    if targets is not None and np.asarray(targets).ndim == 1:
        return sample_indices(targets, n, seed)
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(len(dataset))[: min(n, len(dataset))])


def dataset_batches(dataset, indices: np.ndarray, batch_size: int, progress=None):
    """(x, y) batches of ``dataset``'s items ``indices``; ``progress(done, total)``."""
    for start in range(0, len(indices), batch_size):
        items = [dataset[int(i)] for i in indices[start : start + batch_size]]
        x = torch.stack([im for im, _ in items])
        y = torch.stack([torch.as_tensor(t) for _, t in items])
        if progress:
            progress(min(start + batch_size, len(indices)), len(indices))
        yield x, y


def calibrate_checkpoint(
    checkpoint: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    n_fit: int = 2000,
    n_test: int = 1000,
    batch_size: int = 100,
    score: str = DEFAULT_SCORE,
    progress: Progress | None = None,
) -> tuple[Calibration, Path]:
    """Calibrate a checkpoint on its card's dataset (``n_fit`` training images, ``n_test`` test
    images, evaluation preprocessing) and save it beside the checkpoint; returns both."""
    from abn.checkpoint import load
    from abn.data import build_dataset, evaluation_split
    from abn.data.transforms import transform_for

    progress = progress or (lambda _f, _m: None)
    model = load(checkpoint)
    card = model.card
    splits = card.splits or {}
    transform = transform_for(card)
    train = build_dataset(card.dataset, splits.get("train", "train"), root, transform=transform)
    test_split = evaluation_split(card.dataset, splits.get("test"), root)
    test = build_dataset(card.dataset, test_split, root, transform=transform)
    fit_idx, test_idx = _subsample(train, n_fit), _subsample(test, n_test)
    multiclass = card.task == "multiclass"

    def report(stage: str, lo: float, hi: float):
        return lambda done, total: progress(
            lo + (hi - lo) * done / total, f"{stage}: {done}/{total}"
        )

    cal = calibrate(
        model,
        dataset_batches(train, fit_idx, batch_size, report("fit (train)", 0.0, 0.5)),
        dataset_batches(test, test_idx, batch_size, report("calibrate (test)", 0.5, 1.0)),
        digest=checkpoint_digest(checkpoint),
        description=f"{card.display_name} ({Path(checkpoint).name})",
        score=score,
        class_conditional=multiclass,
        info=(
            f"fit on {len(fit_idx)} images of {card.dataset}/{splits.get('train', 'train')}, "
            f"percentiles from {len(test_idx)} of {card.dataset}/{test_split}"
        ),
    )
    path = calibration_path(checkpoint)
    cal.save(path)
    return cal, path
