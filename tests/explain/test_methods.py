"""Every method × model family: shapes, ranges, and agreement with hand computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from abn.explain import explain, explain_many, get_explainer, get_method, list_methods

FAST = [m for m in list_methods() if not get_method(m).slow]
FAMILIES = [
    ("resnet20", {}, 16),
    ("resnet18", {"stem": "small"}, 16),
    ("densenet_bc100_12", {"growth_rate": 2}, 16),
    ("wrn28_4", {"widen_factor": 1}, 16),
    ("vgg16_bn", {"hidden": 16}, 64),
]


@pytest.mark.parametrize("variant", ["abn", "plain", "cam"])
@pytest.mark.parametrize(("name", "kw", "size"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_every_method_gives_maps_in_range(name, kw, size, variant, make_model):
    model = make_model(name, variant, **kw)
    x = torch.randn(2, 3, size, size)
    methods = [m for m in FAST if m in list_methods(model)]
    assert ("abn" in methods) == (variant == "abn")
    assert ("cam" in methods) == (variant == "cam")
    for method, res in explain_many(model, x, methods).items():
        assert res.maps.shape == (2, size, size), method
        assert res.raw.dim() == 3 and res.raw.shape[0] == 2, method
        assert res.maps.min() >= 0 and res.maps.max() <= 1, method
        assert torch.isfinite(res.maps).all(), method
        assert res.probabilities.shape == (2, 4)
        assert torch.equal(res.predicted, res.probabilities.argmax(1))
        assert torch.equal(res.targets, res.predicted)  # target=None → predicted class


@pytest.mark.parametrize("variant", ["abn", "plain"])
@pytest.mark.parametrize(("name", "kw", "size"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_gradcam_default_layer(name, kw, size, variant, make_model):
    """Grad-CAM explains the perception branch's last stage; VGG's perception body is only
    pool5, so there it explains the branch's input (conv5_3's 14×14, as fine as ABN's map)
    instead of 2× coarser."""
    model = make_model(name, variant, **kw)
    x = torch.randn(1, 3, size, size)
    res = explain(model, x, "gradcam")
    with torch.no_grad():
        g = model.feature_extractor(x)
        explained = g if name == "vgg16_bn" else model.perception_branch.body(g)
    assert tuple(res.raw.shape[-2:]) == tuple(explained.shape[-2:])
    # on VGG the branch's input: g'(x) = (1 + M)·g(x) in ABN, after the map is applied
    layer = get_explainer("gradcam", model).layer_name
    assert layer == ("perception_branch.entry" if name == "vgg16_bn" else "perception_branch.body")


@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_slow_methods_once(method, make_model):
    model = make_model("resnet20", "plain")
    res = explain(model, torch.randn(1, 3, 8, 8), method, target=2)
    assert res.maps.shape == (1, 8, 8) and res.raw.shape == (1, 2, 2)
    assert res.maps.min() >= 0 and res.maps.max() <= 1
    assert res.targets.tolist() == [2]


class _Logits(torch.nn.Module):
    """The perception branch's logits, as pytorch-grad-cam expects a classifier to return."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).logits


@pytest.mark.parametrize(
    "method", ["gradcam++", "xgradcam", "layercam", "hirescam", "eigencam", "scorecam",
               "ablationcam"],
)  # fmt: skip
def test_family_maps_are_pytorch_grad_cams_for_the_asked_target(method, make_model, monkeypatch):
    """Each method is the library's own class on the default layer with the asked class as
    target (the maps at that layer's resolution, as pytorch-grad-cam scales them). Score-CAM's
    fast masked passes (bf16) are compared with the library in test_scorecam_fast.py."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from abn.explain.gradcam import ScoreCAMExplainer

    monkeypatch.setattr(ScoreCAMExplainer, "fast", False)
    model = make_model("resnet20", "plain")
    x, target = torch.randn(2, 3, 8, 8), [2, 0]
    res = explain(model, x, method, target=target)
    cam_class = get_method(method).cam_class
    low_res = type("LowRes", (cam_class,), {"get_target_width_height": lambda self, _: (2, 2)})
    with low_res(_Logits(model), [model.perception_branch.body]) as cam:
        theirs = cam(x, targets=[ClassifierOutputTarget(t) for t in target])
    torch.testing.assert_close(res.raw, torch.as_tensor(theirs), atol=1e-4, rtol=1e-4)
    assert res.targets.tolist() == target
    if method != "eigencam":  # the one method here that does not depend on the target
        other = explain(model, x, method, target=[1, 3])
        assert not torch.allclose(other.raw, res.raw, atol=1e-3)


def test_abn_map_is_the_forward_pass_map(images, make_model):
    model = make_model()
    res = explain(model, images, "abn")
    with torch.no_grad():
        out = model(images)
    assert torch.equal(res.raw, out.attention[:, 0])
    up = F.interpolate(out.attention, size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(res.maps, up.clamp(0, 1))
    assert torch.equal(res.scores, out.logits.gather(1, res.targets[:, None])[:, 0])
    torch.testing.assert_close(res.probabilities, out.logits.softmax(1))


def test_abn_class_is_the_attention_branch_response(images, make_model):
    model = make_model()
    res = explain(model, images, "abn-class", target=[0, 1, 3])
    with torch.no_grad():
        maps = model(images).class_maps
    assert torch.equal(res.raw, maps[[0, 1, 2], [0, 1, 3]])
    raw = res.raw
    low = (raw - raw.amin((1, 2), keepdim=True)) / (
        raw.amax((1, 2), keepdim=True) - raw.amin((1, 2), keepdim=True)
    )
    up = F.interpolate(low[:, None], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(res.maps, up)


def test_cam_equals_weighted_sum_by_hand(images, make_model):
    model = make_model("resnet20", "cam")
    res = explain(model, images, "cam", target=1)
    with torch.no_grad():
        feats = model.perception_branch.body(model.feature_extractor(images))
    conv = model.perception_branch.head.conv
    w, b = conv.weight[1, :, 0, 0], conv.bias[1]
    by_hand = (w[None, :, None, None] * feats).sum(1) + b
    torch.testing.assert_close(res.raw, by_hand, atol=1e-5, rtol=1e-5)
    low = (by_hand - by_hand.amin((1, 2), keepdim=True)) / (
        by_hand.amax((1, 2), keepdim=True) - by_hand.amin((1, 2), keepdim=True)
    )
    up = F.interpolate(low[:, None], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(res.maps, up, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["plain", "abn"])
def test_gradcam_agrees_with_gradient_by_hand(images, variant, make_model):
    model = make_model("resnet20", variant)
    target = [0, 2, 3]
    res = explain(model, images, "gradcam", target=target)
    acts = {}
    handle = model.perception_branch.body.register_forward_hook(
        lambda m, i, o: acts.__setitem__("a", o)
    )
    try:
        logits = model(images).logits
    finally:
        handle.remove()
    score = logits[torch.arange(3), target].sum()
    (grads,) = torch.autograd.grad(score, acts["a"])
    weights = grads.mean((2, 3), keepdim=True)
    cam = (weights * acts["a"]).sum(1).relu().detach()
    cam = cam - cam.amin((1, 2), keepdim=True)
    cam = cam / (cam.amax((1, 2), keepdim=True) + 1e-7)
    torch.testing.assert_close(res.raw, cam, atol=1e-4, rtol=1e-4)
    assert all(p.grad is None for p in model.parameters())  # shared model untouched


def test_shared_pass_equals_separate_calls(images, make_model):
    model = make_model()
    methods = ["abn", "gradcam", "gradcam++", "layercam", "eigencam"]
    together = explain_many(model, images, methods)
    for method in methods:
        alone = explain(model, images, method)
        torch.testing.assert_close(together[method].maps, alone.maps)
        torch.testing.assert_close(together[method].raw, alone.raw)


def test_batch_size_chunks_give_the_same_maps(make_model):
    model = make_model()
    x = torch.randn(5, 3, 16, 16)
    whole = explain(model, x, "gradcam", target=[0, 1, 2, 3, 0])
    chunked = explain(model, x, "gradcam", target=[0, 1, 2, 3, 0], batch_size=2)
    torch.testing.assert_close(whole.maps, chunked.maps)
    assert chunked.targets.tolist() == [0, 1, 2, 3, 0]


def test_target_layer_override_by_name_and_module(images, make_model):
    model = make_model("resnet20", "plain")
    by_name = explain(model, images, "gradcam", target_layer="feature_extractor.2")
    by_module = explain(model, images, "gradcam", target_layer=model.feature_extractor[2])
    default = explain(model, images, "gradcam")
    assert by_name.raw.shape == (3, 8, 8) and default.raw.shape == (3, 4, 4)
    torch.testing.assert_close(by_name.raw, by_module.raw)
    with pytest.raises(ValueError, match="no layer"):
        explain(model, images, "gradcam", target_layer="nope.layer")


def test_multitask_target_by_name(make_model):
    names = ["Smiling", "Eyeglasses", "Bangs"]
    model = make_model("resnet20", "abn_multitask", num_classes=3)
    model.card = type("Card", (), {"class_names": names})()
    face = torch.randn(2, 3, 16, 16)
    res = explain(model, face, method="abn", target="Smiling")
    by_index = explain(model, face, method="abn", target=0)
    with torch.no_grad():
        out = model(face)
    assert res.targets.tolist() == [0, 0]
    assert torch.equal(res.raw, out.attention[:, 0]) and torch.equal(res.raw, by_index.raw)
    torch.testing.assert_close(res.scores, out.logits[:, 0, 1])
    grad = explain(model, face, "gradcam", target=["bangs", "Eyeglasses"])
    assert grad.targets.tolist() == [2, 1] and grad.maps.shape == (2, 16, 16)
    torch.testing.assert_close(grad.scores, out.logits[[0, 1], [2, 1], 1])
    plain = make_model("resnet20", "plain_multitask", num_classes=3)
    res = explain(plain, face, "gradcam", target="Eyeglasses", class_names=names)
    with torch.no_grad():
        torch.testing.assert_close(res.scores, plain(face).logits[:, 1])
    with pytest.raises(ValueError, match="unknown class"):
        explain(plain, face, "gradcam", target="Beard", class_names=names)


def test_multitask_gradcam_ignores_the_training_chunk_size(make_model):
    """Chunked perception passes call the target layer once per chunk; explanations run them as
    one batch (pytorch-grad-cam reads one activation per layer), and keep the model's setting."""
    model = make_model("resnet20", "abn_multitask", num_classes=3)
    faces = torch.randn(5, 3, 16, 16)
    whole = explain(model, faces, "gradcam", target=1)
    model.chunk_size = 2
    chunked = explain(model, faces, "gradcam", target=1)
    assert model.chunk_size == 2
    torch.testing.assert_close(chunked.raw, whole.raw)
    torch.testing.assert_close(chunked.scores, whole.scores)


def test_a_changed_setting_is_explained_as_changed(images, make_model):
    """Pooled replicas follow the model: after switching Eq. 2 to Eq. 1, Grad-CAM explains the
    model as it is now (as the forward-pass methods do), not a stale copy."""
    import copy

    model = make_model("resnet20", "abn")
    before = explain(model, images, "gradcam", target=1)
    model.mechanism = "multiply"
    after = explain(model, images, "gradcam", target=1)
    fresh = explain(copy.deepcopy(model), images, "gradcam", target=1)
    torch.testing.assert_close(after.raw, fresh.raw)
    torch.testing.assert_close(after.scores, fresh.scores)
    assert not torch.allclose(after.scores, before.scores)


def test_errors_are_clear(images, make_model):
    model = make_model("resnet20", "plain")
    with pytest.raises(ValueError, match="not an ABN"):
        explain(model, images, "abn")
    with pytest.raises(KeyError, match="unknown explanation method"):
        explain(model, images, "gradcam-9000")
    with pytest.raises(ValueError, match="out of range"):
        explain(model, images, "gradcam", target=7)
    with pytest.raises(ValueError, match="3 images"):
        explain(model, images, "gradcam", target=[0, 1])
    model.train()
    with pytest.raises(RuntimeError, match="eval mode"):
        explain(model, images, "gradcam")


def test_object_api_and_aliases(images, make_model):
    model = make_model()
    assert get_method("Grad-CAM++") is get_method("gradcam++")
    explainer = get_explainer("GradCAM", model)
    assert explainer.layer_name == "perception_branch.body"
    res = explainer(images[0], target=1)
    assert res.maps.shape == (1, 16, 16) and res.method == "gradcam"


@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_channel_loop_methods_print_no_progress_bars(method, make_model, capfd):
    model = make_model("resnet20", "plain", num_classes=4)
    explain(model, torch.randn(2, 3, 16, 16), method)
    assert capfd.readouterr().err == ""  # pytorch-grad-cam's per-batch tqdm bars are silenced
