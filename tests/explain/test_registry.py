"""The method registry: listing, display names, names in any case, in the library and the CLIs."""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys

import pytest
import torch
from PIL import Image

from abn.explain import Explainer, get_method, list_methods, register_method
from abn.explain.cli import add_explain_parser


def test_every_method_is_listed_with_display_names_and_a_description():
    names = list_methods()
    assert names[:3] == ["abn", "abn-class", "cam"]  # registration order
    assert {"gradcam", "scorecam", "rise", "integrated-gradients", "occlusion"} <= set(names)
    assert len(set(names)) == len(names)
    for name in names:
        cls = get_method(name)
        assert cls.name == name and cls.title and cls.short and cls.description, name
        assert "\n" not in cls.description and len(cls.description) < 120, name
    titles = [get_method(n).title for n in names]
    assert len(set(titles)) == len(titles)
    post_hoc = {n for n in names if get_method(n).post_hoc}
    assert post_hoc == set(names) - {"abn", "abn-class", "cam"}


def test_list_methods_filters_by_model(make_model):
    plain = list_methods(make_model("resnet20", "plain"))
    assert "abn" not in plain and "cam" not in plain
    assert {"rise", "integrated-gradients", "occlusion"} <= set(plain)
    assert "abn" in list_methods(make_model("resnet20", "abn"))


@pytest.mark.parametrize(
    ("asked", "name"),
    [("GradCAM", "gradcam"), ("gradcampp", "gradcam++"), ("Grad-CAM++", "gradcam++"),
     ("RISE", "rise"), ("integrated_gradients", "integrated-gradients"),
     ("IntegratedGradients", "integrated-gradients"), ("ig", "integrated-gradients"),
     ("Occlusion", "occlusion"), ("ABN_Class", "abn-class")],
)  # fmt: skip
def test_names_in_any_case_and_aliases(asked, name):
    assert get_method(asked).name == name


def test_unknown_and_duplicate_names_are_refused():
    with pytest.raises(KeyError, match="unknown explanation method 'lime'.*rise"):
        get_method("lime")

    class Twin(Explainer):
        name = "Grad_CAM"
        title = "Twin"
        description = "A second Grad-CAM."

    with pytest.raises(ValueError, match="already registered"):
        register_method(Twin)
    Twin.name, Twin.aliases = "twin", ("IG",)
    with pytest.raises(ValueError, match="already registered"):
        register_method(Twin)
    Twin.aliases, Twin.description = (), ""
    with pytest.raises(ValueError, match="description"):
        register_method(Twin)
    assert "twin" not in list_methods()


def _explain_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="abn")
    add_explain_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_explain_cli_takes_names_in_any_case(tmp_path, checkpoint, capsys, monkeypatch):
    from abn.explain.rise import RiseExplainer

    monkeypatch.setattr(RiseExplainer, "num_masks", 16)
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "red.png")
    out = tmp_path / "out"
    code = _explain_cli(
        ["explain", "--model", str(checkpoint), "--images", str(tmp_path / "red.png"),
         "--methods", "GradCAM, RISE,integrated_gradients,Occlusion,gradcam", "--out", str(out)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    with open(out / "predictions.csv") as f:
        methods = [r["method"] for r in csv.DictReader(f)]
    assert methods == ["gradcam", "rise", "integrated-gradients", "occlusion"]
    for method in methods:
        assert (out / "overlays" / f"red_{method.replace('+', 'p')}.png").is_file()
    code = _explain_cli(["explain", "--model", str(checkpoint), "--images",
                         str(tmp_path / "red.png"), "--methods", "Lime,CAM", "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Lime, CAM cannot explain" in err and "rise" in err


def test_scorecard_takes_names_in_any_case(make_model):
    from abn.metrics.cli import parse_methods

    models = {"model": make_model("resnet20", "abn"), "baseline": make_model("resnet20", "plain")}
    entries = parse_methods("ABN, GradCAM,RISE@model,IntegratedGradients,occlusion", models)
    assert [(e.method, e.model is models["model"]) for e in entries] == [
        ("abn", True), ("gradcam", False), ("rise", True), ("integrated-gradients", False),
        ("occlusion", False),
    ]  # fmt: skip
    assert entries[2].label == "rise (abn)"
    with pytest.raises(ValueError, match="unknown explanation method 'lime'"):
        parse_methods("lime", models)
    with pytest.raises(ValueError, match="needs --cam"):
        parse_methods("CAM", models)


@pytest.mark.slow
def test_optional_libraries_load_only_for_their_methods():
    """pytorch-grad-cam (scikit-learn, OpenCV) and Captum (matplotlib) cost seconds to import:
    ABN's own maps and RISE never load them; each family loads only its own."""
    script = (
        "import sys, torch\n"
        "from abn.explain import explain\n"
        "from abn.models import create\n"
        "model = create('resnet20', variant='abn', num_classes=3).eval()\n"
        "x = torch.rand(1, 3, 16, 16)\n"
        "def loaded():\n"
        "    return ['pytorch_grad_cam' in sys.modules, 'captum' in sys.modules]\n"
        "explain(model, x, 'abn'); print(loaded())\n"
        "from abn.explain import rise; rise.RiseExplainer.num_masks = 8\n"
        "explain(model, x, 'rise'); print(loaded())\n"
        "explain(model, x, 'occlusion'); print(loaded())\n"
        "explain(model, x, 'gradcam'); print(loaded())\n"
        "from abn.explain import get_method\n"
        "print(get_method('gradcam').cam_class.__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=180
    ).stdout.splitlines()
    assert out == ["[False, False]", "[False, False]", "[False, True]", "[True, True]",
                   "pytorch_grad_cam.grad_cam"]  # fmt: skip


def test_engine_groups_by_backend_never_by_method(make_model):
    """A new backend plugs in without touching the engine: a method whose map is the image's
    red channel, computed by a backend of its own."""
    from abn.explain import Backend, run
    from abn.explain.core import Computed

    calls = []

    class RedBackend(Backend):
        def compute(self, group, batch):
            calls.append([e.name for e in group])
            return Computed({e.name: batch.images[:, 0] for e in group}, {"red": 0.0})

    class Red(Explainer):
        name, title, description, backend = "red", "Red", "The red channel.", RedBackend()

    model = make_model("resnet20", "plain")
    x = torch.randn(2, 3, 8, 8)
    got = run([Red(model), get_method("gradcam")(model)], x, target=1)
    assert calls == [["red"]] and got["red"].raw.equal(x[:, 0])
    assert got["red"].targets.tolist() == [1, 1] and got["gradcam"].maps.shape == (2, 8, 8)
