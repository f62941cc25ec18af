"""The Batch report page in a real browser: two photos uploaded, the report made with its
progress, downloaded, and the downloaded file opened offline (no request leaves the file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import screenshots_driver

pytestmark = pytest.mark.browser


def test_batch_report_downloads_a_self_contained_page(assets, tmp_path):
    driver = screenshots_driver()
    if not Path(driver.CHROMIUM).exists():
        pytest.skip(f"Chromium not installed at {driver.CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    data = tmp_path / "no-data"
    data.mkdir()
    photos = driver.sample_photos(tmp_path / "photos")
    files = [str(photos["astronaut"]), str(photos["coffee"])]
    env = {"ABN_ASSETS_DIR": str(assets), "ABN_DATA_ROOT": str(data)}
    saved = tmp_path / "report.html"
    with driver.streamlit_server(env, tmp_path / "streamlit.log") as url, sync_api.sync_playwright() as p:  # fmt: skip
        browser = p.chromium.launch(executable_path=driver.CHROMIUM, args=driver.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{url}/Batch_report", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Batch report").first.wait_for(
                timeout=driver.TIMEOUT_MS
            )
            page.wait_for_selector('[data-testid="stFileUploaderDropzoneInput"]', state="attached",
                                   timeout=driver.TIMEOUT_MS)  # fmt: skip
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(files)
            page.get_by_role("button", name="Make the report").click(timeout=driver.TIMEOUT_MS)
            button = page.get_by_role("button", name="Download the report (HTML)")
            button.wait_for(timeout=driver.TIMEOUT_MS)
            driver._no_exceptions(page, "Batch report")
            with page.expect_download(timeout=driver.TIMEOUT_MS) as download:
                button.click()
            download.value.save_as(saved)

            offline = browser.new_page()
            requests: list[str] = []
            offline.on("request", lambda r: requests.append(r.url))
            offline.route(re.compile(r"^(?!file:|data:)"), lambda route: route.abort())
            offline.goto(saved.as_uri())
            loaded = offline.evaluate(
                "() => [...document.images].map(i => i.complete && i.naturalWidth > 0)"
            )
            sections = offline.locator("section.image h2").all_inner_texts()
        finally:
            browser.close()
    assert sections == ["astronaut.png", "coffee.png"]
    assert len(loaded) == 2 * 3 and all(loaded)  # per image: view, overlay, raw map
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
