"""Dashboard, second edition (part C): Compare explains one common class by default, and
Inspect lets the user pick the method and the class it explains."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from abn.explain import get_method

from .conftest import REPO, assert_clean, make_checkpoint, run_page


def titles(*methods: str) -> set[str]:
    """The names the method picker shows."""
    return {get_method(m).title for m in methods}


def grid_targets(at: AppTest) -> list[str]:
    """The target each class-specific card of Compare's grid names."""
    grid = [c for c in at.caption.values if c.startswith("predicts")]
    found = [re.search(r" · target (.+?) · ", c) for c in grid]
    return [m.group(1) for m in found if m]


def grid_predictions(at: AppTest) -> list[str]:
    grid = [c for c in at.caption.values if c.startswith("predicts")]
    return [re.match(r"predicts \*\*(.+?)\*\*", c).group(1) for c in grid]


# ----------------------------------------------------------------------------- Compare


@pytest.fixture
def disagreeing_env(tmp_path, no_data, monkeypatch):
    """A tiny ABN trio whose plain baseline always predicts ``ship``: the models disagree."""
    import torch

    import abn

    for variant in ("abn", "plain", "cam"):
        path = make_checkpoint(tmp_path, variant)
    plain = abn.load(path.with_name("resnet20_plain_cifar10.safetensors"))
    head = [m for m in plain.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.bias[:] = -50.0
        head.bias[plain.card.class_names.index("ship")] = 50.0
    abn.save(plain, path.with_name("resnet20_plain_cifar10.safetensors"), plain.card)
    monkeypatch.setenv("ABN_ASSETS_DIR", str(tmp_path))
    monkeypatch.chdir(REPO)


def test_compare_explains_the_abn_models_prediction_in_every_map(app_env):
    at = run_page("pages/2_Compare.py")
    assert_clean(at)
    targets = grid_targets(at)
    assert len(targets) == 6 and len(set(targets)) == 1  # every map but M(x): one class
    note = next(c for c in at.caption.values if c.startswith("target: "))
    assert f"**{targets[0]}** (the ABN model's prediction) for every map" in note
    assert grid_predictions(at)[0] == targets[0]  # the first card is the ABN model's


def test_compare_common_target_holds_when_the_models_disagree(disagreeing_env):
    at = run_page("pages/2_Compare.py")
    assert_clean(at)
    predictions, targets = grid_predictions(at), grid_targets(at)
    assert "ship" in predictions and predictions[0] != "ship"  # the baseline disagrees
    assert set(targets) == {predictions[0]}  # yet every map explains the ABN model's class
    picker = at.selectbox(key="cmp_target")
    picker.set_value(next(o for o in picker.options if "own prediction" in o)).run()
    assert_clean(at)
    assert "ship" in grid_targets(at) and predictions[0] in grid_targets(at)


def test_compare_per_model_targets_say_the_classes_may_differ(app_env):
    at = run_page("pages/2_Compare.py")
    picker = at.selectbox(key="cmp_target")
    picker.set_value(next(o for o in picker.options if "own prediction" in o)).run()
    assert_clean(at)
    assert any("may explain different classes" in c for c in at.caption.values)
    assert not any(c.startswith("target: ") for c in at.caption.values)
    grid = [c for c in at.caption.values if c.startswith("predicts") and " · target " in c]
    assert grid
    for caption in grid:  # each map explains its own model's prediction
        own = re.match(r"predicts \*\*(.+?)\*\*", caption).group(1)
        assert f" · target {own} · " in caption


# ----------------------------------------------------------------------------- Inspect


def map_caption(at: AppTest) -> str:
    return next(c for c in at.caption.values if " · predicted **" in c)


def test_inspect_offers_the_methods_that_fit_the_model(app_env):
    at = run_page("pages/1_Inspect.py")
    assert_clean(at)
    method = at.selectbox(key="inspect_method")
    assert method.value == "abn"  # the ABN model's own attention map by default
    offered = set(method.options)
    assert titles("abn", "abn-class", "gradcam", "rise") <= offered
    assert not titles("cam") & offered
    assert at.selectbox(key="inspect_target").disabled  # M(x) is one map for every class
    assert any("one map for every class" in c for c in at.caption.values)
    picker = at.selectbox(key="inspect_model")
    picker.set_value(next(o for o in picker.options if "plain" in str(o))).run()
    assert_clean(at)
    method = at.selectbox(key="inspect_method")
    assert method.value == "gradcam" and not titles("abn", "abn-class", "cam") & set(method.options)
    assert not at.selectbox(key="inspect_target").disabled
    picker.set_value(next(o for o in picker.options if "cam" in str(o))).run()
    assert at.selectbox(key="inspect_method").value == "cam"


def test_inspect_method_and_target_change_the_map(app_env):
    at = run_page("pages/1_Inspect.py")
    first, image = map_caption(at), at.image[0].value
    assert first.startswith("ABN attention map M(x)")
    at.selectbox(key="inspect_method").set_value("gradcam").run()
    assert_clean(at)
    caption = map_caption(at)
    assert caption.startswith(get_method("gradcam").title) and at.image[0].value != image
    predicted = re.search(r"predicted \*\*(.+?)\*\*", caption).group(1)
    assert f"of **{predicted}**" in caption  # by default: the predicted class
    other = next(o for o in at.selectbox(key="inspect_target").options[1:] if o != predicted)
    before = at.image[0].value
    at.selectbox(key="inspect_target").set_value(other).run()
    assert_clean(at)
    assert f"{get_method('gradcam').title} of **{other}**" in map_caption(at)
    assert at.image[0].value != before


@pytest.mark.parametrize("method", ["abn", "eigencam"])
def test_class_agnostic_methods_take_no_target(method):
    """The methods whose target picker is off give the same map whatever the class."""
    import torch

    import abn
    from abn.explain import explain
    from app import compute

    torch.manual_seed(0)
    model = abn.create("resnet20", "abn", num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32)
    assert not compute.takes_target(method)
    assert torch.allclose(explain(model, x, method, 0).maps, explain(model, x, method, 3).maps)
    assert compute.takes_target("gradcam") and compute.takes_target("abn-class")
    assert not torch.allclose(
        explain(model, x, "gradcam", 0).maps, explain(model, x, "gradcam", 3).maps
    )
