"""Where the dashboard looks for models and data (overridable through the environment)."""

from __future__ import annotations

import os
from pathlib import Path

from abn.card import ModelCard
from abn.data import DataError, dataset_location, default_data_root, is_tree
from abn.data import dataset_info as dataset_info  # for the pages
from abn.evaluate import card_data_root

ASSETS_ENV = "ABN_ASSETS_DIR"
EDITS_ENV = "ABN_EDITS_DIR"
USER_MODELS_ENV = "ABN_USER_MODELS_DIR"
REPO_ROOT = Path(__file__).resolve().parents[1]


def assets_dir() -> Path:
    """``$ABN_ASSETS_DIR`` if set, else ``<repo>/assets``: the shipped checkpoints."""
    env = os.environ.get(ASSETS_ENV)
    return Path(env).expanduser() if env else REPO_ROOT / "assets"


def _env_dir(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


def edits_dir() -> Path:
    """``$ABN_EDITS_DIR`` if set, else ``<repo>/edits``: the attention edit sets (git-ignored)."""
    return _env_dir(EDITS_ENV, REPO_ROOT / "edits")


def user_models_dir() -> Path:
    """``$ABN_USER_MODELS_DIR`` if set, else ``<repo>/runs/user``: models fine-tuned from edits in
    the dashboard, one run folder each (git-ignored); every page's picker lists them."""
    return _env_dir(USER_MODELS_ENV, REPO_ROOT / "runs" / "user")


def data_root() -> Path:
    """The data root (``$ABN_DATA_ROOT`` or ``./data``)."""
    return default_data_root()


def card_root(card: ModelCard) -> Path | None:
    """Where ``card``'s dataset is read from: :func:`data_root`, or for a model of the user's
    own tree (``imagefolder``) the tree its card records (``None`` if it records none)."""
    if card.dataset and is_tree(card.dataset):
        tree = card_data_root(card)
        return Path(tree) if tree else None
    return data_root()


def dataset_dir(card: ModelCard) -> Path | None:
    """The folder ``card``'s dataset is read from, if it is there (``None``: the card names no
    dataset, or one this install does not know, or it is not on disk)."""
    root = card_root(card) if card.dataset else None
    if root is None:
        return None
    try:
        where = dataset_location(card.dataset, root)
    except DataError:
        return None
    return where if where.is_dir() else None
