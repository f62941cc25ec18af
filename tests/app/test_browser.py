"""The dashboard in a real browser: Playwright driving Debian's Chromium against `streamlit run`.

Opens every page, uploads scikit-image sample photos on Inspect, Compare, Face attributes,
Scorecard, Edit attention and Batch report,
waits for the maps, fails on any exception shown in a page, and saves full-page screenshots to
``artifacts/screenshots/`` (gitignored). Uses the tiny untrained checkpoints of ``conftest`` and
no dataset. Skips only when Chromium or Playwright is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import REPO, screenshots_driver

pytestmark = pytest.mark.browser
ARTIFACTS = REPO / "artifacts" / "screenshots"


def test_every_page_in_chromium(assets, tmp_path):
    driver = screenshots_driver()
    if not Path(driver.CHROMIUM).exists():
        pytest.skip(f"Chromium not installed at {driver.CHROMIUM} (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python package) not installed")
    data = tmp_path / "no-data"
    data.mkdir()
    env = {"ABN_ASSETS_DIR": str(assets), "ABN_DATA_ROOT": str(data)}
    photos = driver.sample_photos(tmp_path / "photos")
    log = tmp_path / "streamlit.log"
    with driver.streamlit_server(env, log) as url:
        shots = driver.visit_all(url, ARTIFACTS, photos)
    assert [s.stem for s in shots] == [
        "home",
        "inspect",
        "compare",
        "embeddings",
        "faces",
        "scorecard",
        "edit_attention",
        "batch_report",
    ]
    for shot in shots:
        assert shot.stat().st_size > 20_000, f"{shot} looks empty"
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
