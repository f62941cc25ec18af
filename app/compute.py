"""Cached calls into the library: predictions and explanations of one image.

Results are cached per (model key, image digest, method, target) with ``st.cache_data``, so
moving a slider re-renders without recomputing. Models and tensors are passed as
underscore arguments (not hashed); the keys identify them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
import torch
from torch import nn

from abn.explain import (
    Explanation,
    estimate_seconds,
    explain,
    get_method,
    list_methods,
    pass_seconds,
)
from abn.explain import about as about  # for the pages
from abn.explain import minmax_per_map as minmax_per_map  # for the pages
from abn.explain.render import denormalize
from abn.metrics import agreement_matrix as agreement_matrix  # for the pages
from abn.metrics.scorecard import LABELS as LABELS  # for the pages
from abn.metrics.scorecard import paired_differences as paired_differences  # for the pages
from abn.metrics.scorecard import reference_method as reference_method  # for the pages
from abn.metrics.scorecard import summarize as summarize  # for the pages
from abn.models import attribute_probabilities

from .images import Picked, to_input
from .models import ModelRef, load


@dataclass
class Prediction:
    """Class probabilities of both branches for one image (attention: ``None`` if no branch)."""

    perception: np.ndarray
    attention: np.ndarray | None


@dataclass
class Prepared:
    """A picked image as the model sees it."""

    x: torch.Tensor
    view: np.ndarray


def prepare(ref: ModelRef, picked: Picked) -> Prepared:
    """The model input and its displayable view (at the model's input resolution)."""
    x, view = to_input(picked.image, ref.card)
    return Prepared(x, view)


@st.cache_data(show_spinner=False, max_entries=256)
def _predict(key: str, digest: str, _model: nn.Module, _x: torch.Tensor) -> Prediction:
    with torch.inference_mode():
        out = _model(_x)
    if out.logits.dim() == 3 or _model.spec.variant == "plain_multitask":
        return Prediction(attribute_probabilities(out)[0].numpy(), None)
    att = out.att_logits.softmax(1)[0].numpy() if out.att_logits is not None else None
    return Prediction(out.logits.softmax(1)[0].numpy(), att)


def predict(ref: ModelRef, picked: Picked) -> Prediction:
    """Both branches' class probabilities (multi-task: P(attribute present), one branch)."""
    return _predict(ref.key, picked.digest, load(ref), prepare(ref, picked).x)


@st.cache_data(show_spinner=False, max_entries=512)
def _explain(
    key: str, digest: str, method: str, target: int | None, _model: nn.Module, _x: torch.Tensor
) -> Explanation:
    return explain(_model, _x, method, target).cpu()


_SLOW_MAPS: OrderedDict[tuple, Explanation] = OrderedDict()  # shared by all sessions
_SLOW_MAPS_MAX = 128
_SLOW_MAPS_LOCK = threading.Lock()


def explanation(
    ref: ModelRef, picked: Picked, method: str, target: int | None = None, progress=None
) -> Explanation:
    """``method``'s explanation of one image for ``target`` (``None``: the predicted class).

    A slow method (Score-CAM, RISE, …) with ``progress`` (``callback(fraction, message)``, e.g.
    a bar's ``progress``) reports per batch of forward passes, and is cached by hand: on a
    ``st.cache_data`` hit Streamlit would replay the bar's calls onto a bar that is gone.
    """
    key = (ref.key, picked.digest, method, target)
    if get_method(method).slow:
        with _SLOW_MAPS_LOCK:
            if key in _SLOW_MAPS:
                _SLOW_MAPS.move_to_end(key)
                return _SLOW_MAPS[key]
    if progress is None or not get_method(method).slow:
        return _explain(*key, load(ref), prepare(ref, picked).x)
    ex = explain(load(ref), prepare(ref, picked).x, method, target, progress=progress).cpu()
    with _SLOW_MAPS_LOCK:
        _SLOW_MAPS[key] = ex
        while len(_SLOW_MAPS) > _SLOW_MAPS_MAX:
            _SLOW_MAPS.popitem(last=False)
    return ex


def slow_estimate(cells: list[Cell], images: int = 1) -> tuple[float, list[str]] | None:
    """Expected seconds of the slow methods among ``cells`` on ``images`` images, from each
    model's measured forward pass (measured once per model), and their titles; ``None`` when
    none is slow."""
    slow = [c for c in cells if get_method(c.method).slow]
    if not slow:
        return None
    seconds = sum(estimate_seconds(load(c.ref), c.method, images) for c in slow)
    return seconds, list(dict.fromkeys(method_title(c.method) for c in slow))


def split_estimate(cells: list[Cell], n: int, steps: int) -> float:
    """Expected seconds of :func:`split_scores`: each method's explanation and the metrics'
    forward passes (deletion and insertion curves, confidence change), from measured passes."""
    total = 0.0
    for c in cells:
        model = load(c.ref)
        total += estimate_seconds(model, c.method, n)
        total += (2 * (steps + 1) + 2) * n * pass_seconds(model)
    return total


def default_method(model: nn.Module) -> str:
    """The model's own map: ABN attention, CAM for CAM models, Grad-CAM otherwise."""
    if model.is_abn:
        return "abn"
    return "cam" if model.spec.variant == "cam" else "gradcam"


methods_for = list_methods  # the registry's methods that can explain a model


def takes_target(method: str) -> bool:
    """Whether ``method``'s map depends on the class it explains (the registry's flag)."""
    return not get_method(method).class_agnostic


DEFAULT_POST_HOC = ("gradcam", "gradcam++")  # fast; the slow ones (RISE, Score-CAM…) are opt-in


def method_title(method: str) -> str:
    """A method's display name (``"Grad-CAM++"``), from the library's registry."""
    return get_method(method).title


def method_short(method: str) -> str:
    """A method's short label for table columns (``"GC++"``)."""
    return get_method(method).short


def methods_help(methods: list[str]) -> str:
    """One line per method: its display name and what it does, in plain words (a tooltip)."""
    return "\n".join(f"- **{get_method(m).title}** — {get_method(m).description}" for m in methods)


def post_hoc_methods() -> list[str]:
    """The methods that explain any model from the outside (the Grad-CAM family, RISE,
    Integrated Gradients, Occlusion…), as the library registers them."""
    return [m for m in list_methods() if get_method(m).post_hoc]


def default_post_hoc() -> list[str]:
    """The post-hoc methods chosen at first: the fast gradient ones."""
    return [m for m in DEFAULT_POST_HOC if m in post_hoc_methods()]


@dataclass(frozen=True)
class Cell:
    """One map of the comparison grid: a method applied to a model."""

    label: str
    ref: ModelRef
    method: str
    short: str = ""


def comparison_cells(
    abn_ref: ModelRef, plain: ModelRef | None, cam: ModelRef | None, post_hoc: list[str]
) -> list[Cell]:
    """ABN's own maps, CAM, then each post-hoc method on the baseline and on ABN."""
    cells = [
        Cell(method_title("abn"), abn_ref, "abn", method_short("abn")),
        Cell(method_title("abn-class"), abn_ref, "abn-class", method_short("abn-class")),
    ]
    if cam is not None:
        cells.append(Cell(f"{method_title('cam')} (CAM model)", cam, "cam", method_short("cam")))
    for method in post_hoc:
        name, short = method_title(method), method_short(method)
        if plain is not None:
            cells.append(Cell(f"{name} · baseline", plain, method, f"{short} base"))
        cells.append(Cell(f"{name} · ABN", abn_ref, method, f"{short} ABN"))
    return cells


@dataclass
class AttributeMaps:
    """Multi-task ABN on one image: P(attribute present) and the T attention maps (T×h×w)."""

    probabilities: np.ndarray
    maps: np.ndarray


@st.cache_data(show_spinner=False, max_entries=64)
def _attribute_maps(key: str, digest: str, _model: nn.Module, _x: torch.Tensor) -> AttributeMaps:
    with torch.inference_mode():
        out = _model(_x)
    return AttributeMaps(attribute_probabilities(out)[0].numpy(), out.attention[0].numpy())


def attribute_maps(ref: ModelRef, picked: Picked) -> AttributeMaps:
    """Every attribute's probability and attention map from one forward pass."""
    return _attribute_maps(ref.key, picked.digest, load(ref), prepare(ref, picked).x)


@st.cache_data(show_spinner=False, max_entries=8)
def _fingerprint(path: str, mtime: float) -> str:
    from abn.embeddings import fingerprint

    return fingerprint(path)


def weights_key(ref: ModelRef) -> str:
    """A content hash of the checkpoint (the embedding cache key)."""
    if ref.data is not None:
        return ref.key.split(":", 1)[1][:16]
    return _fingerprint(str(ref.path), ref.mtime)


@st.cache_data(show_spinner=False, max_entries=32, ttl=300)
def split_size(dataset: str, split: str, root: str) -> int:
    """How many images ``split`` of ``dataset`` under ``root`` holds (0: it cannot be read; the
    page's own reading then says why)."""
    from abn.data import DataError, build_dataset

    try:
        return len(build_dataset(dataset, split, root))
    except (DataError, OSError):
        return 0


@st.cache_data(show_spinner=False, max_entries=32)
def _dataset_maps(
    key: str, split: str, indices: tuple[int, ...], root: str, _ref: ModelRef
) -> tuple[list[np.ndarray], Explanation]:
    from abn.embeddings import load_images

    x, _ = load_images(_ref.card, split, indices, root)
    result = explain(load(_ref), x, default_method(load(_ref))).cpu()
    views = [np.asarray(v) for v in denormalize(x, _ref.card.mean, _ref.card.std)]
    return views, result


def dataset_maps(
    ref: ModelRef, split: str, indices: list[int], root: str
) -> tuple[list[np.ndarray], Explanation]:
    """Model views and attention maps of dataset images ``indices`` of ``split``."""
    return _dataset_maps(ref.key, split, tuple(indices), root, ref)


@st.cache_data(show_spinner=False, max_entries=256)
def _curves(
    key: str, digest: str, method: str, steps: int, _model: nn.Module, _x: torch.Tensor, _ex
) -> dict[str, np.ndarray]:
    from abn.metrics import perturbation_curves

    out: dict[str, np.ndarray] = {}
    for mode in ("deletion", "insertion"):
        c = perturbation_curves(_model, _x, _ex.maps, _ex.targets, mode, steps)
        out[mode] = c.scores[0].numpy()
        out[f"{mode}_auc"] = np.float64(c.auc[0])
        out["fractions"] = c.fractions.numpy()
    return out


def perturbation(ref: ModelRef, picked: Picked, method: str, steps: int) -> dict[str, np.ndarray]:
    """Deletion and insertion curves (and AUCs) of ``method``'s map of one image."""
    ex = explanation(ref, picked, method)
    return _curves(ref.key, picked.digest, method, steps, load(ref), prepare(ref, picked).x, ex)


_SPLIT_SCORES: OrderedDict[tuple, pd.DataFrame] = OrderedDict()  # shared by all sessions
_SPLIT_SCORES_MAX = 16
_SPLIT_SCORES_LOCK = threading.Lock()


def split_scores(cells: list[Cell], split: str, n: int, steps: int, root: str, progress=None):
    """The scorecard table of ``cells`` on ``n`` images of ``split`` (cached per settings).

    Cached by hand, not with ``st.cache_data``: the computation reports to ``progress`` (a
    progress bar of the calling run), and Streamlit would replay that call on a cache hit onto
    a bar that no longer exists.
    """
    from abn.metrics.scorecard import Entry, sample_batches, score

    key = (tuple(c.ref.key for c in cells), tuple(c.method for c in cells), split, n, steps, root)
    with _SPLIT_SCORES_LOCK:
        if key in _SPLIT_SCORES:
            _SPLIT_SCORES.move_to_end(key)
            return _SPLIT_SCORES[key].copy()
    entries = [Entry(c.label, load(c.ref), c.method) for c in cells]
    batches, _, total = sample_batches(cells[0].ref.card, split=split, n=n, batch_size=25,
                                       root=root)  # fmt: skip
    table = score(entries, batches, ("deletion", "insertion", "confidence"), steps,
                  progress=progress, total_batches=total)  # fmt: skip
    with _SPLIT_SCORES_LOCK:
        _SPLIT_SCORES[key] = table
        while len(_SPLIT_SCORES) > _SPLIT_SCORES_MAX:
            _SPLIT_SCORES.popitem(last=False)
    return table.copy()
