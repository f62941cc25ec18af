"""Concurrency: simultaneous sessions share the cached models yet see exactly their own results.

Two harnesses, same question:

* AppTest: eight threads, each driving its own ``AppTest`` of the Inspect page on a different
  image (gallery deep links and uploads), released together by a barrier before each run, on
  each of the three cached CIFAR models (ABN attention, Grad-CAM on the plain model through
  the engine's replicas, CAM), with the result caches emptied first so that the maps are
  computed at the same time. Every session must show exactly what it shows when run alone.
* A real ``streamlit run`` on loopback: eight websocket clients (Streamlit's own protocol,
  ``/_stcore/stream``) open deep links to different gallery images at once, after every cache
  was cleared; each gets the same captions, top-k tables, raw map and media bytes as a client
  alone. Then 300 requests while the server's RSS is sampled: it stays bounded and
  ``/_stcore/health`` keeps answering. Eight Chromium tabs on the same links (``browser``
  marker; skipped without Chromium or Playwright) check that the client speaks for a browser.

Also the deep links themselves (``?image=`` on the gallery pages, see ``app.images``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import MagicMock

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.testing.v1 import AppTest
from websockets.sync.client import ClientConnection, connect

from .conftest import REPO, png, screenshots_driver

TIMEOUT = 120
SESSIONS = 8
INSPECT = str(REPO / "pages" / "1_Inspect.py")


# ----------------------------------------------------------------------------- AppTest


def snapshot(at: AppTest) -> dict:
    """Everything the Inspect page shows about its images, in comparable (exact) form."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {
        "images": [s.value for s in at.subheader],
        "captions": [c for c in at.caption.values if "predicted" in c or "cells" in c],
        "topk": [df.value.to_dict("list") for df in at.dataframe],
        "maps": [c["data"][0]["z"] for c in charts],
        "overlays": [i.proto.imgs[0].url for i in at.image],  # a hash of the bytes
        "link": dict(at.query_params),
    }


def inspect_session(case: tuple[str, object], models: list[str], step=lambda: None) -> list:
    """One user: open Inspect on an image (deep link or upload), then switch between
    ``models``; ``step()`` runs before the first script run and before each model's (the
    barrier when concurrent: every session calls it as often)."""
    how, what = case
    at = AppTest.from_file(INSPECT, default_timeout=TIMEOUT)
    if how == "link":
        at.query_params["image"] = what
    step()
    at.run()
    if how == "upload":
        at.radio(key="inspect_source").set_value("Upload").run()
        at.file_uploader(key="inspect_files").set_value(what).run()
    shots = []
    for label in models:
        at.selectbox(key="inspect_model").set_value(label)
        step()
        shots.append(snapshot(at.run()))
    return shots


def cases() -> list[tuple[str, object]]:
    """Eight different images: six gallery deep links (by name and by index), two uploads."""
    return [
        ("link", "test #0 (airplane)"),
        ("link", "test #14 (cat)"),
        ("link", "3"),  # by index: test #7 (automobile)
        ("link", "test #21 (dog)"),
        ("link", "test #33 (ship)"),
        ("link", "11"),
        ("upload", ("red.png", png(), "image/png")),
        ("upload", ("sky.jpg", png((40, 90, 220), (48, 36), "JPEG"), "image/jpeg")),
    ]


class SharedRuntime:
    """Lets several AppTests run at once in one process.

    ``AppTest.run`` installs a mock ``Runtime`` as the process-wide singleton for the length of
    a run and removes it at the end, so a second test running meanwhile would lose its runtime
    half-way. Here every run sees one runtime instead (as all sessions of a real server do):
    one media file manager, one cache storage manager.
    """

    def __init__(self, monkeypatch):
        from streamlit.components.v2.component_manager import BidiComponentManager
        from streamlit.runtime import Runtime
        from streamlit.runtime.caching.storage.dummy_cache_storage import (
            MemoryCacheStorageManager,
        )
        from streamlit.runtime.dataframe_source_manager import DataframeSourceManager
        from streamlit.runtime.media_file_manager import MediaFileManager
        from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
        from streamlit.testing.v1.util import patch_config_options

        runtime = MagicMock(spec=Runtime)
        runtime.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
        runtime.dataframe_source_mgr = DataframeSourceManager()
        runtime.cache_storage_manager = MemoryCacheStorageManager()
        components = BidiComponentManager()
        components.discover_and_register_components(start_file_watching=False)
        runtime.bidi_component_registry = components
        monkeypatch.setattr(Runtime, "instance", classmethod(lambda cls: runtime))
        monkeypatch.setattr(Runtime, "exists", classmethod(lambda cls: True))
        # Each run patches ``config.get_option`` and restores what it found; interleaved runs
        # would restore each other's patches. One patch around them all restores the original.
        self._config = patch_config_options({"global.appTest": True})
        # A server compiles each page once, under its one ScriptCache's lock; every AppTest has a
        # cache of its own, and CPython 3.11's AST constructor is not thread-safe ("AST
        # constructor recursion depth mismatch"), so compiling goes under one lock here too.
        from streamlit.runtime.scriptrunner.script_cache import ScriptCache

        compiling = threading.Lock()
        get_bytecode = ScriptCache.get_bytecode

        def locked_get_bytecode(cache, script_path):
            with compiling:
                return get_bytecode(cache, script_path)

        monkeypatch.setattr(ScriptCache, "get_bytecode", locked_get_bytecode)

    def __enter__(self):
        self._config.__enter__()
        return self

    def __exit__(self, *exc):
        return self._config.__exit__(*exc)


def model_labels() -> list[str]:
    """The Inspect model picker's labels of the ABN, plain and CAM models."""
    at = AppTest.from_file(INSPECT, default_timeout=TIMEOUT).run()
    options = at.selectbox(key="inspect_model").options
    return [next(o for o in options if f" {v} · " in o) for v in ("abn", "plain", "cam")]


def test_deep_link_preselects_and_follows_the_gallery(app_env, tiny_cifar):
    at = AppTest.from_file(INSPECT, default_timeout=TIMEOUT)
    at.query_params["image"] = ["test #21 (dog)", "3", "nope", "test #21 (dog)"]
    at.run()
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader] == ["test #21 (dog)", "test #7 (automobile)"]
    assert any("'nope'" in w.value and "?image=" in w.value for w in at.warning)
    assert at.query_params["image"] == ["test #21 (dog)", "test #7 (automobile)"]
    at.multiselect(key="inspect_gallery").set_value(["test #39 (truck)"]).run()
    assert at.query_params["image"] == "test #39 (truck)"  # the address bar follows
    assert not at.warning
    at.radio(key="inspect_source").set_value("Upload").run()
    assert "image" not in at.query_params
    plain = AppTest.from_file(INSPECT, default_timeout=TIMEOUT).run()
    assert [s.value for s in plain.subheader] == ["test #0 (airplane)"]  # no link: the first


def test_deep_link_on_a_single_image_page(app_env, tiny_cifar):
    at = AppTest.from_file(str(REPO / "pages" / "2_Compare.py"), default_timeout=TIMEOUT)
    at.query_params["image"] = ["3", "test #0 (airplane)"]  # one image page: the first counts
    at.run()
    assert not at.exception and not at.error
    assert at.header[0].value == "test #7 (automobile)"
    assert at.query_params["image"] == "test #7 (automobile)"


@pytest.mark.slow
def test_eight_apptest_sessions_match_their_solo_runs(app_env, tiny_cifar, monkeypatch):
    from app import compute

    labels = model_labels()
    work = cases()
    with SharedRuntime(monkeypatch):
        alone = [inspect_session(case, labels) for case in work]
        # Drop the computed results (keep the loaded models): the concurrent sessions compute
        # their predictions and maps at the same time, on the same model objects.
        compute._explain.clear()
        compute._predict.clear()
        barrier = threading.Barrier(SESSIONS, timeout=TIMEOUT)

        def step():
            barrier.wait()

        def run(case):
            try:
                return inspect_session(case, labels, step)
            except BaseException:
                barrier.abort()  # release the others instead of leaving them waiting
                raise

        with ThreadPoolExecutor(SESSIONS) as pool:
            together = list(pool.map(run, work))
    for case, solo, shared in zip(work, alone, together, strict=True):
        assert shared == solo, case
    for model in range(len(labels)):  # eight different images: eight different results
        assert len({json.dumps(s[model]) for s in together}) == SESSIONS


# ----------------------------------------------------------------------------- real server


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://") + "/_stcore/stream"

    def rss_mb(self) -> float:
        """The server's resident set size (VmRSS) in MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def healthy(self, timeout: float = 10) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=timeout) as r:
                return r.status == 200 and r.read() == b"ok"
        except OSError:
            return False

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=TIMEOUT) as r:
            assert r.status == 200, path
            return r.read()


@pytest.fixture(scope="module")
def server(assets, tiny_cifar_root, tmp_path_factory) -> Iterator[Server]:
    """``streamlit run Home.py`` on a free loopback port, on the fixtures' models and data."""
    folder = tmp_path_factory.mktemp("server")
    shutil.copytree(tiny_cifar_root, folder / "data")
    env = {"ABN_ASSETS_DIR": str(assets), "ABN_DATA_ROOT": str(folder / "data")}
    log = folder / "streamlit.log"
    with screenshots_driver().streamlit_process(env, log) as (url, proc):
        yield Server(url, proc, log)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def _arrow(data: bytes) -> dict:
    import pyarrow as pa

    return pa.ipc.open_stream(data).read_all().to_pydict()


def _element(e) -> tuple[str, object]:
    """An element of the page as (type, comparable value)."""
    kind = e.WhichOneof("type")
    if kind == "markdown":
        return kind, e.markdown.body
    if kind == "heading":
        return kind, e.heading.body
    if kind == "imgs":
        return kind, [i.url for i in e.imgs.imgs]
    if kind == "download_button":
        return kind, e.download_button.url
    if kind == "plotly_chart":
        return kind, json.loads(e.plotly_chart.spec)["data"][0]["z"]
    if kind == "dataframe":
        return kind, _arrow(e.dataframe.arrow_data.data)
    if kind in ("alert", "exception"):
        return kind, str(getattr(e, kind))
    return kind, None


class Session:
    """A browser tab on the Inspect page, over Streamlit's websocket protocol."""

    def __init__(self, server: Server):
        self.server = server
        self._connection = connect(
            server.ws, subprotocols=["streamlit"], max_size=None, open_timeout=TIMEOUT
        )
        self.ws: ClientConnection = self._connection.__enter__()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self._connection.__exit__(*exc)

    def show(self, query: dict[str, str], media: bool = True) -> dict:
        """What the tab shows at ``/Inspect?<query>``: one run of the page is asked for, its
        elements are read from the deltas (the last one at each position wins) and, with
        ``media``, the images and downloads are fetched over HTTP (hashes kept)."""
        msg = BackMsg()
        msg.rerun_script.query_string = urllib.parse.urlencode(query, doseq=True)
        msg.rerun_script.page_name = "Inspect"
        self.ws.send(msg.SerializeToString())
        elements: dict[tuple[int, ...], tuple[str, object]] = {}
        link = msg.rerun_script.query_string
        while True:
            fwd = ForwardMsg()
            fwd.ParseFromString(self.ws.recv(timeout=TIMEOUT))
            kind = fwd.WhichOneof("type")
            if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                elements[tuple(fwd.metadata.delta_path)] = _element(fwd.delta.new_element)
            elif kind == "page_info_changed":
                link = fwd.page_info_changed.query_string
            elif kind == "script_finished":
                assert fwd.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY
                break
        shown = [elements[p] for p in sorted(elements)]
        problems = [v for k, v in shown if k in ("alert", "exception")]
        assert not problems, problems
        out = {
            "link": urllib.parse.parse_qs(link),
            "captions": [v for k, v in shown if k == "markdown" and "predicted" in v],
            "maps": [v for k, v in shown if k == "plotly_chart"],
            "topk": [v for k, v in shown if k == "dataframe"],
            "media": [v for k, v in shown if k in ("imgs", "download_button")],
        }
        if media:
            urls = [u for v in out["media"] for u in (v if isinstance(v, list) else [v])]
            out["bytes"] = {u: hashlib.sha256(self.server.get(u)).hexdigest() for u in urls}
        return out


def view(server: Server, query: dict[str, str], media: bool = True) -> dict:
    """A new tab at ``/Inspect?<query>``: what it shows, then it is closed."""
    with Session(server) as tab:
        return tab.show(query, media)


def gallery_links() -> list[dict[str, str]]:
    """Deep links to eight different images of the tiny CIFAR gallery (by index and by name)."""
    links = [{"image": str(i)} for i in (0, 2, 4, 6, 8, 10)]
    return [*links, {"image": "test #14 (cat)"}, {"image": "test #39 (truck)"}]


@pytest.mark.slow
def test_eight_websocket_sessions_match_their_solo_views(server):
    links = gallery_links()
    alone = [view(server, link) for link in links]
    assert len({json.dumps(a["maps"]) for a in alone}) == len(links)  # eight different maps
    assert alone[0]["link"] == {"image": ["test #0 (airplane)"]}  # index → shareable name
    # Empty every cache (models included, for every session: Streamlit's "Clear caches"), so
    # the eight sessions below load the models and compute their maps at the same time. The
    # server handles a socket's messages in order, so the clear is done when the close is.
    with Session(server) as tab:
        msg = BackMsg()
        msg.clear_cache = True
        tab.ws.send(msg.SerializeToString())
    barrier = threading.Barrier(SESSIONS, timeout=TIMEOUT)

    def together(link):
        try:
            tab = Session(server)
        except BaseException:
            barrier.abort()  # release the others instead of leaving them waiting
            raise
        with tab:
            barrier.wait()  # every tab connected: now they all ask at once
            return tab.show(link)

    with ThreadPoolExecutor(SESSIONS) as pool:
        shared = list(pool.map(together, links))
    for link, solo, both in zip(links, alone, shared, strict=True):
        assert both == solo, link
    assert server.healthy()


@pytest.mark.slow
def test_few_hundred_requests_keep_memory_bounded(server):
    """300 requests: 75 new tabs on deep links (each a session and a run of the page), each
    fetching its overlay and its two downloads, four tabs at a time; health checked apart."""
    links = [{"image": str(i % 12)} for i in range(75)]
    warm = [{"image": str(i)} for i in range(12)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda link: view(server, link), warm))
    rss = [server.rss_mb()]
    lock = threading.Lock()
    requests = [0]
    health: list[float] = []
    done = threading.Event()

    def probe():
        while not done.is_set():
            t = time.perf_counter()
            assert server.healthy(timeout=TIMEOUT)
            health.append(time.perf_counter() - t)
            done.wait(0.5)

    def tab(link):
        shown = view(server, link)
        with lock:
            requests[0] += 1 + len(shown["bytes"])
            rss.append(server.rss_mb())
        return shown

    t0 = time.perf_counter()
    with ThreadPoolExecutor(5) as pool:
        checker = pool.submit(probe)
        try:
            shown = list(pool.map(tab, links))
        finally:
            done.set()
        checker.result()
    seconds = time.perf_counter() - t0
    quarter = len(rss) // 4
    first, last = sorted(rss[1 : 1 + quarter]), sorted(rss[-quarter:])
    print(
        f"\n{requests[0]} requests in {seconds:.1f} s; RSS after warm-up {rss[0]:.0f} MiB, "
        f"max {max(rss):.0f}, median of first/last quarter {first[quarter // 2]:.0f}/"
        f"{last[quarter // 2]:.0f}; {len(health)} health checks, slowest "
        f"{max(health) * 1000:.0f} ms"
    )
    assert requests[0] == 300
    assert all(s["captions"] for s in shown)
    assert max(rss) - rss[0] < 100  # MiB; measured: under 10
    assert last[quarter // 2] - first[quarter // 2] < 32  # no upward trend; measured: about 3
    assert health and max(health) < 10
    assert server.healthy()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.browser
def test_eight_chromium_tabs_open_their_deep_links(server):
    """The websocket client above speaks for a browser: eight Chromium tabs opened at once on
    the same deep links show the same predictions, and each address bar ends up naming its
    image."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not installed at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    links = gallery_links()
    solo = [view(server, link, media=False) for link in links]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            tabs = [context.new_page() for _ in links]
            for tab, link in zip(tabs, links, strict=True):
                tab.goto(
                    f"{server.url}/Inspect?{urllib.parse.urlencode(link)}", wait_until="commit"
                )
            for tab, alone in zip(tabs, solo, strict=True):
                caption = tab.get_by_text("predicted").first
                caption.wait_for(timeout=TIMEOUT * 1000)
                assert caption.inner_text() == alone["captions"][0].replace("**", "")
                tab.wait_for_function(
                    "q => decodeURIComponent(location.search.replace(/\\+/g, ' ')) === q",
                    arg="?image=" + alone["link"]["image"][0],
                    timeout=TIMEOUT * 1000,
                )
                assert not tab.locator('[data-testid="stException"]').count()
        finally:
            browser.close()
