"""Shared pytest fixtures for the whole suite.

Add generic fixtures here (documented, session-scoped when expensive); keep area-specific ones in
``tests/<area>/conftest.py``.

The whole run is offline: ``tests/offline.py`` lets sockets reach loopback and nothing else.

Fixtures:
    packs_dir: the offline dataset packs, ``<repo>/../shared/data`` (skips if absent).
    data_root: a data root with every offline pack extracted, ``<repo>/.cache/test-data``
        (made once by ``abn.data.prepare`` and reused across runs; ``$ABN_DATA_ROOT`` is
        ignored). Layout: ``cifar10/``, ``imagenette2-160/``, ``celeba-hq-64/``, ``celeba/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import offline

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKS_DIR = REPO_ROOT.parent / "shared" / "data"
TEST_DATA_ROOT = REPO_ROOT / ".cache" / "test-data"


def pytest_configure(config: pytest.Config) -> None:
    """The whole run is offline: sockets reach loopback only (``tests/offline.py``)."""
    offline.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    offline.uninstall()


@pytest.fixture(scope="session")
def packs_dir() -> Path:
    """The offline packs folder (``../shared/data``); skips the test if it is absent."""
    if not PACKS_DIR.is_dir():
        pytest.skip(f"offline dataset packs not found at {PACKS_DIR} (needs ../shared/data)")
    return PACKS_DIR


@pytest.fixture(scope="session")
def data_root(packs_dir: Path) -> Path:
    """A data root holding every extracted pack (prepared once, then reused)."""
    from abn.data.prepare import prepare

    prepare(packs_dir=packs_dir, root=TEST_DATA_ROOT, progress=False)
    return TEST_DATA_ROOT
