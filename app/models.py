"""Model discovery, shared loading and the model picker widget."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
from torch import nn

import abn
from abn.card import ModelCard
from abn.checkpoint import CheckpointError
from abn.data import is_tree

from . import links
from .config import assets_dir, card_root, user_models_dir
from .errors import error_boundary

CUSTOM = "Your checkpoint…"
MODEL_PARAM = "model"  # ?model=<file name, with or without .safetensors>: a shareable link
# what ``abn train`` writes in a run folder: the finished model, else the latest epoch's
RUN_CHECKPOINTS = ("final.safetensors", "last.safetensors")
Accept = Callable[[ModelCard], bool]


@dataclass(frozen=True)
class ModelRef:
    """A checkpoint the app can load: a file (path + mtime) or uploaded bytes."""

    key: str
    card: ModelCard = field(compare=False)
    path: Path | None = None
    mtime: float = 0.0
    data: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def filename(self) -> str:
        """The file's name; a training run's checkpoint with its run folder's name."""
        if not self.path:
            return "upload"
        run = self.path.name in RUN_CHECKPOINTS
        return f"{self.path.parent.name}/{self.path.name}" if run else self.path.name

    @property
    def label(self) -> str:
        """What the card says the model is; :func:`labels` adds the file name where needed."""
        measured = "" if self.card.metrics else " (not evaluated)"
        return f"{self.card.display_name}{measured}"


def labels(refs: list[ModelRef]) -> list[str]:
    """Short, distinct picker labels: a model's own label, with its file name only where two
    models would read the same (a narrow sidebar cuts long labels)."""
    plain = [r.label for r in refs]
    return [
        f"{p} — {r.filename}" if plain.count(p) > 1 else p for p, r in zip(plain, refs, strict=True)
    ]


def describe(ref: ModelRef) -> str:
    """The caption under a picker: the model's full label (the box may cut it), its file and
    the measured accuracy."""
    acc = accuracy(ref.card)
    measured = f" · {acc:.2f}% on its test split" if acc is not None else ""
    return f"**{ref.label}** · {ref.filename}{measured}"


def is_multiclass(card: ModelCard) -> bool:
    return card.task == "multiclass" and not card.variant.endswith("multitask")


def class_names(card: ModelCard) -> list[str]:
    """The card's class names, else the class indices as text (``"0"``, ``"1"``, …)."""
    return card.class_names or [str(c) for c in range(card.num_classes)]


def is_abn(card: ModelCard) -> bool:
    return card.variant == "abn"


def is_variant(*variants: str) -> Accept:
    return lambda card: card.variant in variants


def accuracy(card: ModelCard) -> float | None:
    """The perception branch's accuracy in % on the card's test split (top-1, or mean over
    attributes), as measured by training/evaluation; ``None`` if never measured."""
    test = f"{card.dataset}/{(card.splits or {}).get('test', '')}"
    records = [card.metrics.get(test), *card.metrics.values()]
    for record in records:
        if not isinstance(record, dict):
            continue
        if isinstance(record.get("per_top1_err"), (int, float)):
            return 100.0 - float(record["per_top1_err"])
        if isinstance(record.get("per_mean_acc"), (int, float)):
            return float(record["per_mean_acc"])
    return None


def checkpoints_in(directory: Path) -> list[Path]:
    """``directory``'s ``*.safetensors``, and in each sub-folder holding a training run (e.g.
    ``ABN_ASSETS_DIR=runs``), its ``final.safetensors``, else its ``last.safetensors``."""
    found = sorted(directory.glob("*.safetensors"))
    for run in sorted(d for d in directory.iterdir() if d.is_dir() and d.name[0] != "."):
        found.extend([run / n for n in RUN_CHECKPOINTS if (run / n).is_file()][:1])
    return found


def discover(directory: Path | None = None) -> tuple[list[ModelRef], list[str]]:
    """Every checkpoint of :func:`checkpoints_in` with a readable card, and the problems: in
    ``directory``, by default the shipped models' folder and then, if it exists, the folder of
    models fine-tuned in the dashboard (:func:`~app.config.user_models_dir`)."""
    if directory is not None:
        return _discover_in(directory)
    refs, problems = _discover_in(assets_dir())
    user = user_models_dir()
    if user.is_dir() and user.resolve() != assets_dir().resolve():
        more, issues = _discover_in(user)
        refs, problems = refs + more, problems + issues
    return refs, problems


def _discover_in(directory: Path) -> tuple[list[ModelRef], list[str]]:
    refs, problems = [], []
    if not directory.is_dir():
        return refs, [f"model folder {directory} does not exist"]
    for path in checkpoints_in(directory):
        try:
            card = abn.read_card(path)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        mtime = path.stat().st_mtime
        refs.append(ModelRef(f"{path.resolve()}@{mtime}", card, path.resolve(), mtime))
    return refs, problems


@st.cache_resource(max_entries=32, show_spinner="Loading model…")
def _load_file(path: str, mtime: float) -> nn.Module:
    del mtime  # part of the cache key: a replaced file is loaded again
    return abn.load(path)


@st.cache_resource(max_entries=4, show_spinner="Loading uploaded model…")
def _load_bytes(digest: str, _data: bytes, name: str = "upload") -> nn.Module:
    return abn.load(_data, name=name)


def load(ref: ModelRef) -> nn.Module:
    """The model of ``ref``, loaded once per process and shared by every session."""
    if ref.data is not None:
        return _load_bytes(ref.key, ref.data)
    return _load_file(str(ref.path), ref.mtime)


def ref_from_path(text: str) -> ModelRef:
    """A reference to a checkpoint file typed by the user (its card is read, not the weights)."""
    path = Path(text.strip()).expanduser()
    card = abn.read_card(path)
    mtime = path.stat().st_mtime
    return ModelRef(f"{path.resolve()}@{mtime}", card, path.resolve(), mtime)


def ref_from_upload(name: str, data: bytes) -> ModelRef:
    """A reference to uploaded checkpoint bytes (loaded to read the card)."""
    digest = "upload:" + hashlib.sha256(data).hexdigest()
    model = _load_bytes(digest, data, name)
    return ModelRef(digest, model.card, Path(name), 0.0, data)


def _check(ref: ModelRef, accept: Accept, needs: str) -> ModelRef:
    if not accept(ref.card):
        raise CheckpointError(
            f"{ref.filename} is a {ref.card.arch} '{ref.card.variant}' model "
            f"({ref.card.task}); this page needs {needs}."
        )
    return ref


def _custom_ref(key: str) -> ModelRef | None:
    how = st.radio("Checkpoint from", ["Path", "Upload"], horizontal=True, key=f"{key}_how")
    if how == "Path":
        text = st.text_input("Path to a .safetensors checkpoint", key=f"{key}_path")
        return ref_from_path(text) if text.strip() else None
    upload = st.file_uploader("Upload a .safetensors checkpoint", key=f"{key}_upload")
    return ref_from_upload(upload.name, upload.getvalue()) if upload else None


def default_order(refs: list[ModelRef], prefer: Accept | None = None) -> list[ModelRef]:
    """``refs`` with the default first: models ``prefer`` accepts, then single-task models before
    multi-task ones, then the largest input size (a photo fits a 160 px ImageNet-style model,
    not a 32 px CIFAR-10 one); ties keep their order."""

    def rank(ref: ModelRef) -> tuple[bool, bool, int]:
        height, width = ref.card.input_size
        preferred = prefer(ref.card) if prefer else True
        return not preferred, not is_multiclass(ref.card), -height * width

    return sorted(refs, key=rank)


def link_name(ref: ModelRef) -> str:
    """``ref``'s name in a ``?model=`` link: its file name without ``.safetensors`` (a training
    run's checkpoint with its run folder, e.g. ``run1/final``)."""
    return ref.filename.removesuffix(".safetensors")


def share_name(ref: ModelRef | None) -> str | None:
    """``ref``'s name for a copied link (:func:`app.links.share_box`): a model of the app's own
    folders, even the default; ``None`` for the user's own checkpoint (no link can carry it)."""
    if ref is None or ref.data is not None:
        return None
    return link_name(ref) if ref in discover()[0] else None


def linked_model(refs: list[ModelRef]) -> int | None:
    """The index in ``refs`` of the model named by the page's ``?model=`` link, if any; an
    unknown name is reported as a warning."""
    wanted = st.query_params.get(MODEL_PARAM)
    if not wanted:
        return None
    name = wanted.removesuffix(".safetensors")
    for i, ref in enumerate(refs):
        if link_name(ref) == name:
            return i
    st.warning(
        f"Not among the models this page offers: {wanted!r} — from the page's link "
        "(`?model=` takes a model's file name).",
        icon=":material/link_off:",
    )
    return None


def _share_model(ref: ModelRef | None, default: ModelRef | None) -> None:
    """Keep ``?model=`` naming the chosen shipped model when it is not the page's ``default``
    (a plain link opens on the default; a user's own checkpoint has no link)."""
    links.write(MODEL_PARAM, [link_name(ref)] if ref is not None and ref != default else [])


def model_picker(
    label: str, accept: Accept, needs: str, key: str, prefer: Accept | None = None
) -> ModelRef | None:
    """Choose a shipped model that ``accept``s, or the user's own checkpoint (path or upload).

    The default is the page's ``?model=`` link, else the first of :func:`default_order`; any
    other shipped model chosen is written to the link. A user checkpoint that does not fit raises
    :class:`CheckpointError` saying what ``needs``.
    """
    refs = default_order([r for r in discover()[0] if accept(r.card)], prefer)
    ref = _pick(label, refs, CUSTOM, key, index=linked_model(refs) or 0)
    _share_model(ref, refs[0] if refs else None)
    if ref is not None:
        return ref
    ref = _custom_ref(key)
    return _check(ref, accept, needs) if ref else None


def same_task(card: ModelCard, main: ModelCard) -> bool:
    """Whether ``card``'s model answers ``main``'s question: the same dataset and classes (in
    order), and for models of a user's own image tree, the same tree."""
    if card.dataset != main.dataset or list(card.class_names) != list(main.class_names):
        return False
    return not is_tree(card.dataset) or card_root(card) == card_root(main)


def companion_picker(
    label: str, main: ModelRef | None, variants: tuple[str, ...], key: str
) -> ModelRef | None:
    """A second model (e.g. the plain baseline) for ``main``'s task (:func:`same_task`), or
    none; the one with ``main``'s architecture first."""
    refs = [r for r in discover()[0] if r.card.variant in variants]
    if main is not None:
        same = [r for r in refs if same_task(r.card, main.card)]
        refs = sorted(same, key=lambda r: r.card.arch != main.card.arch)
    return _pick(label, refs, "(none)", key)


def _pick(
    label: str, refs: list[ModelRef], other: str, key: str, index: int = 0
) -> ModelRef | None:
    """A selectbox of ``refs`` and ``other`` (``index`` chosen at first); the chosen model
    (captioned with its full label), or ``None`` for ``other``."""
    options = [*labels(refs), other]
    choice = st.selectbox(label, options, index=index, key=key)
    if choice == other:
        return None
    ref = refs[options.index(choice)]
    st.caption(describe(ref))
    return ref


def abn_with_baselines(
    key: str, cam: bool = True
) -> tuple[ModelRef | None, ModelRef | None, ModelRef | None]:
    """Sidebar pickers for an ABN model, its plain baseline and (optionally) its CAM model."""
    abn_ref = plain_ref = cam_ref = None
    with error_boundary("Choosing the models"):
        abn_ref = model_picker("ABN model", is_abn, "an ABN model (variant 'abn')", f"{key}_abn")
        plain_ref = companion_picker("Plain baseline", abn_ref, ("plain",), f"{key}_plain")
        if cam:
            cam_ref = companion_picker("CAM model", abn_ref, ("cam",), f"{key}_cam")
    return abn_ref, plain_ref, cam_ref
