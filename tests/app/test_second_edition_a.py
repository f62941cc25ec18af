"""Dashboard, second edition (part A): photo-sized default models, ``?model=`` links, the theme
and toolbar settings, readable upload limits, full agreement tables, uncut model names."""

from __future__ import annotations

import re

import pytest
import streamlit as st
import tomllib
from streamlit.testing.v1 import AppTest

from abn.data.registry import IMAGENETTE_CLASSES

from .conftest import REPO, assert_clean, make_checkpoint, png, run_page

SHIPPED = REPO / "assets"
PAGES = {"inspect": "pages/1_Inspect.py", "cmp": "pages/2_Compare.py", "sc": "pages/5_Scorecard.py"}
MAIN_PICKER = {"inspect": "inspect_model", "cmp": "cmp_abn", "sc": "sc_abn"}


@pytest.fixture(scope="module")
def mixed_assets(tmp_path_factory):
    """CIFAR-10 models at 32 px (listed first, as files sort) and an Imagenette-like trio at
    64 px, plus a 64 px multi-task pair: the single-task ABN at 64 px must be the default."""
    folder = tmp_path_factory.mktemp("mixed-assets")
    for variant in ("abn", "plain", "cam"):
        make_checkpoint(folder, variant)
        make_checkpoint(
            folder,
            variant,
            "imagenette",
            class_names=list(IMAGENETTE_CLASSES.values()),
            input_size=(64, 64),
        )
    for variant in ("abn_multitask", "plain_multitask"):
        make_checkpoint(folder, variant, "celeba-hq", input_size=(96, 96))
    return folder


@pytest.fixture
def mixed_env(mixed_assets, no_data, monkeypatch):
    monkeypatch.setenv("ABN_ASSETS_DIR", str(mixed_assets))
    monkeypatch.chdir(REPO)
    return mixed_assets


def picked(at: AppTest, key: str) -> str:
    return at.selectbox(key=key).value


# ----------------------------------------------------------------------------- default model


@pytest.mark.parametrize("page", list(PAGES))
def test_pages_open_on_the_largest_single_task_abn(mixed_env, page):
    at = run_page(PAGES[page])
    assert not at.exception, [e.value for e in at.exception]
    assert "imagenette" in picked(at, MAIN_PICKER[page])
    assert "abn" in picked(at, MAIN_PICKER[page])
    if page != "inspect":  # the baselines follow the ABN model's task
        assert "imagenette" in picked(at, f"{page}_plain")
        assert "imagenette" in picked(at, f"{page}_cam")
    assert "model" not in at.query_params  # the default needs no link


@pytest.mark.parametrize("page", list(PAGES))
def test_shipped_pages_open_on_the_imagenette_abn(no_data, monkeypatch, page):
    monkeypatch.delenv("ABN_ASSETS_DIR", raising=False)
    monkeypatch.chdir(REPO)
    at = run_page(PAGES[page])
    assert not at.exception, [e.value for e in at.exception]
    assert picked(at, MAIN_PICKER[page]).startswith("resnet18 abn · imagenette")
    if page != "inspect":
        assert picked(at, f"{page}_plain").startswith("resnet18 plain · imagenette")
        assert picked(at, f"{page}_cam").startswith("resnet18 cam · imagenette")


def test_model_link_and_the_users_choice_win(mixed_env):
    at = run_page(PAGES["inspect"], link="resnet20_abn_cifar10.safetensors")
    assert_clean(at)
    assert "cifar10" in picked(at, "inspect_model")
    other = next(o for o in at.selectbox(key="inspect_model").options if "plain · imagenette" in o)
    at.selectbox(key="inspect_model").set_value(other).run()
    assert_clean(at)
    assert picked(at, "inspect_model") == other  # the user's choice stays
    assert at.query_params["model"] == "resnet20_plain_imagenette"  # and the link follows it
    at.run()
    assert picked(at, "inspect_model") == other
    default = at.selectbox(key="inspect_model").options[0]
    at.selectbox(key="inspect_model").set_value(default).run()
    assert "imagenette" in default and "model" not in at.query_params  # back to a plain link


def test_unknown_model_link_warns_and_falls_back(mixed_env):
    at = run_page(PAGES["cmp"], link="no-such-model")
    assert not at.exception
    assert any("no-such-model" in w.value and "?model=" in w.value for w in at.warning)
    assert "imagenette" in picked(at, "cmp_abn")


def test_picker_caption_carries_the_full_model_name(mixed_env):
    at = run_page(PAGES["cmp"])
    captions = [c.value for c in at.sidebar.caption]
    for key in ("cmp_abn", "cmp_plain", "cmp_cam"):
        label = picked(at, key)
        assert any(c.startswith(f"**{label}**") for c in captions), (label, captions)


# ----------------------------------------------------------------------------- theme, toolbar


def test_config_follows_the_users_theme_and_hides_the_developer_toolbar():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert "base" not in config.get("theme", {})  # light or dark as the browser/OS says
    assert config["client"]["toolbarMode"] == "viewer"  # no Deploy button, no developer menu
    driver = (REPO / "scripts" / "screenshots.py").read_text()
    assert re.search(r'"--client\.toolbarMode",\s*"viewer"', driver)


def test_diagram_text_never_sits_on_the_page_background():
    from app.diagram import ABN_DOT

    assert "plaintext" not in ABN_DOT and 'fillcolor="none"' not in ABN_DOT  # dark text, no fill
    edge = re.search(r"edge \[([^\]]*)\]", ABN_DOT).group(1)
    assert "fontcolor=" in edge  # edge labels: a grey that reads on light and dark


# ----------------------------------------------------------------------------- uploads


def test_oversize_upload_says_why_in_the_page(app_env, monkeypatch):
    monkeypatch.setenv("ABN_MAX_IMAGE_PIXELS", "1000")
    at = run_page(PAGES["inspect"])
    at.radio(key="inspect_source").set_value("Upload").run()
    assert any("megapixels" in c.value and "ABN_MAX_IMAGE_PIXELS" in c.value for c in at.caption)
    files = [
        ("big.png", png(size=(40, 30)), "image/png"),
        ("ok.png", png(size=(20, 20)), "image/png"),
    ]
    at.file_uploader(key="inspect_files").set_value(files).run()
    assert not at.exception
    text = "\n".join(e.value for e in at.error)
    assert "Image too large" in text and "big.png" in text and "40×30" in text
    assert "ABN_MAX_IMAGE_PIXELS" in text and "max_pixels" not in text
    assert [s.value for s in at.subheader] == ["ok.png"]  # the other file is still shown


# ----------------------------------------------------------------------------- Compare


def test_compare_agreement_tables_show_every_row(app_env, monkeypatch):
    from app.views import ROW_HEIGHT

    shown = []
    original = st.dataframe

    def spy(data=None, *args, **kwargs):
        shown.append((getattr(data, "data", data), kwargs.get("height")))
        return original(data, *args, **kwargs)

    monkeypatch.setattr(st, "dataframe", spy)
    at = run_page(PAGES["cmp"])
    assert_clean(at)
    tables = [(f, h) for f, h in shown if f.shape[0] == f.shape[1]]  # map × map agreement
    assert len(tables) == 2, [type(f) for f, _ in shown]
    for frame, height in tables:
        rows = len(frame)
        assert rows >= 5
        assert isinstance(height, int) and height >= (rows + 1) * ROW_HEIGHT
    assert [len(d.value) for d in at.dataframe] == [len(f) for f, _ in tables]
