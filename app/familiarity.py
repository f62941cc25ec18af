"""The "unlike the training data" signal next to a prediction, and which shipped model an
upload fits (:mod:`abn.familiarity` underneath; calibrations ship beside the checkpoints)."""

from __future__ import annotations

from math import floor
from pathlib import Path

import numpy as np
import streamlit as st
from torch import nn

from abn.familiarity import Calibration, CalibrationError, Familiarity, calibration_path
from abn.familiarity import load_calibration as _load_calibration

from .compute import prepare
from .images import Picked
from .models import (
    Accept,
    ModelRef,
    default_order,
    discover,
    is_multiclass,
    labels,
    load,
)

NO_CALIBRATION = "no calibration for this model"
# a card's dataset → how the page names its training data
DATASET_NAMES = {
    "cifar10": "CIFAR-10",
    "imagenette": "Imagenette",
    "celeba-hq": "CelebA-HQ faces",
    "celeba-hq-by-number": "CelebA-HQ faces",
}
FACE_DATASETS = frozenset({"celeba-hq", "celeba-hq-by-number", "celeba"})
UNLIKE_ICON = ":material/report:"
#: a switch is offered only when the current model finds the image unlike or in the top tail of
#: its test images' scores (percentile ≥ TOP_TAIL) and another model's percentile is lower by
#: at least CLEARLY_LOWER points without that model finding it unlike
TOP_TAIL = 95.0
CLEARLY_LOWER = 20.0


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)


@st.cache_resource(max_entries=32, show_spinner=False)
def _calibration(path: str, mtime: float, cal_mtime: float, _model: nn.Module):
    """The calibration beside ``path`` (or ``None``), or the reason it cannot be used."""
    del mtime, cal_mtime  # cache keys: a replaced file is read again
    try:
        return _load_calibration(Path(path), _model)
    except CalibrationError as exc:
        return str(exc)


def calibration(ref: ModelRef) -> Calibration | str | None:
    """``ref``'s calibration; ``None`` when it has none (an upload, a file without one); the
    reason as text when its file cannot be used."""
    if ref.path is None or ref.data is not None:
        return None
    cal_path = calibration_path(ref.path)
    if not cal_path.is_file():
        return None
    return _calibration(str(ref.path), ref.mtime, cal_path.stat().st_mtime, load(ref))


@st.cache_data(show_spinner=False, max_entries=512)
def _assess(
    key: str, digest: str, cal_key: float, _cal: Calibration, _model: nn.Module, _x
) -> Familiarity:
    del key, digest, cal_key  # the cache key: model, image and calibration file
    return _cal.assess(_model, _x)[0]


def familiarity(ref: ModelRef, picked: Picked) -> Familiarity | str | None:
    """How unlike ``ref``'s training data ``picked`` is; ``None`` without a calibration, the
    reason as text when the calibration cannot be used."""
    cal = calibration(ref)
    if not isinstance(cal, Calibration):
        return cal
    try:
        cal_key = calibration_path(ref.path).stat().st_mtime
        x = prepare(ref, picked).x
        return _assess(ref.key, picked.digest, cal_key, cal, load(ref), x)
    except CalibrationError as exc:
        return str(exc)


def show_familiarity(ref: ModelRef, picked: Picked, who: str = "") -> Familiarity | None:
    """The signal as a caption (a warning when unlike), its model named ``who`` if given; quiet
    when there is no calibration."""
    fam = familiarity(ref, picked)
    name = f"{who}: " if who else ""
    if fam is None:
        st.caption(f":material/help: {name}Unlike-the-training-data signal: {NO_CALIBRATION}.")
        return None
    if isinstance(fam, str):
        st.caption(f":material/help: {name}Unlike-the-training-data signal unavailable: {fam}")
        return None
    data = dataset_name(ref.card.dataset)
    if fam.grade == "unlike":
        st.warning(
            f"{name}**Unlike the training data ({data})**: this image scores above "
            f"{fam.percentile:.1f}% of the model's own test images, so the prediction may be "
            "confidently wrong.",
            icon=UNLIKE_ICON,
        )
    elif fam.grade == "less typical":
        st.caption(
            f":material/info: {name}No warning, but less typical than 9 in 10 of the model's "
            f"own test images ({data}): its score is above {floor(fam.percentile)}% of them "
            "(warning above 99%)."
        )
    else:
        st.caption(
            f":material/verified: {name}No sign of unfamiliar input ({data}): typical of the "
            f"model's own test images, its score above {floor(fam.percentile)}% of them (warning "
            "above 99%; a missing warning does not prove the image fits)."
        )
    return fam


def _switch(picker_key: str, label: str) -> None:
    st.session_state[picker_key] = label


def _representatives(ref: ModelRef, accept: Accept, prefer: Accept | None) -> list[ModelRef]:
    """One calibrated shipped model per dataset: ``ref`` for its own, else the page's first
    choice that ``accept``s, else any."""
    refs = discover()[0]
    ordered = default_order([r for r in refs if accept(r.card)], prefer)
    ordered += [r for r in refs if not accept(r.card)]
    chosen: dict[str, ModelRef] = {ref.card.dataset: ref}
    for r in ordered:
        if r.card.dataset not in chosen and isinstance(calibration(r), Calibration):
            chosen[r.card.dataset] = r
    return list(chosen.values())


def worth_switching(current: Familiarity, other: Familiarity) -> bool:
    """Whether to suggest the model that scored ``other`` over the one that scored
    ``current``: ``current`` is unlike or in the top tail (percentile ≥ :data:`TOP_TAIL`) and
    ``other`` is not unlike and clearly lower (by :data:`CLEARLY_LOWER` points or more)."""
    tail = current.unlike or current.percentile >= TOP_TAIL
    return tail and not other.unlike and other.percentile <= current.percentile - CLEARLY_LOWER


def suggest_model(
    picked: Picked,
    ref: ModelRef,
    picker_key: str,
    accept: Accept = is_multiclass,
    prefer: Accept | None = None,
) -> ModelRef | None:
    """When ``ref`` finds ``picked`` unlike its training data or in the top tail of its test
    images, and another shipped model (one calibrated model per dataset) finds it clearly more
    typical (:func:`worth_switching`; the lowest percentile), say so and offer a button that
    switches the picker ``picker_key`` (whose models ``accept`` chooses) to it. Returns the
    suggested model, or ``None`` (no suggestion)."""
    if not isinstance(calibration(ref), Calibration):
        return None
    current = familiarity(ref, picked)
    scored = []
    for r in _representatives(ref, accept, prefer):
        fam = familiarity(r, picked)
        if isinstance(fam, Familiarity) and r.card.dataset != ref.card.dataset:
            scored.append((fam.percentile, r, fam))
    if not isinstance(current, Familiarity) or not scored:
        return None
    _, best, fam = min(scored, key=lambda s: s[0])
    if current.unlike and all(f.unlike for _, _, f in scored):
        st.caption(
            ":material/travel_explore: Unlike the training data of every shipped model: no "
            "shipped model fits this image well."
        )
        return None
    if not worth_switching(current, fam):
        return None
    data, own = dataset_name(best.card.dataset), dataset_name(ref.card.dataset)
    why = (
        f"**{picked.name}** is {'unlike' if current.unlike else 'less typical of'} this "
        f"model's {own} test images (score above {floor(current.percentile)}% of them); a {data} "
        f"model finds it more typical (score above {floor(fam.percentile)}% of its test images)"
    )
    if not accept(best.card):
        st.info(
            f"{why}: the Face attributes page's models fit it.", icon=":material/travel_explore:"
        )
        return best
    options = [r for r in discover()[0] if accept(r.card)]
    label = labels(options)[options.index(best)]
    st.info(f"{why} — switch to **{label}**?", icon=":material/travel_explore:")
    st.button(
        f"Switch to {label}",
        key=f"{picker_key}_suggest_{picked.digest}",
        on_click=_switch,
        args=(picker_key, label),
        icon=":material/swap_horiz:",
    )
    return best


def is_grayscale(image, tolerance: int = 2) -> bool:
    """Whether an image's three channels are (nearly) equal: a grayscale photo saved as RGB."""
    a = np.asarray(image.convert("RGB"), dtype=np.int16)
    return bool(np.abs(a[..., 0] - a[..., 1]).max() <= tolerance) and bool(
        np.abs(a[..., 1] - a[..., 2]).max() <= tolerance
    )


def face_notes(picked: Picked, fam: Familiarity | None) -> None:
    """Face attributes: warn about grayscale input and, when the face model finds the image
    unlike its training faces, about framing."""
    if is_grayscale(picked.image):
        st.warning(
            "**Grayscale input**: the face model was trained on colour faces; attributes that "
            "depend on colour (Pale_Skin, hair colour, makeup) are unreliable here.",
            icon=":material/filter_b_and_w:",
        )
    if fam is not None and fam.unlike:
        st.caption(
            ":material/crop_free: Framing unlike the training faces? They are aligned CelebA-HQ "
            "portraits: the whole head centred, some hair and neck visible, eyes about 40% "
            "down. A tight crop, a tilted or off-centre face reads as unlike them."
        )
