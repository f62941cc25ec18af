"""Smoke test: Home and every page found in ``pages/`` render with no models and no data.

A fresh clone may have neither shipped models nor datasets: every page must then say so in
words, never raise. Pages are found on disk, so a new page is covered without editing this file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.layout import PAGES

from .conftest import REPO

SCRIPTS = [REPO / "Home.py", *sorted((REPO / "pages").glob("*.py"))]


def test_every_page_on_disk_is_linked_from_home() -> None:
    """A page file that Home's page list (``app.layout.PAGES``) does not link is unreachable."""
    linked = {REPO / path for path, _label, _icon in PAGES.values()}
    assert set(SCRIPTS[1:]) == linked


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_page_renders_without_models_or_data(
    script: Path, tmp_path: Path, no_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_assets = tmp_path / "no-models"
    empty_assets.mkdir()
    monkeypatch.setenv("ABN_ASSETS_DIR", str(empty_assets))
    monkeypatch.chdir(REPO)
    at = AppTest.from_file(str(script), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [e for e in at.main if type(e).__name__ != "Empty"]
    assert shown, f"{script.name} rendered nothing"
