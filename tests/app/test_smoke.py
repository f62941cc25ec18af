"""Smoke test: Home and every page found in ``pages/`` render with no models and no data.

A fresh clone may have neither shipped models nor datasets: every page must then say so in
words, never raise. Pages are found on disk, so a new page is covered without editing this file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from .conftest import REPO

SCRIPTS = [REPO / "Home.py", *sorted((REPO / "pages").glob("*.py"))]


def test_every_page_is_found() -> None:
    names = [p.name for p in SCRIPTS]
    assert len(names) >= 2 and names[0] == "Home.py"
    assert all(p.is_file() for p in SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_page_renders_without_models_or_data(
    script: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_assets, empty_data = tmp_path / "no-models", tmp_path / "no-data"
    empty_assets.mkdir()
    empty_data.mkdir()
    monkeypatch.setenv("ABN_ASSETS_DIR", str(empty_assets))
    monkeypatch.setenv("ABN_DATA_ROOT", str(empty_data))
    monkeypatch.chdir(REPO)
    at = AppTest.from_file(str(script), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [e for e in at.main if type(e).__name__ != "Empty"]
    assert shown, f"{script.name} rendered nothing"
