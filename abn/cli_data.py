"""``python -m abn data ...``: the data sub-commands (argparse only; wired up by ``abn/cli.py``).

    python -m abn data prepare [--packs DIR] [--root DIR] [--only a,b] [--download] [--no-verify]
    python -m abn data info NAME [--root DIR] [--json]
    python -m abn data check NAME [--root DIR] [--split S] [--workers N]

``add_data_parser(subparsers)`` registers them; each sets ``func(args) -> int``. Errors print one
line on stderr and exit with code 2 (``SystemExit(2)``), without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any


def add_data_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``data`` (with ``prepare`` and ``info``) to an ``add_subparsers()`` object."""
    from abn.cli import COMMANDS

    data = subparsers.add_parser("data", help=COMMANDS["data"].help)
    sub = data.add_subparsers(dest="data_command", metavar="{prepare,info,check}")
    sub.required = True

    p = sub.add_parser("prepare", help="extract the offline packs into the data root")
    p.add_argument("--packs", metavar="DIR", help="folder with the packs (default: ../shared/data)")
    p.add_argument("--root", metavar="DIR", help="data root (default: $ABN_DATA_ROOT or ./data)")
    p.add_argument("--only", metavar="A,B", help="comma-separated datasets or packs")
    p.add_argument("--download", action="store_true", help="also allow torchvision downloads")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="skip SHA256 checks")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_prepare)

    i = sub.add_parser("info", help="describe a dataset")
    i.add_argument("name", help="dataset name (see `abn data info --list`)", nargs="?")
    i.add_argument("--root", metavar="DIR", help="data root (imagefolder: the tree)")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.add_argument("--list", action="store_true", help="list dataset names")
    i.set_defaults(func=run_info)

    c = sub.add_parser(
        "check",
        help="read every image of a dataset and list each one that cannot be read",
        description="Decode every image of every split (or --split) and list each unreadable "
        "one, and each split that cannot be built, so a long training run never stops on them. "
        "Exit code 1 when anything is wrong.",
    )
    c.add_argument("name", help="dataset name (imagefolder: your own tree)")
    c.add_argument("--root", metavar="DIR", help="data root (imagefolder: the tree)")
    c.add_argument("--split", action="append", metavar="S", help="only this split (repeatable)")
    c.add_argument("--workers", type=int, default=4, metavar="N", help="decoding threads")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.set_defaults(func=run_check)
    return data


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def run_prepare(args: argparse.Namespace) -> int:
    """Handler of ``data prepare``."""
    from abn.data.errors import DataError
    from abn.data.prepare import prepare

    only = [n for n in args.only.split(",") if n.strip()] if args.only else None
    try:
        report = prepare(
            packs_dir=args.packs,
            root=args.root,
            only=only,
            verify=args.verify,
            progress=not args.quiet,
            download=args.download,
        )
    except (DataError, OSError, RuntimeError) as exc:
        _fail(str(exc))
    for name, what in report.items():
        print(f"{name}: {what}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Handler of ``data info``."""
    from abn.data.errors import DataError
    from abn.data.registry import dataset_info, dataset_location, list_datasets

    if args.list or not args.name:
        print("\n".join(list_datasets()))
        return 0
    try:
        info = dataset_info(args.name, args.root)
    except DataError as exc:
        _fail(str(exc))
    try:
        location: Any = dataset_location(args.name, args.root)
    except DataError:
        location = None
    if args.json:
        print(json.dumps({**asdict(info), "location": str(location) if location else None}))
        return 0
    for key, value in asdict(info).items():
        if key == "class_names" and len(value) > 12:
            value = f"{', '.join(value[:12])}, … ({len(value)})"
        elif isinstance(value, tuple):
            value = ", ".join(map(str, value))
        print(f"{key:12} {value}")
    if location is not None:
        print(f"{'location':12} {location} ({'present' if location.exists() else 'missing'})")
    elif info.num_classes is None:
        print("(pass --root with the tree, e.g. --root mytree, to read its splits and classes)")
    if location is not None and location.exists():
        root = f" --root {args.root}" if args.root else ""
        print(f"(`abn data check {args.name}{root}` reads every image and counts them per split)")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Handler of ``data check``: one line per split, one per unreadable image; exit 1 if any."""
    from pathlib import Path

    from abn.data.check import check_split
    from abn.data.errors import DataError
    from abn.data.registry import EVAL_SPLIT_NAMES, dataset_info, is_tree, tree_root_problem

    try:
        info = dataset_info(args.name, args.root)
        tree = is_tree(args.name)
    except DataError as exc:
        _fail(str(exc))
    if args.workers < 1:
        _fail(f"--workers must be >= 1, not {args.workers}")
    wrong_root = tree_root_problem(Path(args.root)) if tree and args.root else None
    if wrong_root:
        print(wrong_root)
        return 1
    problems = 0
    if tree and not args.split and not set(EVAL_SPLIT_NAMES) & set(info.splits):
        print(f"no evaluation split ({', '.join(EVAL_SPLIT_NAMES)}): training needs one, or "
              "--set test_split=NAME")  # fmt: skip
        problems += 1
    for split in args.split or info.splits:
        report = check_split(args.name, split, args.root, args.workers, progress=not args.quiet)
        print(report.summary())
        for line in report.problems:
            print(f"  {line}")
        problems += len(report.problems)
    print("every image reads" if not problems else f"{problems} problem(s) found")
    return 1 if problems else 0
