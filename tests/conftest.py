"""Shared pytest fixtures for the whole suite.

Add generic fixtures here (documented, session-scoped when expensive); keep area-specific ones in
``tests/<area>/conftest.py``.

The whole run is offline: ``tests/offline.py`` lets sockets reach loopback and nothing else.

Data the suite needs: the offline packs (``../shared/data``, or ``$ABN_TEST_PACKS``). Without
them, the tests that need them skip and say why; under ``ABN_REQUIRE_DATA=1`` (set by
``.ci/run``) they fail instead, so CI cannot pass by skipping. ``ABN_TEST_PACKS=/nowhere``
simulates a fresh clone without ``../shared``.

Fixtures:
    packs_dir: the offline dataset packs, ``<repo>/../shared/data`` (skips or fails if absent).
    data_root: a data root with every offline pack extracted, ``<repo>/.cache/test-data``
        (made once by ``abn.data.prepare`` and reused across runs; ``$ABN_DATA_ROOT`` is
        ignored). Layout: ``cifar10/``, ``imagenette2-160/``, ``celeba-hq-64/``, ``celeba/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import offline

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKS_DIR = Path(os.environ.get("ABN_TEST_PACKS") or REPO_ROOT.parent / "shared" / "data")
TEST_DATA_ROOT = REPO_ROOT / ".cache" / "test-data"
REQUIRE_DATA = "ABN_REQUIRE_DATA"


def data_required() -> bool:
    """Whether missing test data is a failure (CI: ``ABN_REQUIRE_DATA=1``) rather than a skip."""
    return os.environ.get(REQUIRE_DATA, "") not in ("", "0")


def missing_data(reason: str) -> None:
    """Skip the test for missing data, or fail it under ``ABN_REQUIRE_DATA=1``."""
    if data_required():
        pytest.fail(f"{reason}; {REQUIRE_DATA}=1 makes missing data a failure", pytrace=False)
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    """The whole run is offline: sockets reach loopback only (``tests/offline.py``)."""
    offline.install()


# tests that use these fixtures read the real dataset packs: marked ``slow`` automatically
REAL_DATA_FIXTURES = frozenset({"packs_dir", "data_root"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that needs real data or a browser, so that the fast lane
    (``pytest -m "not slow"``, ``make test-fast``) leaves them out without a hand-kept list;
    subprocess and other long tests carry ``@pytest.mark.slow`` themselves."""
    for item in items:
        real_data = REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ()))
        if real_data or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


def pytest_unconfigure(config: pytest.Config) -> None:
    offline.uninstall()


@pytest.fixture(scope="session")
def packs_dir() -> Path:
    """The offline packs folder (``../shared/data``); skips (CI: fails) if it is absent."""
    if not PACKS_DIR.is_dir():
        missing_data(f"offline dataset packs not found at {PACKS_DIR} (needs ../shared/data)")
    return PACKS_DIR


@pytest.fixture(scope="session")
def data_root(packs_dir: Path) -> Path:
    """A data root holding every extracted pack (prepared once, then reused)."""
    from abn.data.prepare import prepare

    prepare(packs_dir=packs_dir, root=TEST_DATA_ROOT, progress=False)
    return TEST_DATA_ROOT
