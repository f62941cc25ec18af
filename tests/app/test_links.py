"""Share links (issue #22, item 6): the model, the methods and the target travel in the link, a
copied link reopens the same view, and values that fit nothing warn and fall back."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from abn.data.registry import IMAGENETTE_CLASSES
from app.links import resolve

from .conftest import PAGE_TIMEOUT, REPO, assert_clean, make_checkpoint, write_tiny_cifar

INSPECT, COMPARE, SCORECARD = "pages/1_Inspect.py", "pages/2_Compare.py", "pages/5_Scorecard.py"


def open_page(name: str, query: dict[str, str | list[str]] | None = None) -> AppTest:
    """A page opened from a link with ``query``'s parameters."""
    at = AppTest.from_file(str(REPO / name), default_timeout=PAGE_TIMEOUT)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


def copied_link(at: AppTest) -> dict[str, list[str]]:
    """The parameters of the page's "Copy link" box."""
    (code,) = [c.value for c in at.code if c.value.startswith(("?", "http"))]
    return parse_qs(urlsplit(code).query)


def link_warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if "from the page's link" in w.value]


# ----------------------------------------------------------------------------- resolve


def test_resolve_reads_names_words_and_unencoded_plus_signs():
    options = ["gradcam", "gradcam++", "English springer", "the ABN model's prediction"]
    words = {"the ABN model's prediction": "abn-prediction"}
    found, unknown = resolve(
        ["gradcam  ", " English springer", "ABN-Prediction", "gradcam", "nope"], options, words
    )
    assert found == ["gradcam++", "English springer", "the ABN model's prediction", "gradcam"]
    assert unknown == ["nope"]
    assert resolve(["gradcam++", "gradcam++"], options) == (["gradcam++"], [])  # no repeats


# ----------------------------------------------------------------------------- Inspect


def test_inspect_link_reopens_model_method_and_target(app_env):
    query = {"model": "resnet20_plain_cifar10", "method": "gradcam++", "target": "cat"}
    at = open_page(INSPECT, query)
    assert_clean(at)
    assert not link_warnings(at)
    assert "plain" in at.selectbox(key="inspect_model").value
    assert at.selectbox(key="inspect_method").value == "gradcam++"
    assert at.selectbox(key="inspect_target").value == "cat"
    assert any("Grad-CAM++" in c and "of **cat**" in c for c in at.caption.values)
    link = copied_link(at)
    assert link["model"] == ["resnet20_plain_cifar10"] and link["method"] == ["gradcam++"]
    assert link["target"] == ["cat"] and link["image"] == ["astronaut"]
    again = open_page(INSPECT, {k: v if len(v) > 1 else v[0] for k, v in link.items()})
    assert_clean(again)
    for key in ("inspect_model", "inspect_method", "inspect_target"):
        assert again.selectbox(key=key).value == at.selectbox(key=key).value, key
    assert again.multiselect(key="inspect_gallery").value == ["astronaut"]


def test_inspect_link_follows_the_users_choice(app_env):
    at = open_page(INSPECT)
    assert "method" not in at.query_params and "target" not in at.query_params  # the defaults
    at.selectbox(key="inspect_method").set_value("gradcam").run()
    at.selectbox(key="inspect_target").set_value("ship").run()
    assert_clean(at)
    assert at.query_params["method"] == "gradcam" and at.query_params["target"] == "ship"
    at.selectbox(key="inspect_method").set_value("abn").run()  # one map for every class
    assert "method" not in at.query_params and "target" not in at.query_params  # defaults again


def test_inspect_link_with_unknown_values_warns_and_falls_back(app_env):
    at = open_page(INSPECT, {"method": "no-such-method", "target": "zebra"})
    assert_clean(at)
    warnings = "\n".join(link_warnings(at))
    assert "'no-such-method'" in warnings and "?method=" in warnings
    assert "'zebra'" in warnings and "?target=" in warnings
    assert at.selectbox(key="inspect_method").value == "abn"  # the ABN model's own map
    assert at.selectbox(key="inspect_target").value == "predicted class"
    assert "method" not in at.query_params and "target" not in at.query_params


# ----------------------------------------------------------------------------- Compare, Scorecard


@pytest.mark.parametrize(("page", "key"), [(COMPARE, "cmp"), (SCORECARD, "sc")])
def test_methods_travel_in_the_link(app_env, page, key):
    at = open_page(page, {"method": ["layercam", "gradcam", "bogus"]})
    assert not at.exception, [e.value for e in at.exception]
    assert any("'bogus'" in w and "?method=" in w for w in link_warnings(at))
    assert at.multiselect(key=f"{key}_family").value == ["layercam", "gradcam"]
    assert copied_link(at)["method"] == ["layercam", "gradcam"]
    at.multiselect(key=f"{key}_family").set_value([]).run()
    assert at.query_params["method"] in ("none", ["none"])  # an empty choice is not the default
    empty = open_page(page, {"method": "none"})
    assert empty.multiselect(key=f"{key}_family").value == []
    plain = open_page(page)  # no link: the page's default methods, and no parameter
    assert plain.multiselect(key=f"{key}_family").value == ["gradcam", "gradcam++"]
    assert "method" not in plain.query_params


def test_compare_target_travels_in_the_link(app_env):
    at = open_page(COMPARE, {"target": "each-model"})
    assert_clean(at)
    assert at.selectbox(key="cmp_target").value == "each model's own prediction"
    at.selectbox(key="cmp_target").set_value("truck").run()
    assert at.query_params["target"] == "truck" and copied_link(at)["target"] == ["truck"]
    bad = open_page(COMPARE, {"target": "unicorn"})
    assert any("'unicorn'" in w and "?target=" in w for w in link_warnings(bad))
    assert bad.selectbox(key="cmp_target").value.startswith("the ABN model's prediction")


# ----------------------------------------------------------------------------- Imagenette


def write_tiny_imagenette(root: Path, per_class: int = 2) -> None:
    rng = np.random.default_rng(1)
    for c, synset in enumerate(IMAGENETTE_CLASSES):
        folder = root / "imagenette2-160" / "val" / synset
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((40, 40, 3), 20 * c, np.uint8) + rng.integers(0, 40, (40, 40, 3))
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.JPEG")


@pytest.fixture(scope="module")
def two_galleries(tmp_path_factory):
    """Models of CIFAR-10 (32 px) and Imagenette (64 px, the default), a second folder that
    adds a larger CIFAR-10 ABN (which becomes the default), and data for both galleries."""
    first = tmp_path_factory.mktemp("assets-before")
    make_checkpoint(first, "abn")
    names = list(IMAGENETTE_CLASSES.values())
    make_checkpoint(first, "abn", "imagenette", class_names=names, input_size=(64, 64))
    later = tmp_path_factory.mktemp("assets-later")
    for f in first.iterdir():
        shutil.copy(f, later / f.name)
    big = make_checkpoint(tmp_path_factory.mktemp("big"), "abn", input_size=(96, 96))
    shutil.copy(big, later / "resnet20_abn_cifar10_96px.safetensors")
    data = write_tiny_cifar(tmp_path_factory.mktemp("data"), per_class=2)
    write_tiny_imagenette(data)
    return first, later, data


def test_an_imagenette_link_reopens_on_imagenette(two_galleries, monkeypatch):
    first, later, data = two_galleries
    monkeypatch.setenv("ABN_DATA_ROOT", str(data))
    monkeypatch.setenv("ABN_ASSETS_DIR", str(first))
    at = open_page(INSPECT)
    assert "imagenette" in at.selectbox(key="inspect_model").value  # the default
    gallery = at.multiselect(key="inspect_gallery")
    chosen = gallery.options[3]
    assert chosen.startswith("val #")
    gallery.set_value([chosen]).run()
    assert_clean(at)
    link = copied_link(at)
    assert link["model"] == ["resnet20_abn_imagenette"]  # named even as the default
    # Later a larger CIFAR-10 model ships and becomes the default: the link still holds.
    monkeypatch.setenv("ABN_ASSETS_DIR", str(later))
    assert "cifar10" in open_page(INSPECT).selectbox(key="inspect_model").value
    again = open_page(INSPECT, {k: v[0] for k, v in link.items()})
    assert_clean(again)
    assert not link_warnings(again)  # no "Not in this gallery"
    assert "imagenette" in again.selectbox(key="inspect_model").value
    assert again.multiselect(key="inspect_gallery").value == [chosen]
    bare = open_page(INSPECT, {"image": chosen})  # without the model: another gallery
    assert any("Not in this gallery" in w for w in link_warnings(bare))
