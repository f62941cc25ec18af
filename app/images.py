"""The image picker (uploads, a webcam photo or a gallery) and a picture as the model's input."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import streamlit as st
import torch
from PIL import Image

from abn.card import ModelCard
from abn.data import DataError, ImageReadError, build_dataset, evaluation_split, read_image
from abn.data.images import MAX_PIXELS_ENV, resolve_max_pixels
from abn.data.transforms import fit_note as fit_note  # for the pages
from abn.data.transforms import transform_for
from abn.embeddings import sample_indices
from abn.explain.render import denormalize, png_bytes

from . import links
from .config import card_root
from .errors import report

# Shown to users; uploads are not filtered by extension (the reader judges the bytes, so an SVG
# or a renamed PDF gets a specific message instead of the browser's generic refusal).
UPLOAD_FORMATS = "JPEG, PNG, WebP, BMP, GIF or TIFF"
GALLERY_SIZE = 12
CAMERA_NAME = "camera photo"  # what a webcam photo is called on the page
SOURCES = ("Gallery", "Upload", "Camera")
LINK_PARAM = "image"  # ?image=<gallery name or 0-based index>, repeatable: a shareable link
# skimage.data samples that ship with the package (no download): name → (loader, crop box).
SAMPLES: dict[str, tuple[str, tuple[int, int, int, int] | None]] = {
    "astronaut": ("astronaut", None),
    "coffee": ("coffee", None),
    "chelsea (cat)": ("chelsea", None),
    "rocket": ("rocket", None),
    "colorwheel": ("colorwheel", None),
    "hubble deep field": ("hubble_deep_field", None),
}
FACE_SAMPLES: dict[str, tuple[str, tuple[int, int, int, int] | None]] = {
    "astronaut (face)": ("astronaut", (150, 20, 340, 250)),
}


@dataclass(frozen=True)
class Picked:
    """An image chosen by the user; ``label`` is the true class when it comes from a dataset."""

    name: str
    image: Image.Image = field(compare=False)
    label: str | None = None

    @cached_property
    def digest(self) -> str:
        """:func:`image_digest` of the image, hashed once (the image is never replaced)."""
        return image_digest(self.image)


def image_digest(image: Image.Image) -> str:
    """A short content hash of an image (a cache key)."""
    h = hashlib.sha256(image.tobytes())
    h.update(repr(image.size).encode())
    return h.hexdigest()[:20]


def sample_image(loader: str, box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """An RGB sample photo from ``skimage.data`` (optionally cropped to ``box``)."""
    import skimage.data

    image = read_image(png_bytes(Image.fromarray(getattr(skimage.data, loader)())), name=loader)
    return image.crop(box) if box else image


@st.cache_data(show_spinner=False, max_entries=16)
def _dataset_gallery(dataset: str, split: str, root: str) -> list[tuple[str, bytes, str]]:
    """A few images of a dataset split (name, PNG bytes, true class), spread over classes."""
    ds = build_dataset(dataset, split, root)
    targets = getattr(ds, "targets", None)
    if targets is None or getattr(targets, "ndim", 1) != 1:
        chosen = np.arange(min(GALLERY_SIZE, len(ds)))
    else:
        chosen = sample_indices(list(targets), GALLERY_SIZE, seed=1)
    names = list(getattr(ds, "class_names", []) or [])
    out = []
    for i in chosen:
        tensor, target = ds[int(i)]
        image = Image.fromarray(tensor.permute(1, 2, 0).numpy())
        label = names[target] if isinstance(target, int) and target < len(names) else ""
        out.append(
            (f"{split} #{int(i)}" + (f" ({label})" if label else ""), png_bytes(image), label)
        )
    return out


def eval_split(card: ModelCard) -> str:
    """The split to show and embed: the card's test split, else the dataset's eval split (for a
    dataset this install does not know, the card's or ``test``: reading it then says why)."""
    named = (card.splits or {}).get("test")
    try:
        return evaluation_split(card.dataset, named, card_root(card))
    except DataError:
        return named or "test"


def gallery(card: ModelCard | None, faces: bool = False) -> tuple[list[Picked], str]:
    """The gallery for ``card``'s dataset when present, else bundled sample photos."""
    root = card_root(card) if card is not None and card.dataset else None
    if card is not None and root is not None:
        try:
            split = eval_split(card)
            items = _dataset_gallery(card.dataset, split, str(root))
            return [
                Picked(name, read_image(data, name=name), label or None)
                for name, data, label in items
            ], f"{card.dataset} · {split} split"
        except (DataError, KeyError, ValueError):
            pass
    samples = FACE_SAMPLES if faces else SAMPLES
    return [
        Picked(name, sample_image(loader, box)) for name, (loader, box) in samples.items()
    ], "sample photos bundled with scikit-image (no dataset found)"


def upload_limits() -> str:
    """The upload limits in the user's words, shown under the uploader (not only on hover)."""
    megabytes = st.get_option("server.maxUploadSize")
    try:
        pixels = f"{resolve_max_pixels() / 1e6:g} megapixels per image"
    except ImageReadError as exc:  # a malformed setting: say so here, every upload reports it too
        pixels = f"no image at all until the setting is fixed ({exc})"
    return (
        f"{UPLOAD_FORMATS}; up to {megabytes} MB per file and {pixels} (whoever runs the "
        f"dashboard can raise them: `server.maxUploadSize` in `.streamlit/config.toml`, the "
        f"environment variable `{MAX_PIXELS_ENV}`)."
    )


def _read_uploads(files) -> list[Picked]:
    """The readable images among ``files``, each once: a file whose bytes (or decoded pixels)
    repeat an earlier image's is skipped, keeping the first name. Every unreadable file is
    refused by its own name, even when its bytes repeat another's."""
    picked: list[Picked] = []
    seen: dict[str, str] = {}  # content hash (bytes or pixels) → the first image's name
    for f in files:
        data = f.getvalue()
        raw = "bytes:" + hashlib.sha256(data).hexdigest()
        if raw in seen:
            _note_duplicate(f.name, seen[raw])
            continue
        one = _read_one(f.name, data)
        if one is None:
            continue
        seen[raw] = f.name
        if one.digest in seen:
            _note_duplicate(f.name, seen[one.digest])
            continue
        seen[one.digest] = f.name
        picked.append(one)
    return picked


def _read_one(name: str, data: bytes) -> Picked | None:
    """``data`` as an image, or ``None`` after saying why not (one bad file hides no other)."""
    try:
        return Picked(name, read_image(data, name=name))
    except Exception as exc:
        report(exc, f"Reading {name}")
        return None


def _note_duplicate(name: str, first: str) -> None:
    st.caption(f"{name} is the same image as {first}: shown once.")


def image_picker(
    card: ModelCard | None,
    key: str,
    *,
    multiple: bool = False,
    faces: bool = False,
    several_uploads: bool | None = None,
) -> list[Picked]:
    """Upload images, take a webcam photo or choose from the gallery; unreadable files are
    reported, not raised. ``multiple``: several gallery images (and uploads);
    ``several_uploads`` overrides it for uploads (one gallery image, several files)."""
    source = st.radio("Image source", SOURCES, horizontal=True, key=f"{key}_source")
    if source == "Upload":
        several = multiple if several_uploads is None else several_uploads
        files = st.file_uploader(
            "Upload image" + ("s" if several else ""),
            accept_multiple_files=several,
            key=f"{key}_files",
            help=f"{UPLOAD_FORMATS}; other files are refused with the reason",
        )
        st.caption(upload_limits())
        files = files if isinstance(files, list) else [files] if files else []
        share_link([])
        return _read_uploads(files)
    if source == "Camera":
        share_link([])
        return _camera(key)
    items, origin = gallery(card, faces)
    names = [p.name for p in items]
    st.caption(f"Gallery: {origin}")
    widget = f"{key}_gallery"
    switched = _gallery_switched(widget, origin)
    links = [] if switched else st.query_params.get_all(LINK_PARAM)
    linked, unknown = resolve_link(links, names)
    if unknown:
        st.warning(
            f"Not in this gallery ({origin}): {', '.join(repr(u) for u in unknown)} — "
            "from the page's link (`?image=` takes a gallery name or a 0-based index).",
            icon=":material/link_off:",
        )
    if multiple:
        chosen = st.multiselect("Gallery images", names, default=linked or names[:1], key=widget)
    else:
        index = names.index(linked[0]) if linked else 0
        one = st.selectbox("Gallery image", names, index=index, key=widget)
        chosen = [one] if one else []
    share_link(chosen)
    return [items[names.index(n)] for n in chosen]


def _camera(key: str) -> list[Picked]:
    """The webcam photo, if one was taken, read like an upload (``st.camera_input``'s JPEG)."""
    photo = st.camera_input("Take a photo", key=f"{key}_camera")
    one = _read_one(CAMERA_NAME, photo.getvalue()) if photo is not None else None
    return [one] if one is not None else []


def _gallery_switched(widget: str, origin: str) -> bool:
    """Whether the gallery behind ``widget`` changed (another model's dataset): then the old
    choice and the old link are stale, and the widget starts again from its default."""
    seen = f"{widget}_origin"
    previous = st.session_state.get(seen)
    st.session_state[seen] = origin
    if previous is None or previous == origin:
        return False
    st.session_state.pop(widget, None)
    return True


def resolve_link(values: list[str], names: list[str]) -> tuple[list[str], list[str]]:
    """The gallery ``names`` that link ``values`` point at (a name, else a 0-based index), in
    order and without repeats, and the values that match none."""
    found: list[str] = []
    unknown: list[str] = []
    for value in (v.strip() for v in values):
        if value in names:
            name = value
        elif value.isdigit() and int(value) < len(names):
            name = names[int(value)]
        else:
            unknown.append(value)
            continue
        if name not in found:
            found.append(name)
    return found, unknown


def share_link(chosen: list[str]) -> None:
    """Keep ``?image=…`` in the page's URL in step with the gallery selection (so the address
    bar is a link to what is shown); no gallery image, no parameter."""
    links.write(LINK_PARAM, chosen)


def to_input(image: Image.Image, card: ModelCard) -> tuple[torch.Tensor, np.ndarray]:
    """The model's 1×3×H×W input for ``image`` and what it shows (H×W×3 uint8, un-normalised)."""
    x = transform_for(card)(image).unsqueeze(0)
    return x, np.asarray(denormalize(x, card.mean, card.std)[0])
