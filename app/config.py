"""Where the dashboard looks for models and data (overridable through the environment)."""

from __future__ import annotations

import os
from pathlib import Path

from abn.card import ModelCard
from abn.data import default_data_root
from abn.evaluate import card_data_root

ASSETS_ENV = "ABN_ASSETS_DIR"
REPO_ROOT = Path(__file__).resolve().parents[1]


def assets_dir() -> Path:
    """``$ABN_ASSETS_DIR`` if set, else ``<repo>/assets``: the shipped checkpoints."""
    env = os.environ.get(ASSETS_ENV)
    return Path(env).expanduser() if env else REPO_ROOT / "assets"


def data_root() -> Path:
    """The data root (``$ABN_DATA_ROOT`` or ``./data``)."""
    return default_data_root()


def card_root(card: ModelCard) -> Path:
    """Where ``card``'s dataset is read from: the folder it was trained from when that is here
    (an ``imagefolder`` model's tree), else :func:`data_root`."""
    return Path(card_data_root(card) or data_root())
