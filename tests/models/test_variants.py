"""Every registered model: shapes, gradient flow, Eq. 1/Eq. 2, multi-task behaviour."""

import pytest
import torch

from abn.models import ModelOutput, attribute_probabilities, create, get_entry, list_models

from .conftest import HEAVY, input_for

K = 5


def _map_size(model, x):
    with torch.no_grad():
        return model.feature_extractor(x).shape[-2:]


@pytest.mark.parametrize("variant", ["abn", "plain", "cam"])
def test_output_shapes_every_model(backbone_name, variant):
    model = create(backbone_name, variant, num_classes=K).eval()
    x = input_for(backbone_name)
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (2, K)
    hw = out.features.shape[-2:]
    assert out.features.shape[0] == 2 and min(hw) >= 1
    if variant == "abn":
        assert out.att_logits.shape == (2, K)
        assert out.attention.shape == (2, 1, *hw)
        assert out.class_maps.shape == (2, K, *hw)
        assert out.attended_features.shape == out.features.shape
        assert out.attention.min() >= 0 and out.attention.max() <= 1
    elif variant == "cam":
        assert out.class_maps.shape[:2] == (2, K)
        torch.testing.assert_close(out.class_maps.mean(dim=(2, 3)), out.logits)
        assert out.att_logits is None and out.attention is None
    else:
        assert out.att_logits is None and out.attention is None and out.class_maps is None


def test_cifar_split_gives_16x16_maps():
    model = create("resnet56", "abn", num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32))
    assert out.attention.shape == (1, 1, 16, 16)
    assert out.logits.shape == (1, 10)


@pytest.mark.parametrize("name", [n for n in list_models() if n not in HEAVY])
def test_both_losses_reach_the_feature_extractor(name):
    torch.manual_seed(0)
    model = create(name, "abn", num_classes=K).train()
    x = input_for(name, batch=4)
    first = next(p for p in model.feature_extractor.parameters() if p.dim() == 4)
    grads = {}
    for branch in ("att_logits", "logits"):
        model.zero_grad()
        out = model(x)
        getattr(out, branch).sum().backward()
        grads[branch] = first.grad.clone()
        assert grads[branch].abs().sum() > 0, f"no gradient from {branch}"
    # The attention loss reaches the feature extractor through the attention branch only.
    assert not torch.allclose(grads["att_logits"], grads["logits"])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HEAVY))
def test_heavy_models_backpropagate(name):
    model = create(name, "abn", num_classes=K).train()
    out = model(input_for(name))
    (out.att_logits.sum() + out.logits.sum()).backward()
    assert all(p.grad is not None for p in model.attention_branch.parameters())
    assert next(model.feature_extractor.parameters()).grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "wrn28_4", "densenet_bc100_12"])
def test_eq1_and_eq2_behave_as_written(name):
    x = input_for(name)
    eq2 = create(name, "abn", num_classes=K).eval()
    eq1 = create(name, "abn", num_classes=K, mechanism="multiply").eval()
    eq1.load_state_dict(eq2.state_dict())
    hw = _map_size(eq2, x)
    zeros, ones = torch.zeros(2, 1, *hw), torch.ones(2, 1, *hw)
    with torch.no_grad():
        g = eq2(x).features
        assert torch.equal(eq2(x, attention=zeros).attended_features, g)  # (1 + 0)·g = g
        assert torch.equal(eq1(x, attention=zeros).attended_features, torch.zeros_like(g))
        torch.testing.assert_close(eq2(x, attention=ones).attended_features, 2 * g)
        torch.testing.assert_close(eq1(x, attention=ones).attended_features, g)
        out = eq2(x)
        torch.testing.assert_close(out.attended_features, g * (1 + out.attention))
        out1 = eq1(x)
        torch.testing.assert_close(out1.attended_features, g * out1.attention)
        # With the map forced to zero, Eq. 2's perception equals the plain path on g(x).
        torch.testing.assert_close(eq2(x, attention=zeros).logits, eq2.perception_branch(g))


def test_attention_override_shape_is_checked():
    model = create("resnet20", "abn", num_classes=3).eval()
    with pytest.raises(ValueError, match="does not fit"):
        model(torch.randn(1, 3, 32, 32), attention=torch.zeros(1, 1, 8, 8))


# --- CAM as the paper builds it (Sec. 4.2) --------------------------------------------------

CAM_CELLS = {"cifar": {32: 16}, "imagenet": {224: 14, 160: 10}}  # input px -> map cells
CELLS_AT = {"densenet_bc100_12": {32: 8}}  # dense block 3 has no stride: 8×8 like its ABN map


def test_cam_maps_have_the_attention_maps_resolution(backbone_name):
    """CAM's maps equal the ABN attention map in size for the same backbone and input; the
    native structure (format-1 checkpoints) gives half of it (DenseNet: the same)."""
    cells_at = CELLS_AT.get(backbone_name, CAM_CELLS[get_entry(backbone_name).family])
    with torch.device("meta"):  # shapes only: no storage, no arithmetic
        abn_model = create(backbone_name, "abn", num_classes=3).eval()
        paper = create(backbone_name, "cam", num_classes=3).eval()
        native = create(backbone_name, "cam", num_classes=3, structure="native").eval()
        for px, cells in cells_at.items():
            x = torch.empty(1, 3, px, px)
            assert abn_model(x).attention.shape[-2:] == (cells, cells), px
            assert paper(x).class_maps.shape == (1, 3, cells, cells), px
            half = cells if backbone_name in CELLS_AT else cells // 2
            assert native(x).class_maps.shape == (1, 3, half, half), px
    assert paper.structure == "paper" and paper.spec.kwargs["structure"] == "paper"


def test_paper_cam_computes_16x16_maps_on_cifar():
    model = create("resnet20", "cam", num_classes=4).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.class_maps.shape == (2, 4, 16, 16)
    torch.testing.assert_close(out.class_maps.mean(dim=(2, 3)), out.logits)


def test_vgg_cam_is_zhou_et_als_3x3_conv_with_1024_units():
    with torch.device("meta"):
        model = create("vgg16_bn", "cam", num_classes=3)
    conv = model.perception_branch.body[0]
    assert isinstance(conv, torch.nn.Conv2d) and conv.kernel_size == (3, 3)
    assert conv.out_channels == 1024 and model.perception_branch.head.conv.in_channels == 1024


def test_unknown_cam_structure_is_refused():
    with pytest.raises(ValueError, match="unknown CAM structure 'zhou'.*paper, native"):
        create("resnet20", "cam", num_classes=3, structure="zhou")


# --- multi-task ----------------------------------------------------------------------------

T = 6


@pytest.fixture(scope="module")
def multitask():
    torch.manual_seed(1)
    return create("resnet18", "abn_multitask", num_classes=T, stem="small").eval()


def test_multitask_shapes(multitask):
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        out = multitask(x)
    hw = out.features.shape[-2:]
    assert out.logits.shape == (3, T, 2)
    assert out.att_logits.shape == (3, T)
    assert out.attention.shape == (3, T, *hw) and hw == (16, 16)
    assert attribute_probabilities(out).shape == (3, T)
    plain = create("resnet18", "plain_multitask", num_classes=T, stem="small").eval()
    with torch.no_grad():
        pout = plain(x)
    assert pout.logits.shape == (3, T)
    assert ((attribute_probabilities(pout) >= 0) & (attribute_probabilities(pout) <= 1)).all()


def test_multitask_batched_equals_looped(multitask):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        batched = multitask(x).logits
        looped = multitask.perceive_looped(x)
        multitask.chunk_size = 5  # B·T = 12 inputs, in chunks of 5
        try:
            chunked = multitask(x).logits
        finally:
            multitask.chunk_size = 0
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batched, chunked, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_map_t_weights_the_perception_input_for_t(multitask):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = multitask(x)
        maps = out.attention
        for t in range(T):
            # Run task t alone with its own map in every slot: same logits as in the full pass.
            forced = maps[:, t : t + 1].expand_as(maps).contiguous()
            alone = multitask(x, attention=forced).logits[:, t]
            torch.testing.assert_close(alone, out.logits[:, t], rtol=1e-5, atol=1e-5)
            # Swap in another task's map: the output for t changes.
            other = maps[:, (t + 1) % T : (t + 1) % T + 1].expand_as(maps).contiguous()
            assert not torch.allclose(multitask(x, attention=other).logits[:, t], out.logits[:, t])
        subset = multitask(x, tasks=[4, 1]).logits
        torch.testing.assert_close(subset, out.logits[:, [4, 1]], rtol=1e-5, atol=1e-5)


def test_multitask_gradient_flow_from_both_losses():
    model = create("resnet20", "abn_multitask", num_classes=4).train()
    x = torch.randn(4, 3, 32, 32)
    first = model.feature_extractor[0][0].weight
    for field in ("att_logits", "logits"):
        model.zero_grad()
        getattr(model(x), field).sum().backward()
        assert first.grad.abs().sum() > 0
    model.zero_grad()
    model(x).att_logits.sum().backward()
    assert all(p.grad is None for p in model.perception_branch.parameters())
