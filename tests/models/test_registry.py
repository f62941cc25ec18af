"""Registry: every backbone × variant builds, names and options are checked."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import abn.models
from abn.models import (
    create,
    default_options,
    get_entry,
    list_models,
    list_variants,
    model_options,
    register_backbone,
    registry,
)

PARAMETER_COUNTS = {  # structural checks from the reference implementation (issue #2)
    ("resnet20", 10): 479_150,
    ("resnet110", 10): 2_999_726,
    ("resnet50", 1000): 43_584_866,
    ("resnet18", 10): 19_581_726,
}


@pytest.mark.parametrize(("name", "classes"), list(PARAMETER_COUNTS))
def test_abn_parameter_counts_match_reference(name, classes):
    model = create(name, "abn", num_classes=classes)
    assert sum(p.numel() for p in model.parameters()) == PARAMETER_COUNTS[name, classes]


def test_listing_contains_every_family():
    names = list_models()
    for expected in [
        "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
        "wrn28_10", "densenet_bc100_12", "resnext29_8x64d",
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "se_resnet50", "se_resnet152", "vgg16_bn",
    ]:  # fmt: skip
        assert expected in names
    assert list_models("resnet1*", family="cifar") == ["resnet110"]
    assert set(list_variants()) == {"abn", "plain", "cam", "abn_multitask", "plain_multitask"}


def test_unknown_name_lists_valid_ones():
    with pytest.raises(KeyError) as err:
        create("resnet21")
    assert "resnet20" in str(err.value) and "Available" in str(err.value)


def test_unknown_variant_and_option_are_refused():
    with pytest.raises(KeyError, match="variant"):
        create("resnet20", variant="fancy")
    with pytest.raises(TypeError, match="widen_factor"):
        create("resnet20", widen_factor=3)
    with pytest.raises(ValueError, match="mechanism"):
        create("resnet20", mechanism="add")
    with pytest.raises(ValueError, match="map_kernel"):
        create("resnet20", map_kernel=2)


def test_spec_records_every_constructor_argument():
    model = create("wrn28_4", "abn", num_classes=7, mechanism="eq1", drop_rate=0.3)
    assert model.spec.name == "wrn28_4" and model.spec.num_classes == 7
    assert model.spec.kwargs == {"mechanism": "eq1", "drop_rate": 0.3, "widen_factor": 4,
                                 "map_kernel": 3}  # fmt: skip
    assert model.mechanism == "multiply"
    assert create("resnet18", "cam", num_classes=2).spec.kwargs == {
        "stem": "imagenet", "structure": "paper"}  # fmt: skip
    assert create("resnet20", "plain", num_classes=2).spec.kwargs == {}


@pytest.mark.parametrize("variant", ["abn", "plain", "cam", "abn_multitask", "plain_multitask"])
def test_spec_names_each_option_the_model_takes(backbone_name, variant):
    spec = create_on_meta(backbone_name, variant).spec
    assert set(spec.kwargs) == model_options(backbone_name, variant)
    assert spec.kwargs == default_options(backbone_name, variant)


def create_on_meta(name: str, variant: str = "abn", **kwargs):
    """A model with no storage behind its weights, for structure and shape checks."""
    with torch.device("meta"):
        return create(name, variant, num_classes=3, **kwargs)


@pytest.mark.slow
def test_backbones_register_by_importing_their_family_module():
    """Every module under abn/models that registers backbones is imported by ``abn.models``,
    so a fresh interpreter lists them all (no hand-kept list of families)."""
    families = sorted(
        f"abn.models.{p.stem}"
        for p in Path(abn.models.__file__).parent.glob("*.py")
        if "@register_backbone(" in p.read_text()
    )
    code = (
        "import abn.models as m; "
        "print(sorted({m.get_entry(n).builder.__module__ for n in m.list_models()}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)  # fmt: skip
    assert done.stdout.strip() == str(families)
    assert len(families) == 5 and not hasattr(registry, "_ensure_loaded")


def test_register_backbone_adds_a_family(monkeypatch):
    monkeypatch.setattr(registry, "_BACKBONES", dict(registry._BACKBONES))

    @register_backbone("tiny_test_net", family="cifar", input_size=(32, 32), map_stride=2)
    def tiny_test_net(width: int = 8):
        """A stand-in family's builder."""
        return get_entry("resnet20").builder()

    assert "tiny_test_net" in list_models()
    assert create("tiny_test_net", "plain", num_classes=2).spec.kwargs == {"width": 8}
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("tiny_test_net", family="cifar", input_size=(32, 32), map_stride=2)(
            tiny_test_net
        )


def test_abn_forward_at_the_default_input_size(backbone_name):
    """Each backbone's ABN at its registered input size (ImageNet-size ones at 64 px, as the
    map stride is what is checked): outputs, and the map at the registered ``map_stride``."""
    entry = get_entry(backbone_name)
    h, w = entry.input_size if entry.family == "cifar" else (64, 64)
    model = create(backbone_name, "abn", num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0)))
    cells = (h // entry.map_stride, w // entry.map_stride)
    assert out.logits.shape == out.att_logits.shape == (1, 3)
    assert out.attention.shape == (1, 1, *cells)
    assert out.class_maps.shape == (1, 3, *cells)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.attention).all()


def test_map_kernel_is_configurable():
    for k in (1, 3, 5):
        m = create("resnet20", "abn", num_classes=3, map_kernel=k)
        assert m.attention_branch.map_conv.kernel_size == (k, k)
    assert create("resnet20").attention_branch.map_conv.kernel_size == (3, 3)


def test_entry_metadata():
    assert get_entry("resnet110").family == "cifar"
    assert get_entry("resnet50").input_size == (224, 224)


def test_attention_map_is_14x14_at_224_for_imagenet_resnet():
    model = create("resnet18", "abn", num_classes=4).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert out.attention.shape == (1, 1, 14, 14)
    assert out.logits.shape == (1, 4)
