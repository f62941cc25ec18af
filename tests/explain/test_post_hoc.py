"""RISE, Integrated Gradients and Occlusion: shapes, ranges, determinism, planted signals."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from abn.explain import explain, explain_many, get_explainer
from abn.explain.attribution import IntegratedGradientsExplainer, OcclusionExplainer
from abn.explain.rise import RiseExplainer, rise_masks
from abn.models.output import ModelOutput
from abn.models.variants import ModelBase, ModelSpec

NEW = ["rise", "integrated-gradients", "occlusion"]


@pytest.fixture
def cheap(monkeypatch):
    """Few masks and steps: the tests check the mechanics, not the estimate's quality."""
    monkeypatch.setattr(RiseExplainer, "num_masks", 24)
    monkeypatch.setattr(IntegratedGradientsExplainer, "steps", 4)
    monkeypatch.setattr(OcclusionExplainer, "window", 1 / 4)


class Planted(ModelBase):
    """Class 1's logit depends only on the top-left quadrant: ``k·(mean(x²) − 1)`` there."""

    def __init__(self, k: float = 8.0) -> None:
        super().__init__()
        self.spec = ModelSpec("planted", "plain", 2)
        self.k = nn.Parameter(torch.tensor(k))

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        one = self.k * (x[:, :, :h, :w].pow(2).mean((1, 2, 3)) - 1)
        return ModelOutput(logits=torch.stack([torch.zeros_like(one), one], 1))


def _mass_in_quadrant(maps: torch.Tensor) -> torch.Tensor:
    h, w = maps.shape[-2] // 2, maps.shape[-1] // 2
    return maps[:, :h, :w].sum((1, 2)) / maps.sum((1, 2))


@pytest.mark.parametrize("method", NEW)
def test_planted_signal_gets_most_of_the_map(method):
    """The quadrant is a quarter of the image and holds all the evidence."""
    model = Planted().eval()
    x = torch.randn(3, 3, 16, 16)
    explainer = get_explainer(method, model)
    if method == "rise":
        explainer.num_masks = 4000  # RISE's estimate is noisy; the planted model is cheap
    res = explainer(x, target=1)
    assert (_mass_in_quadrant(res.maps) > 0.5).all(), (method, _mass_in_quadrant(res.maps))
    inside, outside = res.maps[:, :8, :8].mean(), res.maps[:, 8:, :].mean()
    assert inside > 3 * outside, (method, inside, outside)


def test_integrated_gradients_is_exact_on_a_quadratic_score(cheap):
    """For f = k·mean(x²) over the quadrant and a 0 baseline, IG's attribution of x_i is
    k·x_i²/n exactly (the path integrand is linear); the map sums it over channels."""
    model = Planted(k=3.0).eval()
    x = torch.randn(2, 3, 8, 8)
    res = explain(model, x, "IntegratedGradients", target=1)
    by_hand = torch.zeros(2, 8, 8)
    by_hand[:, :4, :4] = (3.0 * x[:, :, :4, :4].pow(2) / (3 * 16)).sum(1)
    torch.testing.assert_close(res.raw, by_hand, atol=1e-5, rtol=1e-4)
    assert res.method == "integrated-gradients"


@pytest.mark.parametrize("variant", ["abn", "plain"])
def test_new_methods_give_maps_like_the_others(variant, make_model, cheap):
    model = make_model("resnet20", variant)
    x = torch.randn(2, 3, 16, 16)
    results = explain_many(model, x, ["gradcam", *NEW])
    for method in NEW:
        res = results[method]
        assert res.maps.shape == (2, 16, 16) and res.raw.shape == (2, 16, 16), method
        assert res.maps.min() >= 0 and res.maps.max() <= 1 and res.maps.max() > 0, method
        assert torch.isfinite(res.raw).all() and (res.raw >= 0).all(), method
        assert torch.equal(res.targets, results["gradcam"].targets)  # one forward pass
        assert res.seconds > 0
        alone = explain(model, x, method)
        torch.testing.assert_close(alone.maps, res.maps)
    assert all(p.grad is None for p in model.parameters())  # the shared model is untouched


@pytest.mark.parametrize("method", NEW)
def test_deterministic_and_target_dependent(method, make_model, cheap):
    model = make_model("resnet20", "plain")
    x = torch.randn(2, 3, 8, 8)
    first = explain(model, x, method, target=[1, 2])
    torch.manual_seed(123)  # the global generator does not matter: RISE seeds its own
    again = explain(model, x, method, target=[1, 2])
    assert torch.equal(first.raw, again.raw)
    other = explain(model, x, method, target=[3, 0])
    assert not torch.allclose(other.raw, first.raw)


def test_rise_seed_and_masks(make_model, cheap):
    model = make_model("resnet20", "plain")
    x = torch.randn(1, 3, 8, 8)
    explainer = get_explainer("rise", model)
    first = explainer(x, target=1)
    explainer.seed = 1
    assert not torch.equal(explainer(x, target=1).raw, first.raw)
    masks = rise_masks(50, (8, 12), 4, 0.5, torch.Generator().manual_seed(0))
    assert masks.shape == (50, 8, 12) and masks.min() >= 0 and masks.max() <= 1
    assert 0.35 < float(masks.mean()) < 0.65  # about p = 0.5 of the image kept


def test_rise_weights_masks_by_the_target_probability(make_model):
    """With one mask, RISE's saliency is P(target | x ⊙ M) · M / p (Petsiuk et al., Eq. 6)."""
    model = make_model("resnet20", "plain")
    x = torch.randn(1, 3, 8, 8)
    explainer = get_explainer("rise", model)
    explainer.num_masks, explainer.grid = 1, 4
    res = explainer(x, target=2)
    mask = rise_masks(1, (8, 8), 4, 0.5, torch.Generator().manual_seed(0))
    with torch.no_grad():
        p = model(x * mask[:, None]).logits.softmax(1)[0, 2]
    torch.testing.assert_close(res.raw, p * mask / 0.5)


def test_multitask_targets_are_attributes(make_model, cheap):
    model = make_model("resnet20", "abn_multitask", num_classes=3)
    x = torch.randn(2, 3, 16, 16)
    for method in NEW:
        res = explain(model, x, method, target=[2, 0])
        with torch.no_grad():
            present = model(x).logits[..., 1]
        assert res.maps.shape == (2, 16, 16) and res.targets.tolist() == [2, 0]
        torch.testing.assert_close(res.scores, present[[0, 1], [2, 0]])


def test_threads_get_their_own_maps(make_model, cheap):
    model = make_model("resnet20", "abn")
    inputs = [torch.randn(1, 3, 8, 8) for _ in range(4)]
    expected = [explain_many(model, x, NEW) for x in inputs]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            got = explain_many(model, inputs[i], NEW)
            for method in NEW:
                assert torch.equal(got[method].raw, expected[i][method].raw), (i, method)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i % 4,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
