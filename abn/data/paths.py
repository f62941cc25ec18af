"""Where datasets and offline packs live."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "ABN_DATA_ROOT"
PACKS_DIR_ENV = "ABN_PACKS_DIR"


def repo_root() -> Path:
    """The project checkout: the parent of the ``abn`` package folder."""
    return Path(__file__).resolve().parents[2]


def default_data_root() -> Path:
    """``$ABN_DATA_ROOT`` if set, else ``<cwd>/data``."""
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env).expanduser() if env else Path.cwd() / "data"


def default_packs_dir() -> Path:
    """``$ABN_PACKS_DIR`` if set, else ``<repo root>/../shared/data``."""
    env = os.environ.get(PACKS_DIR_ENV)
    return Path(env).expanduser() if env else repo_root().parent / "shared" / "data"


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """``root`` as a ``Path``, or :func:`default_data_root` when ``None``."""
    return Path(root).expanduser() if root is not None else default_data_root()


def file_stamp(path: Path) -> str:
    """``size:mtime_ns`` of a file (``missing`` when it is gone): changes when it is rewritten."""
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"
