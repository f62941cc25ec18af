"""Faithfulness metrics on planted answers, against straightforward loops, and sanity checks."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from abn.metrics import (
    attention_intervention,
    cascading_randomization,
    confidence_change,
    intervened_maps,
    mean_ci,
    perturbation_curves,
    road,
    spearman,
    ssim,
    top_overlap,
)
from abn.models import ModelOutput, create

H = W = 16


class TopLeftReader(nn.Module):
    """Planted answer: the class-1 logit reads only the top-left quadrant's mean."""

    def forward(self, x):
        s = x[:, :, : x.shape[-2] // 2, : x.shape[-1] // 2].mean(dim=(1, 2, 3))
        return ModelOutput(logits=torch.stack([torch.zeros_like(s), 6 * s], dim=1))


def _images(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, H, W, generator=g) * 0.3
    x[:, :, : H // 2, : W // 2] = 1.0
    return x


def _quadrant_map(n, inverted=False):
    m = torch.zeros(n, H, W)
    m[:, : H // 2, : W // 2] = 1.0
    return 1 - m if inverted else m


def test_planted_quadrant_scores_best_and_random_is_near_chance():
    model, x = TopLeftReader(), _images()
    targets = torch.ones(len(x), dtype=torch.long)
    good, bad = _quadrant_map(len(x)), _quadrant_map(len(x), inverted=True)
    rand = torch.rand(len(x), H, W, generator=torch.Generator().manual_seed(1))
    dele = {k: perturbation_curves(model, x, m, targets, "deletion", steps=32).auc.mean().item()
            for k, m in {"good": good, "bad": bad, "random": rand}.items()}  # fmt: skip
    ins = {k: perturbation_curves(model, x, m, targets, "insertion", steps=32,
                                  baseline="zeros").auc.mean().item()
           for k, m in {"good": good, "bad": bad, "random": rand}.items()}  # fmt: skip
    assert dele["good"] < dele["random"] < dele["bad"]
    assert ins["good"] > ins["random"] > ins["bad"]
    # A random order removes the quadrant linearly: p(f) = sigmoid(6(1 - f)).
    chance = (math.log1p(math.exp(6)) - math.log(2)) / 6
    assert abs(dele["random"] - chance) < 0.03


def _loop_curves(model, x, maps, targets, mode, steps, baseline):
    """A straightforward, one-image-one-step-at-a-time reference implementation."""
    out = []
    for b in range(len(x)):
        order = sorted(range(H * W), key=lambda i: (-maps[b].flatten()[i].item(), i))
        row = []
        for s in range(steps + 1):
            k = round(s * H * W / steps)
            mask = torch.zeros(H * W, dtype=torch.bool)
            mask[order[:k]] = True
            mask = mask.view(H, W)
            img = x[b].clone()
            base = baseline[b]
            img = (
                torch.where(mask, base, img) if mode == "deletion" else torch.where(mask, img, base)
            )
            p = model(img[None]).logits.softmax(-1)[0, targets[b]]
            row.append(p.item())
        out.append(row)
    return torch.tensor(out)


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
@pytest.mark.parametrize("baseline", ["zeros", "mean", "blur"])
def test_curves_match_a_straightforward_loop(mode, baseline):
    from abn.metrics import baseline_image

    model, x = TopLeftReader(), _images(3, seed=2)
    maps = torch.rand(3, H, W, generator=torch.Generator().manual_seed(3))
    targets = torch.tensor([1, 0, 1])
    curves = perturbation_curves(model, x, maps, targets, mode, steps=8, baseline=baseline,
                                 images_per_chunk=2)  # fmt: skip
    expected = _loop_curves(model, x, maps, targets, mode, 8, baseline_image(x, baseline))
    torch.testing.assert_close(curves.scores, expected, atol=1e-5, rtol=1e-5)
    assert curves.scores.shape == (3, 9)
    fractions = torch.linspace(0, 1, 9)
    torch.testing.assert_close(
        curves.auc, torch.trapezoid(expected, fractions, dim=-1), atol=1e-4, rtol=1e-4
    )


def test_curves_refuse_mismatched_maps():
    with pytest.raises(ValueError, match="match"):
        perturbation_curves(TopLeftReader(), _images(2), torch.rand(2, 8, 8), torch.ones(2).long())


def test_confidence_change_matches_hand_computation():
    model = create("resnet20", "plain", num_classes=4).eval()
    x = torch.randn(3, 3, 32, 32)
    maps = torch.rand(3, 32, 32)
    t = torch.tensor([0, 2, 3])
    res = confidence_change(model, x, maps, t)
    low = maps.amin(dim=(1, 2), keepdim=True)
    scaled = (maps - low) / (maps.amax(dim=(1, 2), keepdim=True) - low)
    with torch.no_grad():
        before = model(x).logits.softmax(-1)[torch.arange(3), t]
        after = model(x * scaled[:, None]).logits.softmax(-1)[torch.arange(3), t]
    torch.testing.assert_close(res["confidence"], before)
    torch.testing.assert_close(res["masked_confidence"], after, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(res["drop"], (before - after).clamp(min=0) / before)
    assert torch.equal(res["increase"], (after > before).float())


def test_confidence_change_does_not_depend_on_the_map_scale():
    """A raw sigmoid map in [0.4, 0.8] (ABN's M(x)) is judged as its stretched copy."""
    model = create("resnet20", "plain", num_classes=4).eval()
    x, maps, t = torch.randn(3, 3, 32, 32), torch.rand(3, 32, 32), torch.tensor([1, 0, 3])
    full = confidence_change(model, x, maps, t)
    squeezed = confidence_change(model, x, 0.4 + 0.4 * maps, t)
    torch.testing.assert_close(squeezed["masked_confidence"], full["masked_confidence"])
    torch.testing.assert_close(squeezed["drop"], full["drop"])


def test_randomisation_redraws_scales_near_one_and_biases_near_zero():
    from abn.metrics.sanity import _randomize

    generator = torch.Generator().manual_seed(0)
    conv, bn = torch.nn.Conv2d(64, 64, 3, bias=True), torch.nn.BatchNorm2d(512)
    _randomize(conv, generator)
    _randomize(bn, generator)
    assert abs(conv.weight.std().item() - (2 / (64 * 9)) ** 0.5) < 0.005
    assert abs(conv.bias.mean().item()) < 0.05 and abs(bn.bias.mean().item()) < 0.02
    assert abs(bn.weight.mean().item() - 1) < 0.02 and 0.05 < bn.weight.std().item() < 0.15


def test_road_runs_through_pytorch_grad_cam():
    res = road(TopLeftReader(), _images(2), _quadrant_map(2), torch.ones(2).long(), percentile=25)
    assert res["road_morf"].shape == (2,) and res["road_lerf"].shape == (2,)
    # Imputing the planted quadrant hurts more than imputing an irrelevant quarter.
    assert (res["road_morf"] < res["road_lerf"]).all()


def test_similarity_measures():
    a = torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(0))
    b = torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(1))
    b[0] = a[0] ** 2  # monotone transform: Spearman 1
    b[1] = a[1].round(decimals=1)  # ties
    rho = spearman(a, b)
    for i in range(4):
        assert rho[i].item() == pytest.approx(
            spearmanr(a[i].flatten(), b[i].flatten())[0], abs=1e-5
        )
    assert rho[0] == pytest.approx(1.0)
    assert ssim(a, a).min() == pytest.approx(1.0)
    assert top_overlap(a, a).min() == 1.0
    assert top_overlap(a, -a, fraction=0.2).max() == 0.0


def _edge_detector(model, images, targets):
    """Ignores the model entirely: image gradient magnitude."""
    g = images.mean(1)
    dx = torch.nn.functional.pad(g[:, :, 1:] - g[:, :, :-1], (0, 1))
    dy = torch.nn.functional.pad(g[:, 1:] - g[:, :-1], (0, 0, 0, 1))
    m = (dx**2 + dy**2).sqrt()
    return m / m.flatten(1).amax(1).view(-1, 1, 1)


def _gradcam(model, images, targets):
    from abn.explain import explain

    return explain(model, images, "gradcam", target=targets.tolist()).maps


def test_sanity_check_flags_a_method_that_ignores_the_weights():
    torch.manual_seed(0)
    model = create("resnet20", "plain", num_classes=4).eval()
    x = torch.randn(4, 3, 32, 32)
    t = torch.tensor([0, 1, 2, 3])
    edges = cascading_randomization(model, x, t, _edge_detector, "edges", max_steps=3)
    assert not edges.passed and "FAIL" in edges.verdict
    assert all(s.spearman == pytest.approx(1.0) for s in edges.steps)
    gc = cascading_randomization(model, x, t, _gradcam, "gradcam", max_steps=3)
    assert gc.passed, gc.steps
    assert len(gc.steps) == 3


def test_sanity_check_does_not_modify_the_model():
    model = create("resnet20", "plain", num_classes=2).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cascading_randomization(model, torch.randn(2, 3, 32, 32), torch.tensor([0, 1]), _edge_detector,
                            max_steps=2)  # fmt: skip
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_intervention_measures_dependence_on_the_map():
    torch.manual_seed(0)
    model = create("resnet20", "abn", num_classes=5, mechanism="multiply").eval()
    x = torch.randn(6, 3, 32, 32)
    res = attention_intervention(model, x)
    assert set(res) == {"uniform", "inverted", "shuffled"}
    assert res["inverted"]["kl"].mean() > 0 and res["shuffled"]["kl"].mean() > 0
    # A model whose map is constant: the uniform intervention changes nothing.
    with torch.no_grad():
        model.attention_branch.map_conv.weight.zero_()
    res = attention_intervention(model, x)
    assert res["uniform"]["kl"].abs().max() < 1e-6
    assert res["uniform"]["flipped"].sum() == 0


def test_intervened_maps_shapes_and_errors():
    m = torch.rand(3, 1, 4, 4)
    assert torch.allclose(intervened_maps(m, "inverted"), 1 - m)
    assert torch.equal(intervened_maps(m, "shuffled")[1], m[0])
    u = intervened_maps(m, "uniform")
    assert torch.allclose(u.mean(dim=(2, 3)), m.mean(dim=(2, 3))) and u.std(dim=(2, 3)).max() < 1e-6
    with pytest.raises(ValueError, match="unknown intervention"):
        intervened_maps(m, "noise")
    with pytest.raises(ValueError, match="single-task ABN"):
        attention_intervention(
            create("resnet20", "plain", num_classes=2), torch.randn(1, 3, 32, 32)
        )


def test_mean_ci():
    mean, half, n = mean_ci([1.0, 2.0, 3.0, float("nan")])
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-3)
    assert math.isnan(mean_ci([])[0])
    # Student's t at degrees of freedom between table rows (11: 2.201, 40: 2.021)
    assert mean_ci(np.arange(12.0))[1] == pytest.approx(
        2.201 * np.arange(12.0).std(ddof=1) / 12**0.5, rel=1e-3
    )
    assert mean_ci(np.arange(41.0))[1] == pytest.approx(
        2.021 * np.arange(41.0).std(ddof=1) / 41**0.5, rel=1e-3
    )
