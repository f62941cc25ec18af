"""``python -m abn explain``: overlays (PNG), raw maps (NPY) and a CSV of predictions.

``abn/cli.py`` calls :func:`add_explain_parser`; ``python -m abn.explain.cli`` runs it alone.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from PIL import Image

from abn.data.images import ImageReadError, is_image_file, read_image
from abn.data.transforms import seen_box

from .base import explain_many, get_method, list_methods, method_names
from .core import TargetSpec
from .preprocess import preprocess_for
from .render import COLORMAPS, overlay, save_map_npy

CSV_FIELDS = (
    "file",
    "method",
    "predicted",
    "predicted_name",
    "probability",
    "target",
    "target_name",
    "target_probability",
    "score",
    "seconds",
)


def add_explain_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``explain`` sub-command (``args.func(args)`` runs it, returns exit code)."""
    from abn.cli import COMMANDS

    p = subparsers.add_parser(
        "explain",
        help=COMMANDS["explain"].help,
        description="Write overlays (PNG), raw maps (NPY) and predictions.csv for images.",
    )
    p.add_argument("--model", required=True, help="checkpoint (.safetensors) from abn.save")
    p.add_argument("--images", required=True, nargs="+", help="image files and/or folders")
    p.add_argument(
        "--methods",
        default="abn",
        help=f"comma-separated methods, any case ({', '.join(list_methods())})",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--target", default=None, help="class index or name (default: the predicted class)"
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--target-layer", default=None, help="Grad-CAM layer (dotted name)")
    p.add_argument("--colormap", default="jet", choices=COLORMAPS)
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    p.set_defaults(func=run_explain)
    return p


def parse_target(text: str | None) -> TargetSpec:
    """``None``/``pred`` → predicted class; digits → index; anything else → a name."""
    if text is None or text.lower() in ("", "pred", "predicted"):
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def collect_images(sources: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """Files as given, folders expanded (recursively, sorted) to their image files.

    Returns ``(files, skipped)``: ``skipped`` are the files inside folders that have no image
    extension (named files are always tried, whatever their extension).
    """
    files: list[Path] = []
    skipped: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file())
            files.extend(p for p in inside if is_image_file(p))
            skipped.extend(p for p in inside if not is_image_file(p))
        else:
            files.append(path)
    return files, skipped


class UsageError(Exception):
    """A bad argument, file or model: the message is printed and the command exits with 2."""


def _load_model(path: str, device: str):
    from abn.checkpoint import load

    try:
        return load(path, map_location=device)
    except (ValueError, OSError, RuntimeError) as exc:
        raise UsageError(f"cannot load model: {exc}") from None


def resolve_methods(text: str, model) -> list[str]:
    """``"GradCAM, rise"`` → registered names (any case or alias), each able to explain
    ``model``; a :class:`UsageError` naming the others."""
    try:
        return method_names(text, model)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _image_files(sources: Sequence[str]) -> list[Path]:
    files, skipped = collect_images(sources)
    if skipped:
        names = ", ".join(p.name for p in skipped[:5]) + (", …" if len(skipped) > 5 else "")
        print(
            f"skipped {len(skipped)} file(s) without an image extension: {names}", file=sys.stderr
        )
    if not files:
        raise UsageError(f"no image files in {' '.join(sources)}")
    return files


def _output_folder(path: str) -> Path:
    out = Path(path)
    try:
        for sub in ("overlays", "maps"):
            (out / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write to {out}: {exc.strerror or exc}") from None
    return out


def _read_batch(batch: list[Path]) -> tuple[list[tuple[Path, Image.Image]], int]:
    """The readable images of ``batch`` and how many could not be read (each is reported)."""
    good, failures = [], 0
    for path in batch:
        try:
            good.append((path, read_image(path)))
        except (ImageReadError, OSError) as exc:
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
    return good, failures


def _explain_files(
    model, files: list[Path], methods: list[str], out: Path, args
) -> tuple[list[dict], int]:
    """Explain ``files`` batch by batch; returns ``(csv rows, unreadable count)``."""
    target = parse_target(args.target)
    rows: list[dict] = []
    stems: set[str] = set()
    failures = 0
    batches = list(_batches(files, max(1, args.batch_size)))
    report = ProgressPrinter(len(batches)) if _any_slow(methods) else None
    for index, batch in enumerate(batches):
        good, failed = _read_batch(batch)
        failures += failed
        if not good:
            continue
        x = preprocess_for(model, [img for _, img in good])
        progress = report.for_batch(index) if report else None
        try:
            results = explain_many(
                model, x, methods, target, target_layer=args.target_layer, progress=progress
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(str(exc)) from None
        for i, (path, img) in enumerate(good):
            stem = _unique(path.stem, stems)
            seen = img.crop(seen_box(img.size, model.card))
            for method, res in results.items():
                rows.append(_write(out, stem, path, seen, method, res, i, args))
    return rows, failures


def _any_slow(methods: Sequence[str]) -> bool:
    return any(get_method(m).slow for m in methods)


class ProgressPrinter:
    """Progress of a run of ``batches`` image batches on stderr: a line whenever another 5%
    is done (``progress`` callbacks of :func:`~abn.explain.explain_many`, one per batch)."""

    def __init__(self, batches: int, every: float = 0.05) -> None:
        self.batches = max(batches, 1)
        self.every = every
        self.shown = -1.0

    def for_batch(self, index: int):
        def progress(fraction: float, message: str) -> None:
            overall = (index + fraction) / self.batches
            if overall >= self.shown + self.every or (overall >= 1.0 > self.shown):
                self.shown = overall
                where = f", batch {index + 1}/{self.batches}" if self.batches > 1 else ""
                print(f"{overall:4.0%} {message}{where}", file=sys.stderr, flush=True)

        return progress


def _print_estimate(model, methods: list[str], images: int, layer: str | None) -> None:
    """Before a slow run: its expected duration from a measured forward pass."""
    from .cost import about, estimate_seconds

    if not _any_slow(methods):
        return
    try:
        seconds = estimate_seconds(model, methods, images, target_layer=layer)
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    print(
        f"{images} image(s) with {', '.join(methods)}: {about(seconds)} on this machine "
        "(from a measured forward pass)",
        file=sys.stderr,
        flush=True,
    )


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def run_explain(args: argparse.Namespace) -> int:
    """Run the sub-command; 0 when every image was explained, 1 if any failed, 2 on bad usage."""
    try:
        if not 0.0 <= args.alpha <= 1.0:
            raise UsageError(f"--alpha must be in [0, 1], not {args.alpha}")
        model = _load_model(args.model, args.device)
        methods = resolve_methods(args.methods, model)
        files = _image_files(args.images)
        out = _output_folder(args.out)
        _print_estimate(model, methods, len(files), args.target_layer)
        rows, failures = _explain_files(model, files, methods, out, args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _write_csv(out / "predictions.csv", rows)
    done = len({r["file"] for r in rows})
    print(f"explained {done} image(s) with {', '.join(methods)} → {out}", file=sys.stderr)
    if failures:
        print(f"{failures} image(s) could not be read", file=sys.stderr)
    return 1 if failures else 0


def _write(out: Path, stem: str, path: Path, seen: Image.Image, method, res, i, args) -> dict:
    """The overlay (on ``seen``, the part of the image the model saw), raw map and CSV row."""
    safe = method.replace("+", "p")
    overlay(seen, res.maps[i], colormap=args.colormap, alpha=args.alpha).save(
        out / "overlays" / f"{stem}_{safe}.png"
    )
    save_map_npy(res.raw[i], out / "maps" / f"{stem}_{safe}.npy")
    pred, tgt = int(res.predicted[i]), int(res.targets[i])
    return {
        "file": str(path),
        "method": method,
        "predicted": pred,
        "predicted_name": res.name_of(pred),
        "probability": f"{float(res.probabilities[i, pred]):.6f}",
        "target": tgt,
        "target_name": res.name_of(tgt),
        "target_probability": f"{float(res.probabilities[i, tgt]):.6f}",
        "score": f"{float(res.scores[i]):.6f}",
        "seconds": f"{res.seconds / len(res):.6f}",
    }


def _unique(stem: str, seen: set[str]) -> str:
    name, n = stem, 1
    while name in seen:
        n += 1
        name = f"{stem}-{n}"
    seen.add(name)
    return name


def _batches(items: list[Path], size: int) -> Iterator[list[Path]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m abn.explain.cli explain ...``."""
    parser = argparse.ArgumentParser(prog="abn")
    add_explain_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
