"""``python -m abn familiarity ...``: calibrate the "unlike the training data" signal.

    python -m abn familiarity calibrate --model M [--data-root data] [--n N] [--n-test N]
                                        [--score mahalanobis|energy]
    python -m abn familiarity show --model M

``calibrate`` fits :mod:`abn.familiarity`'s statistics on ``N`` training images of the model's
dataset, scores ``--n-test`` of its test images, and writes ``<stem>.familiarity.npz`` beside
the checkpoint. Errors print one line and exit with code 1, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_familiarity_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``familiarity`` (with ``calibrate`` and ``show``) to an ``add_subparsers()`` object."""
    from abn.cli import COMMANDS
    from abn.familiarity import DEFAULT_SCORE, SCORES

    fam = subparsers.add_parser("familiarity", help=COMMANDS["familiarity"].help)
    sub = fam.add_subparsers(dest="familiarity_command", metavar="{calibrate,show}")
    sub.required = True
    c = sub.add_parser("calibrate", help="fit and save a checkpoint's calibration")
    c.add_argument("--model", required=True, metavar="M", help="a .safetensors checkpoint")
    c.add_argument(
        "--data-root", metavar="DIR", help="data root (default: $ABN_DATA_ROOT or ./data)"
    )
    c.add_argument("--n", type=int, default=2000, metavar="N", help="training images to fit on")
    c.add_argument("--n-test", type=int, default=1000, metavar="N", help="test images to rank by")
    c.add_argument("--score", choices=SCORES, default=DEFAULT_SCORE, help="the score reported")
    c.add_argument("--batch-size", type=int, default=100, metavar="B")
    c.add_argument("--quiet", action="store_true", help="no progress")
    c.set_defaults(func=run_calibrate)
    s = sub.add_parser("show", help="describe a checkpoint's calibration")
    s.add_argument("--model", required=True, metavar="M", help="a .safetensors checkpoint")
    s.set_defaults(func=run_show)
    return fam


def _progress(quiet: bool):
    if quiet:
        return None
    return lambda f, msg: print(f"\r{100 * f:5.1f}% {msg}   ", end="", file=sys.stderr, flush=True)


def run_calibrate(args: argparse.Namespace) -> int:
    from abn.checkpoint import CheckpointError
    from abn.data import DataError
    from abn.familiarity import CalibrationError, calibrate_checkpoint

    if args.n < 2 or args.n_test < 1:
        print("error: --n needs at least 2 images and --n-test at least 1", file=sys.stderr)
        return 2
    try:
        cal, path = calibrate_checkpoint(
            args.model,
            args.data_root,
            n_fit=args.n,
            n_test=args.n_test,
            batch_size=args.batch_size,
            score=args.score,
            progress=_progress(args.quiet),
        )
    except (CheckpointError, DataError, CalibrationError, ValueError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(file=sys.stderr)
    print(f"wrote {path} ({cal.score}; {cal.info})")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from abn.checkpoint import CheckpointError, load
    from abn.familiarity import CalibrationError, calibration_path, load_calibration

    try:
        cal = load_calibration(args.model, load(args.model))
    except (CheckpointError, CalibrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if cal is None:
        print(f"no calibration for this model ({calibration_path(args.model).name} not found)")
        return 1
    cut = cal.test_scores[cal.score][min(cal.n_test - 1, int(cal.n_test * cal.threshold / 100))]
    print(f"{cal.model}: {cal.score} score, unlike above the {cal.threshold:g}th percentile")
    print(f"  (score > {cut:.4g}); {cal.info}")
    return 0
