"""Where the dashboard looks for models and data (overridable through the environment)."""

from __future__ import annotations

import os
from pathlib import Path

from abn.data import default_data_root

ASSETS_ENV = "ABN_ASSETS_DIR"
REPO_ROOT = Path(__file__).resolve().parents[1]


def assets_dir() -> Path:
    """``$ABN_ASSETS_DIR`` if set, else ``<repo>/assets``: the shipped checkpoints."""
    env = os.environ.get(ASSETS_ENV)
    return Path(env).expanduser() if env else REPO_ROOT / "assets"


def data_root() -> Path:
    """The data root (``$ABN_DATA_ROOT`` or ``./data``)."""
    return default_data_root()
