"""Rewrite checkpoints of format abn-checkpoint/1 in format 2, their tensors bit-identical.

    python scripts/migrate_checkpoints.py assets/*.safetensors
    python scripts/migrate_checkpoints.py assets/x-cam.safetensors --note "Legacy structure: ..."

The card is upgraded as ``abn.read_card`` reads it (every constructor argument from the
version-1 defaults, today's dataset names); ``--note`` is appended to its notes. Files already
in format 2 are left alone. Format-1 files load without this; migrating pins their card.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from abn.checkpoint import CheckpointError, migrate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", type=Path, help="checkpoints to rewrite in place")
    p.add_argument("--note", default="", help="a sentence to append to each card's notes")
    args = p.parse_args(argv)
    failed = 0
    for path in args.paths:
        try:
            done = migrate(path, note=args.note)
        except CheckpointError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: {'migrated to format 2' if done else 'already format 2, unchanged'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
