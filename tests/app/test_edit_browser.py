"""The Edit attention page in a real browser (Playwright + Debian's Chromium, as
``test_browser.py``): drag a box over the map's cells, erase them, see the prediction change,
then paint cells with the brush and set them, save the edit to a new edit set and fine-tune
a model from it for one epoch; screenshots go to ``artifacts/screenshots/`` (gitignored).
Uses the tiny untrained checkpoints of ``conftest``, no dataset, temporary edit folders.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import REPO, screenshots_driver

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = REPO / "artifacts" / "screenshots"
TIMEOUT_MS = 120_000
REGION = re.compile(r"Region: (\d+) of (\d+) cells")


def region_size(page) -> int:
    text = page.get_by_text(REGION).first.inner_text()
    return int(REGION.search(text).group(1))


def wait_for_region_change(page, old: int, timeout_ms: int) -> int:
    """The region's size once it differs from ``old`` (the canvas sends strokes debounced)."""
    for _ in range(timeout_ms // 500):
        if page.get_by_text(REGION).count() and region_size(page) != old:
            return region_size(page)
        page.wait_for_timeout(500)
    raise AssertionError(f"the region stayed at {old} cells")  # (0: none)


def box_select(page, start, end, tries: int = 3) -> int:
    """Drag a box over the cell chart until the page reports a region (a drag made while the
    chart is still being drawn again is lost); the region's size."""
    for _ in range(tries):
        chart = page.locator('[data-testid="stPlotlyChart"]').first
        chart.scroll_into_view_if_needed()
        layer = chart.locator(".nsewdrag").first  # plotly's drag surface
        layer.wait_for(timeout=TIMEOUT_MS)
        screenshots_driver().drag(page, layer.bounding_box(), start, end)
        try:
            return wait_for_region_change(page, 0, 15_000)
        except AssertionError:
            continue
    raise AssertionError(f"no region after {tries} box selections")


def test_box_select_erase_and_brush_in_chromium(assets, tmp_path):
    driver = screenshots_driver()
    if not Path(driver.CHROMIUM).exists():
        pytest.skip(f"Chromium not installed at {driver.CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    data = tmp_path / "no-data"
    data.mkdir()
    env = {
        "ABN_ASSETS_DIR": str(assets),
        "ABN_DATA_ROOT": str(data),
        "ABN_EDITS_DIR": str(tmp_path / "edits"),
        "ABN_USER_MODELS_DIR": str(tmp_path / "user-models"),
    }
    log = tmp_path / "streamlit.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    timeout = driver.TIMEOUT_MS
    with driver.streamlit_server(env, log) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=driver.CHROMIUM, args=driver.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"{url}/Edit_attention", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Edit attention").first.wait_for(timeout=timeout)
            driver._settle(page)
            page.get_by_text("Prediction unchanged").wait_for(timeout=timeout)
            page.get_by_text("Region: none").wait_for(timeout=timeout)

            selected = box_select(page, (0.05, 0.05), (0.45, 0.45))  # the top-left quarter
            assert 16 <= selected <= 81, selected  # about a quarter of 16×16 cells

            page.get_by_role("button", name="Erase (0)").click()
            driver._settle(page)
            page.get_by_text(f"Erased {selected} cells").first.wait_for(timeout=timeout)
            driver._no_exceptions(page, "edit attention")
            assert region_size(page) == selected  # the region outlives the redrawn chart
            driver._full_height(page, 1440)
            page.screenshot(path=str(ARTIFACTS / "edit_attention.png"), full_page=True)
            page.set_viewport_size({"width": 1440, "height": 1000})

            page.get_by_text("Brush", exact=True).first.click()
            driver._settle(page)
            canvas = page.locator("canvas.upper-canvas").first
            canvas.wait_for(timeout=timeout)
            canvas.scroll_into_view_if_needed()
            driver.drag(
                page, canvas.bounding_box(), (0.6, 0.75), (0.95, 0.75)
            )  # a stroke, lower right
            painted = wait_for_region_change(page, selected, timeout)
            assert 0 < painted < 256, painted
            driver._settle(page)
            page.get_by_role("button", name="Set value").click()
            driver._settle(page)
            page.get_by_text(f"Set {painted} cells").first.wait_for(timeout=timeout)
            driver._no_exceptions(page, "edit attention (brush)")
            driver._full_height(page, 1440)
            page.screenshot(path=str(ARTIFACTS / "edit_attention_brush.png"), full_page=True)
            page.set_viewport_size({"width": 1440, "height": 1000})

            page.get_by_role("button", name="Save edit").click()
            driver._settle(page)
            page.get_by_text("Saved edit").first.wait_for(timeout=timeout)
            page.get_by_text("Review").first.wait_for(timeout=timeout)
            epochs = page.get_by_label("Epochs")
            epochs.fill("1")
            epochs.press("Enter")
            driver._settle(page)
            page.get_by_role("button", name="Fine-tune").click()
            page.get_by_text("Fine-tuned model written").first.wait_for(timeout=timeout)
            driver._settle(page)
            driver._no_exceptions(page, "edit attention (fine-tuned)")
            page.get_by_text("map MSE to the edited maps").first.wait_for(state="attached")
            driver._full_height(page, 1440)
            page.screenshot(path=str(ARTIFACTS / "edit_attention_finetuned.png"), full_page=True)
        finally:
            browser.close()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
