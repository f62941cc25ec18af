"""Screenshots of every dashboard page in a real browser (Playwright + Debian's Chromium).

    python scripts/screenshots.py                      # shipped models → docs/screenshots/*.png
    python scripts/screenshots.py --assets DIR --out artifacts/screenshots

Starts ``streamlit run Home.py`` on a free local port, opens each page, uploads sample photos
that ship with scikit-image on Inspect, Compare, Face attributes and Scorecard, waits for the maps and
saves one full-page PNG per page. Only scikit-image images are shown: the Embeddings page draws
points (no images are selected) and the galleries are never captured. If ``--assets`` holds no
checkpoint, tiny untrained demo models are made in a temporary folder (and the shots say so in
their model names). The browser test (``tests/app/test_browser.py``) drives the same code.
"""

from __future__ import annotations

import argparse
import os
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


def _scorecard(page, photos) -> None:
    _upload(page, [photos["chelsea"]])
    page.get_by_text("Deletion (lower AUC is better)").wait_for(timeout=TIMEOUT_MS)
    # the AUC table comes after the curves: measuring the page's height before it came cut it off
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=TIMEOUT_MS)


def _full_height(page, width: int, limit: int = 8000) -> None:
    """Grow the viewport to the page's content (Streamlit scrolls inside its main block)."""
    height = page.evaluate(
        """() => Math.max(document.body.scrollHeight,
            ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stMainBlockContainer"]')]
               .map(e => e.scrollHeight))"""
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
]


def visit_all(url: str, out: Path, photos: dict[str, Path], width: int = 1440) -> list[Path]:
    """Open every page, act on it, check no exception is shown, and save a full-page PNG."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            for name, path, title, act in PAGES:
                page.goto(f"{url}/{path}", wait_until="domcontentloaded")
                page.get_by_role("heading", name=title).first.wait_for(timeout=TIMEOUT_MS)
                _settle(page)
                if act:
                    act(page, photos)
                    _settle(page)
                _no_exceptions(page, name)
                shot = out / f"{name}.png"
                _full_height(page, width)
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
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        assets = args.assets
        if not any(assets.glob("*.safetensors")):
            print(f"no checkpoints in {assets}: using untrained demo models")
            assets = make_demo_assets(tmp / "assets")
        data = args.data_root or (tmp / "no-data")
        data.mkdir(parents=True, exist_ok=True)
        env = {"ABN_ASSETS_DIR": str(assets), "ABN_DATA_ROOT": str(data)}
        photos = sample_photos(tmp / "photos")
        hide_toolbar = ("--client.toolbarMode", "viewer")  # as .streamlit/config.toml
        with streamlit_server(env, tmp / "streamlit.log", hide_toolbar) as url:
            shots = visit_all(url, args.out, photos)
    for shot in shots:
        print(shot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
