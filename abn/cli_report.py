"""``python -m abn report``: a folder, ZIP or list of images → one self-contained HTML report.

    python -m abn report IMAGES_OR_FOLDER_OR_ZIP... --model M [--methods abn,gradcam]
                         [--scores] [--out report.html]

``add_report_parser(subparsers)`` registers it (wired up by ``abn/cli.py``); the work is
:func:`abn.report.build_report`. Exit codes: 0 the report was written, 1 it was written but no
image could be read (each is listed in it with the reason), 2 bad usage (no model, unknown
method, a path that does not exist, an empty folder, an unwritable ``--out``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = (
    "Explain every image of the given files, folders (recursively) and ZIP archives with one "
    "model and write one self-contained HTML report (pictures inlined, no external files; it "
    "opens offline): per image, each method's map over the image and the raw map, the top-k "
    "predictions of both branches (ABN) or of the model, the 'unlike the training data' signal "
    "(when a calibration lies beside the checkpoint) and, with --scores, the faithfulness "
    "scores, summarised over the images at the top. Unreadable images and refused archive "
    "members are listed in the report with the reason. ZIP archives are read in memory, never "
    "extracted: members with unsafe paths are refused, and an archive expanding beyond "
    "$ABN_MAX_ARCHIVE_BYTES (default 512 MiB) or holding more than $ABN_MAX_ARCHIVE_MEMBERS "
    "(default 5000) members is refused whole; each image must also stay under "
    "$ABN_MAX_IMAGE_PIXELS. Exit code 0: written; 1: written, but no image could be read; "
    "2: bad usage."
)


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``report`` sub-command (``args.func(args)`` runs it)."""
    from abn.cli import COMMANDS
    from abn.explain import list_methods
    from abn.explain.render import COLORMAPS

    p = subparsers.add_parser("report", help=COMMANDS["report"].help, description=DESCRIPTION)
    p.add_argument("images", nargs="+", metavar="IMAGES_OR_FOLDER_OR_ZIP",
                   help="image files, folders and/or ZIP archives")  # fmt: skip
    p.add_argument("--model", required=True, metavar="CKPT", help="a .safetensors checkpoint")
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated methods, any case (default: the model's own map: abn for ABN, "
        f"cam for CAM, gradcam otherwise); one of {', '.join(list_methods())}",
    )
    p.add_argument(
        "--scores",
        action="store_true",
        help="also score each map (deletion/insertion AUC, Average Drop, Increase, ROAD), "
        "per image and summarised; about 40 forward passes per image and method",
    )
    p.add_argument("--steps", type=int, default=16, help="deletion/insertion steps (--scores)")
    p.add_argument("--topk", type=int, default=5, help="predictions listed per branch")
    p.add_argument("--out", default="report.html", help="the HTML file (default: report.html)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--colormap", default="jet", choices=COLORMAPS)
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity in [0, 1]")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_report)
    return p


def default_methods(model) -> str:
    """The model's own map: ABN attention, CAM for CAM models, Grad-CAM otherwise."""
    if model.is_abn:
        return "abn"
    return "cam" if model.spec.variant == "cam" else "gradcam"


def _usage(message: str) -> int:
    print(f"abn report: error: {message}", file=sys.stderr)
    return 2


def run_report(args: argparse.Namespace) -> int:
    """Run the sub-command; see the module's exit codes."""
    from abn.checkpoint import load
    from abn.explain import method_names
    from abn.report import build_report, sources_from_paths

    if not 0.0 <= args.alpha <= 1.0:
        return _usage(f"--alpha must be in [0, 1], not {args.alpha}")
    if args.steps < 1 or args.topk < 1:
        return _usage("--steps and --topk must be at least 1")
    try:
        sources, skipped = sources_from_paths(args.images)
    except ValueError as exc:
        return _usage(str(exc))
    if not sources and all("by its extension" in s.reason for s in skipped):
        return _usage(f"no image files in {' '.join(args.images)}")
    try:
        model = load(args.model, map_location=args.device)
        methods = method_names(args.methods or default_methods(model), model)
    except (ValueError, OSError, RuntimeError) as exc:
        return _usage(str(exc))
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _usage(f"cannot write {out}: {exc.strerror or exc}")
    if out.is_dir() or not os.access(out.parent, os.W_OK):
        return _usage(f"cannot write {out}: a folder, or no permission to write there")
    try:
        report = _build(args, model, methods, sources, skipped, build_report)
    except ValueError as exc:  # e.g. --scores with a multi-task model
        return _usage(str(exc))
    out.write_text(report.to_html(), encoding="utf-8")
    print(f"wrote {out}: {len(report.images)} image(s) explained with {', '.join(methods)}, "
          f"{len(report.skipped)} skipped", file=sys.stderr)  # fmt: skip
    return 0 if report.images else 1


def _build(args, model, methods, sources, skipped, build_report):
    from tqdm import tqdm

    command = shlex.join(["abn", *getattr(args, "argv", sys.argv[1:])])
    with tqdm(total=len(sources), desc="report", unit="image", disable=args.quiet) as bar:
        return build_report(
            model, sources, methods, skipped=skipped, scores=args.scores, steps=args.steps,
            topk=args.topk, checkpoint=args.model, command=command, colormap=args.colormap,
            alpha=args.alpha, progress=lambda done, total, name: bar.update(1),
        )  # fmt: skip
