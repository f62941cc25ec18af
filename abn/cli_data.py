"""``python -m abn data ...``: the data sub-commands (argparse only; wired up by ``abn/cli.py``).

    python -m abn data prepare [--packs DIR] [--root DIR] [--only a,b] [--download] [--no-verify]
    python -m abn data info NAME [--root DIR] [--json]

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
    sub = data.add_subparsers(dest="data_command", metavar="{prepare,info}")
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
    return 0
