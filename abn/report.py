"""Batch report: many images explained by one model, as one self-contained HTML file.

>>> from abn.report import build_report
>>> report = build_report(model, [("cat.jpg", image)], ["abn", "gradcam"], scores=True)
>>> Path("report.html").write_text(report.to_html())

Per image the report shows what the model saw with each method's map over it and the raw map,
the top-k predictions of both branches (ABN) or of the model, the "unlike the training data"
signal (:mod:`abn.familiarity`, when the model has a calibration) and, with ``scores=True``, the
faithfulness scores of :mod:`abn.metrics` (deletion/insertion AUC, Average Drop, ROAD) with a
summary over the images at the top. The header holds the model card (name, digest, dataset,
accuracy), the methods, the date and the command that made it. Every picture is inlined as
base64 (JPEG/PNG) and the page has no script, external style sheet or font, so it opens offline;
every text that comes from outside (file names, class names) is HTML-escaped.

Images are read with :func:`sources_from_paths` (files, folders, ZIP archives) or
:func:`sources_from_uploads` (name and bytes, e.g. the dashboard's uploads): each is a
:class:`Source` decoded only when its turn comes, and one that cannot be read becomes a
:class:`Skipped` entry with the reason.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from abn.data.archive import ArchiveError, is_zip, read_zip
from abn.data.images import ImageReadError, is_image_file, read_image
from abn.data.transforms import fit_note, seen_box
from abn.explain import explain_many, method_names
from abn.explain.preprocess import preprocess_for
from abn.explain.render import colorize, overlay, to_numpy_map

#: Long side, in pixels, of every picture in the report.
DISPLAY = 224
#: Per-image faithfulness scores (as the scorecard names them; ↑ higher / ↓ lower is better).
SCORE_METRICS = ("deletion_auc", "insertion_auc", "avg_drop", "increase", "road_morf", "road_lerf")
NO_CALIBRATION = "no calibration"
Progress = Callable[[int, int, str], None]


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Skipped:
    """An input that is not in the report, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Source:
    """One image to report on: ``load()`` returns it as an RGB ``PIL.Image`` or raises
    :class:`~abn.data.images.ImageReadError`."""

    name: str
    load: Callable[[], Image.Image]

    @classmethod
    def of(cls, name: str, image: Image.Image) -> Source:
        """A source for an image already in memory."""
        return cls(name, lambda: image.convert("RGB"))

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> Source:
        """A source for an image file's bytes, read with the safe reader when its turn comes."""
        return cls(name, lambda: read_image(data, name=name))


def _from_zip(data: bytes | Path, label: str) -> tuple[list[Source], list[Skipped]]:
    try:
        contents = read_zip(data, name=label)
    except ArchiveError as exc:
        return [], [Skipped(label, str(exc))]
    sources = [Source.from_bytes(f"{label}/{n}", d) for n, d in contents.images]
    return sources, [Skipped(f"{label}/{n}", why) for n, why in contents.skipped]


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(4)
    except OSError:
        return b""


def _folder_files(folder: Path) -> tuple[list[tuple[Path, str]], list[Skipped]]:
    """A folder's image files and archives (recursively, sorted), each with its name in the
    report (relative to the folder's parent), and its other files as skipped."""
    inside = sorted(p for p in folder.rglob("*") if p.is_file())
    if not inside:
        raise ValueError(f"{folder} is an empty folder: no images to report on")
    named = [(p, str(Path(folder.name) / p.relative_to(folder))) for p in inside]
    files = [(p, n) for p, n in named if is_image_file(p) or is_zip(_head(p))]
    skipped = [Skipped(n, "not an image file (by its extension)")
               for p, n in named if not (is_image_file(p) or is_zip(_head(p)))]  # fmt: skip
    return files, skipped


def sources_from_paths(paths: Iterable[str | Path]) -> tuple[list[Source], list[Skipped]]:
    """Image files, folders (recursively, sorted; files without an image extension are
    skipped) and ZIP archives → the images to report on and what was skipped. A file is named
    as given, a folder's file relative to the folder's parent, an archive's member after it.

    Raises:
        ValueError: a path that does not exist, or a folder without any file.
    """
    sources: list[Source] = []
    skipped: list[Skipped] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files, ignored = _folder_files(path)
            skipped += ignored
        elif path.is_file():
            files = [(path, str(given))]
        else:
            raise ValueError(f"{path} does not exist")
        for file, name in files:
            if is_zip(_head(file)):
                more, refused = _from_zip(file, name)
                sources += more
                skipped += refused
            else:
                sources.append(Source(name, lambda f=file, n=name: read_image(f, name=n)))
    return sources, skipped


def sources_from_uploads(files: Iterable[tuple[str, bytes]]) -> tuple[list[Source], list[Skipped]]:
    """Uploaded files (name, bytes) → the images to report on (a ZIP's images expanded) and
    what was skipped."""
    sources: list[Source] = []
    skipped: list[Skipped] = []
    for name, data in files:
        if is_zip(data[:4]):
            more, left = _from_zip(data, name)
            sources += more
            skipped += left
        else:
            sources.append(Source.from_bytes(name, data))
    return sources, skipped


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class ModelInfo:
    """What the report's header says about the model (from its card)."""

    name: str
    checkpoint: str
    digest: str
    dataset: str
    accuracy: str
    classes: int


def card_accuracy(card) -> str:
    """The card's measured top-1 accuracy (perception and attention branch) or mean attribute
    accuracy on its test split, in words; ``"not evaluated"`` when it records none."""
    test = f"{card.dataset}/{(card.splits or {}).get('test', '')}"
    records = [(test, card.metrics.get(test)), *card.metrics.items()]
    for where, record in records:
        if not isinstance(record, dict):
            continue
        n = f", n = {record['n']:,}" if isinstance(record.get("n"), int) else ""
        if isinstance(record.get("per_top1_err"), (int, float)):
            text = f"{100 - record['per_top1_err']:.2f} % top-1"
            if isinstance(record.get("att_top1_err"), (int, float)):
                text += f" (attention branch {100 - record['att_top1_err']:.2f} %)"
            return f"{text} on {where}{n}"
        if isinstance(record.get("per_mean_acc"), (int, float)):
            return f"{record['per_mean_acc']:.2f} % mean attribute accuracy on {where}{n}"
    return "not evaluated"


def model_info(model: nn.Module, checkpoint: str | Path | bytes | None = None) -> ModelInfo:
    """The header's model card: ``checkpoint`` (a path or the file's bytes) gives the digest."""
    from abn.checkpoint import CheckpointError, stored_digest

    card = getattr(model, "card", None)
    digest = ""
    if checkpoint is not None:
        try:
            digest = stored_digest(checkpoint)
        except (CheckpointError, OSError):
            digest = ""
    where = "" if checkpoint is None or isinstance(checkpoint, bytes) else Path(checkpoint).name
    if card is None:
        spec = model.spec
        return ModelInfo(f"{spec.name} {spec.variant}", where, digest, "—", "not evaluated",
                         spec.num_classes)  # fmt: skip
    test = (card.splits or {}).get("test", "")
    dataset = f"{card.dataset_name} (test split: {test})" if test else card.dataset_name or "—"
    return ModelInfo(card.display_name, where, digest, dataset, card_accuracy(card),
                     card.num_classes)  # fmt: skip


def find_calibration(model: nn.Module, checkpoint: str | Path | None) -> tuple[object | None, str]:
    """The model's "unlike the training data" calibration (:mod:`abn.familiarity`) and a note:
    ``(None, "no calibration (why)")`` when there is none to use."""
    if checkpoint is None or isinstance(checkpoint, bytes):
        return None, f"{NO_CALIBRATION} (the model was not read from a checkpoint file)"
    if importlib.util.find_spec("abn.familiarity") is None:
        return None, f"{NO_CALIBRATION} (this install has no abn.familiarity)"
    from abn import familiarity

    try:
        calibration = familiarity.load_calibration(Path(checkpoint), model)
    except (ValueError, OSError) as exc:
        return None, f"{NO_CALIBRATION} ({exc})"
    if calibration is None:
        where = familiarity.calibration_path(Path(checkpoint)).name
        return None, f"{NO_CALIBRATION} (no {where} beside the checkpoint)"
    return calibration, "calibrated on the model's own test images"


# ----------------------------------------------------------------------------- results


@dataclass
class MapView:
    """One method's map of one image, ready for the page."""

    overlay: bytes  # JPEG: the map over what the model saw
    raw: bytes  # PNG at the map's own resolution
    raw_shape: tuple[int, int]
    raw_range: tuple[float, float]
    target: str  # the class (attribute) it explains


@dataclass
class ImageResult:
    """Everything the report shows about one image."""

    name: str
    fit: str
    view: bytes  # JPEG of what the model saw
    predicted: str
    probability: float
    perception: list[tuple[str, float]]
    attention: list[tuple[str, float]] | None
    familiarity: str
    unlike: bool | None
    maps: dict[str, MapView] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class Report:
    """A finished batch report; :meth:`to_html` writes it as one self-contained page."""

    model: ModelInfo
    methods: list[str]
    created: str
    command: str
    calibration: str
    images: list[ImageResult]
    skipped: list[Skipped]
    scored: bool
    multitask: bool = False

    def summary(self) -> pd.DataFrame:
        """One row per image: prediction, its probability, the familiarity signal and (when
        scored) each method's deletion and insertion AUC."""
        rows = []
        for r in self.images:
            row: dict[str, object] = {"image": r.name, "predicted": r.predicted,
                                      "probability": r.probability}  # fmt: skip
            if r.attention:
                row["attention branch predicts"] = r.attention[0][0]
            row["unlike the training data"] = (
                NO_CALIBRATION if r.unlike is None else ("yes" if r.unlike else "no")
            )
            for method, values in r.scores.items():
                for metric in ("deletion_auc", "insertion_auc"):
                    row[f"{method} {metric}"] = values.get(metric)
            rows.append(row)
        return pd.DataFrame(rows)

    def score_table(self) -> pd.DataFrame:
        """Per method: the mean of each score over the images and its 95% t-interval's half
        width (:func:`abn.metrics.scorecard.summarize`); empty when not scored."""
        from abn.metrics.scorecard import summarize

        rows = [{"method": m, **v} for r in self.images for m, v in r.scores.items()]
        return summarize(pd.DataFrame(rows)) if rows else pd.DataFrame()

    def to_html(self) -> str:
        """The report as one HTML page (UTF-8 text, no external resources)."""
        from abn.report_html import render

        return render(self)


def _topk(probs: torch.Tensor, names: Sequence[str], k: int) -> list[tuple[str, float]]:
    values, indices = probs.topk(min(k, probs.numel()))
    return [(names[i], float(v)) for v, i in zip(values.tolist(), indices.tolist(), strict=True)]


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=88)
    return buf.getvalue()


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _display(image: Image.Image) -> Image.Image:
    scale = DISPLAY / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


def _raw_view(
    raw: torch.Tensor, colormap: str
) -> tuple[bytes, tuple[int, int], tuple[float, float]]:
    """The raw map in ``colormap`` at its own resolution: values in [0, 1] as they are, other
    ranges scaled to their own minimum and maximum."""
    a = np.nan_to_num(to_numpy_map(raw))
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 1:
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return _png(Image.fromarray(colorize(a, colormap), "RGB")), a.shape, (lo, hi)


def _predictions(model: nn.Module, x: torch.Tensor, names: Sequence[str], k: int):
    """(predicted name, its probability, perception top-k, attention top-k or None)."""
    from abn.models import attribute_probabilities

    with torch.inference_mode():
        out = model(x)
    if model.is_multitask:
        probs = attribute_probabilities(out)[0].float().cpu()
        top = _topk(probs, names, k)
        return top[0][0], top[0][1], top, None
    probs = out.logits.softmax(1)[0].float().cpu()
    att = out.att_logits.softmax(1)[0].float().cpu() if out.att_logits is not None else None
    top = _topk(probs, names, k)
    return top[0][0], top[0][1], top, _topk(att, names, k) if att is not None else None


def score_maps(
    model: nn.Module, x: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor, steps: int = 16
) -> list[dict[str, float]]:
    """Per image of ``x``: the faithfulness scores of ``maps`` (B×H×W at the input's size) for
    ``targets``, as the scorecard computes them (Average Drop and Increase in %)."""
    from abn.metrics import confidence_change, perturbation_curves, road

    maps = maps.to(x.device)
    cols = {f"{mode}_auc": perturbation_curves(model, x, maps, targets, mode, steps).auc
            for mode in ("deletion", "insertion")}  # fmt: skip
    conf = confidence_change(model, x, maps, targets)
    cols["avg_drop"], cols["increase"] = conf["drop"] * 100, conf["increase"] * 100
    cols.update(road(model, x, maps, targets))
    return [{k: float(v[i]) for k, v in cols.items()} for i in range(x.shape[0])]


def _familiarity(calibration, model: nn.Module, x: torch.Tensor) -> tuple[str, bool | None]:
    if calibration is None:
        return NO_CALIBRATION, None
    try:
        found = calibration.assess(model, x)[0]
    except ValueError as exc:  # a calibration that does not fit this model after all
        return f"{NO_CALIBRATION} ({exc})", None
    return found.describe(), bool(found.unlike)


def _one_image(
    model: nn.Module,
    image: Image.Image,
    name: str,
    methods: list[str],
    options: dict,
) -> ImageResult:
    card = model.card
    names = card.class_names or [str(i) for i in range(card.num_classes)]
    x = preprocess_for(model, image).to(next(model.parameters()).device)
    predicted, prob, perception, attention = _predictions(model, x, names, options["topk"])
    results = explain_many(model, x, methods)
    seen = _display(image.crop(seen_box(image.size, card)))
    signal, unlike = _familiarity(options["calibration"], model, x)
    result = ImageResult(name, fit_note(image.size, card), _jpeg(seen), predicted, prob,
                         perception, attention, signal, unlike)  # fmt: skip
    for method, ex in results.items():
        raw_png, shape, value_range = _raw_view(ex.raw[0], options["colormap"])
        over = overlay(seen, ex.maps[0], colormap=options["colormap"], alpha=options["alpha"])
        target = ex.name_of(int(ex.targets[0]))
        result.maps[method] = MapView(_jpeg(over), raw_png, shape, value_range, target)
        if options["scores"]:
            result.scores[method] = score_maps(model, x, ex.maps, ex.targets, options["steps"])[0]
    return result


def build_report(
    model: nn.Module,
    images: Sequence[Source | tuple[str, Image.Image]],
    methods: str | Sequence[str],
    *,
    skipped: Sequence[Skipped] = (),
    scores: bool = False,
    steps: int = 16,
    topk: int = 5,
    checkpoint: str | Path | bytes | None = None,
    command: str = "",
    colormap: str = "jet",
    alpha: float = 0.5,
    progress: Progress | None = None,
) -> Report:
    """Explain every image with every method and gather the report.

    Args:
        model: an eval-mode model with a card (:func:`abn.load`).
        images: :class:`Source` objects or (name, PIL image) pairs; a source that cannot be
            read is listed as skipped with the reason.
        methods: method names (any case or alias, or comma-separated text) able to explain
            ``model``; a ``ValueError`` names those that cannot.
        skipped: inputs already refused (e.g. by :func:`sources_from_paths`), listed as such.
        scores: also compute each map's faithfulness scores (:data:`SCORE_METRICS`; about
            ``2 × steps + 4`` forward passes per image and method, and ROAD's imputation).
        steps: deletion/insertion steps.
        topk: predictions listed per branch.
        checkpoint: the model's file (path or bytes): its digest for the header, and beside a
            path, the "unlike the training data" calibration.
        command: the command line (or page) that made the report, shown in its header.
        progress: called after each image as ``progress(done, total, name)``.
    """
    if getattr(model, "card", None) is None:
        raise ValueError("the report needs a model with a card (load it with abn.load)")
    names = method_names(methods, model)
    if scores and model.is_multitask:
        raise ValueError("faithfulness scores need a single-label model, not a multi-task one")
    calibration, note = find_calibration(model, checkpoint)
    options = {"topk": topk, "scores": scores, "steps": steps, "colormap": colormap,
               "alpha": alpha, "calibration": calibration}  # fmt: skip
    sources = [s if isinstance(s, Source) else Source.of(*s) for s in images]
    done: list[ImageResult] = []
    refused = list(skipped)
    for i, source in enumerate(sources):
        try:
            image = source.load()
        except ImageReadError as exc:
            refused.append(Skipped(source.name, _reason(exc, source.name)))
        else:
            done.append(_one_image(model, image, source.name, names, options))
        if progress is not None:
            progress(i + 1, len(sources), source.name)
    return Report(
        model=model_info(model, checkpoint),
        methods=names,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        command=command,
        calibration=note,
        images=done,
        skipped=refused,
        scored=scores,
        multitask=bool(model.is_multitask),
    )


def _reason(exc: Exception, name: str) -> str:
    """The reader's message without the file name it starts with (the report names it)."""
    text = str(exc)
    return text[len(name) + 2 :] if text.startswith(f"{name}: ") else text
