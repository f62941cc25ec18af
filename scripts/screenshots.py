"""Screenshots of every dashboard page in a real browser (Playwright + Debian's Chromium).

    python scripts/screenshots.py                      # shipped models → docs/screenshots/*.png
    python scripts/screenshots.py --assets DIR --out artifacts/screenshots

Starts ``streamlit run Home.py`` on a free local port, opens each page, uploads sample photos
that ship with scikit-image on Inspect, Compare, Face attributes, Scorecard, Edit attention (a box
of the map's cells erased, the prediction before → after) and Batch report (three photos, the
report made), waits for the results and saves one full-page PNG per page. Only scikit-image images
are shown: the Embeddings page draws points (no images are selected; with ``--data-root`` it must
show them, not "No dataset here") and the galleries are never captured. If ``--assets`` holds no
checkpoint, tiny untrained demo models are made in a temporary folder (and the shots say so in
their model names). The browser test (``tests/app/test_browser.py``) drives the same code.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 120_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(
    env: dict[str, str], log: Path | None = None, extra: tuple[str, ...] = ()
) -> Iterator[str]:
    """``streamlit run Home.py`` on a free port; yields its URL once healthy, stops it after."""
    with streamlit_process(env, log, extra) as (url, _):
        yield url


@contextmanager
def streamlit_process(
    env: dict[str, str], log: Path | None = None, extra: tuple[str, ...] = ()
) -> Iterator[tuple[str, subprocess.Popen]]:
    """:func:`streamlit_server`, yielding ``(url, process)`` (for tests that watch the process)."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", "Home.py",
        "--server.headless", "true", "--server.port", str(port),
        "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", *extra,
    ]  # fmt: skip
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    # No file watcher: it would crawl the data folder and compete for the CPU.
    env = {"STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none", **os.environ, **env}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not become healthy at {url} within {timeout:.0f} s")


def sample_photos(folder: Path) -> dict[str, Path]:
    """scikit-image's bundled photos as PNG files to upload."""
    sys.path.insert(0, str(REPO))
    from app.images import FACE_SAMPLES, SAMPLES, sample_image

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (loader, box) in {**SAMPLES, **FACE_SAMPLES}.items():
        path = folder / f"{name.split(' ')[0]}{'_face' if box else ''}.png"
        sample_image(loader, box).save(path)
        out[path.stem] = path
    return out


def make_demo_assets(folder: Path) -> Path:
    """Tiny untrained checkpoints (abn/plain/cam on CIFAR-10, multi-task on CelebA-HQ)."""
    sys.path.insert(0, str(REPO))
    import abn
    from abn.checkpoint import card_for
    from abn.data import dataset_info

    folder.mkdir(parents=True, exist_ok=True)
    for arch, variant, data, kw in [
        ("resnet20", "abn", "cifar10", {}),
        ("resnet20", "plain", "cifar10", {}),
        ("resnet20", "cam", "cifar10", {}),
        ("resnet18", "abn_multitask", "celeba-hq", {"stem": "small"}),
        ("resnet18", "plain_multitask", "celeba-hq", {"stem": "small"}),
    ]:
        info = dataset_info(data)
        model = abn.create(arch, variant, num_classes=info.num_classes, **kw).eval()
        card = card_for(
            model,
            class_names=list(info.class_names),
            task=info.task,
            input_size=info.input_size,
            mean=info.mean,
            std=info.std,
            dataset=data,
            splits={"train": info.train_split, "test": info.eval_split},
            recipe={"recipe": info.recipe},
            notes="untrained demo model for screenshots",
        )
        abn.save(model, folder / f"{arch}_{variant}_{data}.safetensors", card)
    return folder


# ----------------------------------------------------------------------------- browser


def _settle(page) -> None:
    """Wait until Streamlit has finished running the script."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=TIMEOUT_MS)
    page.wait_for_timeout(800)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"] button')"
        " && !document.querySelector('[data-testid=\"stSpinner\"]')",
        timeout=TIMEOUT_MS,
    )
    page.wait_for_timeout(700)


def _no_exceptions(page, name: str) -> None:
    if page.locator('[data-testid="stException"]').count():
        text = page.locator('[data-testid="stException"]').first.inner_text()
        raise AssertionError(f"{name}: exception shown in the page:\n{text}")


def _upload(page, files: list[Path]) -> None:
    page.get_by_text("Upload", exact=True).first.click()
    page.wait_for_selector(
        '[data-testid="stFileUploaderDropzoneInput"]', state="attached", timeout=TIMEOUT_MS
    )
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
        [str(f) for f in files]
    )


def _inspect(page, photos) -> None:
    _upload(page, [photos["chelsea"], photos["rocket"]])
    page.get_by_text("Map over the image").nth(1).wait_for(timeout=TIMEOUT_MS)


def _compare(page, photos) -> None:
    _upload(page, [photos["coffee"]])
    page.get_by_text("Agreement between the maps").wait_for(timeout=TIMEOUT_MS)


def _faces(page, photos) -> None:
    _upload(page, [photos["astronaut_face"]])
    page.get_by_text("Attention maps (").wait_for(timeout=TIMEOUT_MS)


def _embeddings(page, photos) -> None:
    button = page.get_by_text("Compute t-SNE")
    if button.count():
        button.first.click()
    page.get_by_text("Selected images").or_(page.get_by_text("No dataset here")).first.wait_for(
        timeout=TIMEOUT_MS
    )


def _embeddings_with_data(page, photos) -> None:
    """:func:`_embeddings`, failing unless the points are drawn (a data root was given)."""
    _embeddings(page, photos)
    if page.get_by_text("No dataset here").count():
        raise AssertionError("embeddings: 'No dataset here' although a data root was given")
    page.get_by_text("Selected images").wait_for(timeout=TIMEOUT_MS)
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=TIMEOUT_MS)


def drag(page, box: dict, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A mouse drag between two points given as fractions of ``box``."""
    x0, y0 = box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"]
    x1, y1 = box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(x0 + (x1 - x0) * i / 10, y0 + (y1 - y0) * i / 10)
    page.mouse.up()


def _box_select(page, start, end, tries: int = 3) -> None:
    """Drag a box over Edit attention's cell chart until the page reports a region (a drag made
    while the chart is still being redrawn is lost)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(tries):
        chart = page.locator('[data-testid="stPlotlyChart"]').first
        chart.scroll_into_view_if_needed()
        layer = chart.locator(".nsewdrag").first  # plotly's drag surface
        layer.wait_for(timeout=TIMEOUT_MS)
        drag(page, layer.bounding_box(), start, end)
        try:
            page.get_by_text(re.compile(r"Region: \d+ of \d+ cells")).first.wait_for(timeout=20_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"edit attention: no region after {tries} box selections")


def _edit_attention(page, photos) -> None:
    page.get_by_text("Upload", exact=True).first.click()
    _settle(page)  # the gallery's dataset image goes first: a file set during that rerun is lost
    _upload(page, [photos["chelsea"]])
    page.get_by_text("chelsea.png").first.wait_for(timeout=TIMEOUT_MS)
    _settle(page)
    page.get_by_text("Prediction unchanged").wait_for(timeout=TIMEOUT_MS)
    _box_select(page, (0.3, 0.2), (0.75, 0.7))  # the middle of the map, where the cat is
    _settle(page)
    page.get_by_role("button", name="Erase (0)").click()
    _settle(page)
    page.get_by_text(re.compile(r"Erased \d+ cells")).first.wait_for(timeout=TIMEOUT_MS)


def _batch_report(page, photos) -> None:
    page.wait_for_selector(
        '[data-testid="stFileUploaderDropzoneInput"]', state="attached", timeout=TIMEOUT_MS
    )
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
        [str(photos[n]) for n in ("astronaut", "coffee", "rocket")]
    )
    page.get_by_role("button", name="Make the report").click(timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Download the report (HTML)").wait_for(timeout=TIMEOUT_MS)
    page.get_by_text("Summary", exact=True).wait_for(timeout=TIMEOUT_MS)
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=TIMEOUT_MS)


def _scorecard(page, photos) -> None:
    _upload(page, [photos["chelsea"]])
    _scored(page)


def _scored(page) -> None:
    """Wait for Scorecard's curves and AUC table, with no progress bar left (a rerun scores
    again: a shot taken then showed only the bar)."""
    tab = page.get_by_role("tabpanel").first
    tab.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=TIMEOUT_MS)
    # the AUC table comes after the curves: measuring the page's height before it came cut it off
    tab.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stProgress\"]')", timeout=TIMEOUT_MS
    )


SCROLLERS = ", ".join(
    f'[data-testid="{t}"]' for t in ("stMain", "stMainBlockContainer", "stSidebarContent")
)


def _full_height(page, width: int, limit: int = 8000) -> None:
    """Grow the viewport to the page's content (Streamlit scrolls inside its main block, and
    the sidebar inside its own: a sidebar longer than the page was cut off)."""
    height = page.evaluate(
        f"""() => Math.max(document.body.scrollHeight,
            ...[...document.querySelectorAll('{SCROLLERS}')].map(e => e.scrollHeight))"""
    )
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, limit)})
    page.wait_for_timeout(1200)


PAGES = [
    ("home", "", "Attention Branch Networks", None),
    ("inspect", "Inspect", "Inspect", _inspect),
    ("compare", "Compare", "Compare", _compare),
    ("embeddings", "Embeddings", "Embeddings", _embeddings),
    ("faces", "Face_attributes", "Face attributes", _faces),
    ("scorecard", "Scorecard", "Scorecard", _scorecard),
    ("edit_attention", "Edit_attention", "Edit attention", _edit_attention),
    ("batch_report", "Batch_report", "Batch report", _batch_report),
]


def visit_all(
    url: str,
    out: Path,
    photos: dict[str, Path],
    width: int = 1440,
    data: bool = False,
    only: tuple[str, ...] = (),
) -> list[Path]:
    """Open every page (or those named in ``only``), act on it, check no exception is shown,
    and save a full-page PNG. ``data``: a data root was given, so Embeddings must draw points."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    pages = [p for p in PAGES if not only or p[0] in only]
    if data:
        pages = [(*p[:3], _embeddings_with_data) if p[3] is _embeddings else p for p in pages]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            for name, path, title, act in pages:
                page.goto(f"{url}/{path}", wait_until="domcontentloaded")
                page.get_by_role("heading", name=title).first.wait_for(timeout=TIMEOUT_MS)
                _settle(page)
                try:
                    if act:
                        act(page, photos)
                        _settle(page)
                    _no_exceptions(page, name)
                except Exception:
                    page.screenshot(path=str(out / f"{name}.failed.png"), full_page=True)
                    raise  # the page as it stood, to see why
                shot = out / f"{name}.png"
                page.mouse.move(width // 2, 5)  # no button left in its hover colour
                _full_height(page, width)
                _settle(page)  # a rerun the resize may have started
                if act is _scorecard:
                    _scored(page)
                _no_exceptions(page, name)
                page.screenshot(path=str(shot), full_page=True)
                page.set_viewport_size({"width": width, "height": 900})
                shots.append(shot)
        finally:
            browser.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=REPO / "assets")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument(
        "--data-root", type=Path, default=None,
        help="data root for the Embeddings page (default: none, the page shows how to get one)",
    )  # fmt: skip
    parser.add_argument(
        "--only", nargs="+", default=[], choices=[p[0] for p in PAGES], metavar="PAGE",
        help=f"only these pages ({', '.join(p[0] for p in PAGES)})",
    )  # fmt: skip
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        assets = args.assets
        if not any(assets.glob("*.safetensors")):
            print(f"no checkpoints in {assets}: using untrained demo models")
            assets = make_demo_assets(tmp / "assets")
        data = args.data_root or (tmp / "no-data")
        data.mkdir(parents=True, exist_ok=True)
        env = {
            "ABN_ASSETS_DIR": str(assets),
            "ABN_DATA_ROOT": str(data),
            # no one's own edit sets or fine-tuned models in the shots
            "ABN_EDITS_DIR": str(tmp / "edits"),
            "ABN_USER_MODELS_DIR": str(tmp / "user-models"),
        }
        photos = sample_photos(tmp / "photos")
        hide_toolbar = ("--client.toolbarMode", "viewer")  # as .streamlit/config.toml
        with streamlit_server(env, tmp / "streamlit.log", hide_toolbar) as url:
            shots = visit_all(
                url, args.out, photos, data=args.data_root is not None, only=tuple(args.only)
            )
    for shot in shots:
        print(shot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
