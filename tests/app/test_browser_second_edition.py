"""Issue #22 in a real browser (Playwright + Debian's Chromium against ``streamlit run``):
the Enlarge panels follow a new face (item 3), results outlive display options (item 4), and a
copied share link reopens the same view (item 6). Tiny untrained checkpoints, a tiny CIFAR-10
tree; skips only when Chromium or Playwright is missing."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from .conftest import png, screenshots_driver

pytestmark = [pytest.mark.browser, pytest.mark.slow]
driver = screenshots_driver()
TIMEOUT = driver.TIMEOUT_MS
LIMIT = {"ABN_MAX_IMAGE_PIXELS": "300000"}  # above every image the other tests show


@pytest.fixture(scope="module")
def server(assets, tiny_cifar_root, tmp_path_factory):
    """One ``streamlit run`` for the module (its own copy of the data: t-SNE writes a cache)."""
    if not Path(driver.CHROMIUM).exists():
        pytest.skip(f"Chromium not installed at {driver.CHROMIUM} (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python package) not installed")
    data = tmp_path_factory.mktemp("browser") / "data"
    shutil.copytree(tiny_cifar_root, data)
    env = {"ABN_ASSETS_DIR": str(assets), "ABN_DATA_ROOT": str(data), **LIMIT}
    log = data.parent / "streamlit.log"
    with driver.streamlit_server(env, log) as url:
        yield url
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=driver.CHROMIUM, args=driver.CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    tab = browser.new_page(viewport={"width": 1440, "height": 1000})
    yield tab
    tab.close()


def open_page(page, url: str, title: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", name=title).first.wait_for(timeout=TIMEOUT)
    settle(page)


def settle(page) -> None:
    driver._settle(page)
    driver._no_exceptions(page, page.url)


def widget(page, testid: str, label: str):
    return page.locator(f'[data-testid="{testid}"]').filter(has_text=label).first


def choose(page, label: str, option: str | re.Pattern) -> None:
    """Pick ``option`` (its text, or a pattern) in the selectbox labelled ``label``."""
    widget(page, "stSelectbox", label).click()
    page.get_by_role("option", name=option, exact=isinstance(option, str)).first.click()
    settle(page)


def slide(page, label: str, key: str, times: int, to: int) -> None:
    """Move the slider labelled ``label`` by ``times`` steps with the keyboard, to ``to``."""
    slider = widget(page, "stSlider", label)
    thumb = slider.locator('input[type="range"]')
    for _ in range(times):
        thumb.focus()
        thumb.press(key)
        page.wait_for_timeout(300)
    value = slider.get_by_test_id("stSliderThumbValue")
    page.wait_for_function(
        "([e, v]) => e.innerText.trim() === v", arg=[value.element_handle(), str(to)]
    )
    settle(page)
    assert thumb.input_value() == str(to), (label, thumb.input_value())


# ----------------------------------------------------------------------------- item 3


def enlarge_state(page) -> tuple[list[str], list[str]]:
    """The "Attributes to enlarge" chips and the enlarged panels' titles (spaces for ``_``)."""
    chips = widget(page, "stMultiSelect", "Attributes to enlarge").locator("[data-tag]")
    names = [c.get_attribute("aria-label").replace("_", " ") for c in chips.all()]
    titles = [t.strip() for t in page.locator("h3").all_inner_texts()]
    return names, titles


def test_face_panels_follow_a_new_upload(server, page, tmp_path):
    open_page(page, f"{server}/Face_attributes", "Face attributes")
    before = enlarge_state(page)
    assert before[0] and before[0] == before[1], before
    face = tmp_path / "face.png"
    face.write_bytes(png((250, 250, 250), size=(64, 64)))
    driver._upload(page, [face])
    page.get_by_text("face.png").first.wait_for(timeout=TIMEOUT)
    settle(page)
    chips, titles = enlarge_state(page)
    assert chips == titles, (chips, titles)  # the panels show what the chips name
    assert chips != before[0], "the upload's top attributes must differ from the gallery face's"


# ----------------------------------------------------------------------------- item 4


def test_scorecard_split_result_survives_the_steps_slider(server, page):
    open_page(page, f"{server}/Scorecard", "Scorecard")
    page.get_by_role("tab", name="A dataset split").click()
    slide(page, "Images", "ArrowLeft", 2, 20)
    page.get_by_role("button", name="Compute the scorecard").click()
    result = page.get_by_text("Paired differences from")
    result.first.wait_for(timeout=TIMEOUT)
    settle(page)
    slide(page, "Steps per curve", "ArrowLeft", 1, 8)  # the one-image tab's curves
    assert result.count() == 1, "the split result vanished when the steps changed"
    assert page.get_by_text("Scored earlier with 20 images, 16 steps per curve").count() == 1
    slide(page, "Steps per curve", "ArrowRight", 1, 16)  # back: shown at once, as scored
    assert result.count() == 1
    assert page.get_by_text("Scored earlier with").count() == 0


def selected(page) -> str:
    """What the "Selected images" section says it shows ("30 selected; showing 16 of 30…")."""
    found = page.get_by_text(re.compile(r"^\d+ selected; showing"))
    return found.first.inner_text() if found.count() else ""


def lasso(page, chart) -> None:
    """Draw a lasso round the middle of a Plotly chart (its drag mode is lasso)."""
    box = chart.locator(".nsewdrag").first.bounding_box()
    x0, y0 = box["x"] + 0.1 * box["width"], box["y"] + 0.1 * box["height"]
    x1, y1 = box["x"] + 0.9 * box["width"], box["y"] + 0.9 * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    for x, y in ((x1, y0), (x1, y1), (x0, y1), (x0, y0 + 2)):
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_embeddings_selection_survives_colour_by(server, page):
    open_page(page, f"{server}/Embeddings", "Embeddings")
    page.get_by_role("button", name="Compute t-SNE").click()
    charts = page.locator(".js-plotly-plot")
    charts.nth(1).wait_for(timeout=TIMEOUT)
    settle(page)
    lasso(page, charts.last)
    page.get_by_role("heading", name="Selected images").wait_for(timeout=TIMEOUT)
    settle(page)
    chosen = selected(page)
    assert chosen, "the lasso selected nothing"
    for colour in ("correctness", "confidence"):
        widget(page, "stRadio", "Colour by").get_by_text(colour, exact=True).click()
        settle(page)
        assert selected(page) == chosen, colour


# ----------------------------------------------------------------------------- item 7


def test_a_too_large_upload_says_why_in_the_page(server, page, tmp_path):
    open_page(page, f"{server}/Inspect", "Inspect")
    big, small = tmp_path / "big.png", tmp_path / "small.png"
    big.write_bytes(png(size=(700, 500)))  # 350,000 pixels
    small.write_bytes(png(size=(60, 40)))
    driver._upload(page, [big, small])
    page.get_by_text("Image too large").first.wait_for(timeout=TIMEOUT)
    settle(page)
    error = page.locator('[data-testid="stAlert"]').filter(has_text="Image too large").first
    text = error.inner_text()  # shown in the page, not only in a tooltip
    assert "big.png" in text and "700×500" in text, text
    assert "ABN_MAX_IMAGE_PIXELS" in text and "max_pixels" not in text, text
    assert page.get_by_text("0.3 megapixels per image").count() == 1  # the limit, up front
    page.get_by_role("heading", name="small.png").wait_for(timeout=TIMEOUT)  # the other file


# ----------------------------------------------------------------------------- item 6


def test_a_copied_link_reopens_model_method_and_target(server, page, browser):
    open_page(page, f"{server}/Inspect", "Inspect")
    choose(page, "Model", re.compile(r"resnet20 plain"))
    choose(page, "Method", "Grad-CAM++")
    choose(page, "Target class", "ship")
    link = page.locator('[data-testid="stCode"]').last.inner_text().strip()
    assert link.startswith(server) and "method=gradcam%2B%2B" in link and "target=ship" in link
    other = browser.new_page(viewport={"width": 1440, "height": 1000})
    try:
        open_page(other, link, "Inspect")
        assert other.get_by_text("from the page's link").count() == 0  # nothing unknown
        assert other.get_by_text("resnet20_plain_cifar10.safetensors").count() == 1  # its caption
        shown = other.get_by_text(re.compile(r"Grad-CAM\+\+ \(no attention branch\) of ship"))
        assert shown.count() == 1  # the map: this method, this class, this model
        assert other.locator('[data-testid="stCode"]').last.inner_text().strip() == link
    finally:
        other.close()
