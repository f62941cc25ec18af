"""Registry: every backbone × variant builds, names and options are checked."""

import pytest
import torch

from abn.models import create, get_entry, list_models, list_variants

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


def test_spec_records_how_to_rebuild():
    model = create("wrn28_4", "abn", num_classes=7, mechanism="eq1", drop_rate=0.3)
    assert model.spec.name == "wrn28_4" and model.spec.num_classes == 7
    assert model.spec.kwargs == {"mechanism": "eq1", "drop_rate": 0.3}
    assert model.mechanism == "multiply"


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
