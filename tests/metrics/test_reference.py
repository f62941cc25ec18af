"""Our faithfulness metrics against independent implementations (issue #23).

Deletion and insertion curves against Quantus's ``PixelFlipping`` (Bach et al.), Average Drop and
Increase in Confidence against pytorch-grad-cam's ``DropInConfidence`` / ``IncreaseInConfidence``,
ROAD against Quantus's noisy linear imputation, and the cascading model-randomisation check against
Quantus's ``MPRT``. Each pair is set to the same model, images, maps, order, step size and baseline;
where the definitions differ on purpose the reference is configured to ours (docs/metrics.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import quantus  # a test dependency (requirements-ref.txt): missing, the suite fails
import torch
from quantus.functions import perturb_func
from torch import nn

from abn.metrics import baseline_image, cascading_randomization, confidence_change, road
from abn.metrics.perturbation import perturbation_curves
from abn.models import ModelOutput

H = W = 12  # 144 pixels: 12 steps of 12 pixels, and Quantus's step (3 channels × 12) divides 3×144
STEPS = 12


class Tiny(nn.Module):
    """A small, seeded CNN whose every parameterised layer has ``reset_parameters``."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(self.conv2(h)).mean(dim=(2, 3))
        return ModelOutput(logits=self.fc(h))


class Logits(nn.Module):
    """Quantus and pytorch-grad-cam expect a model returning a logits tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out.logits if isinstance(out, ModelOutput) else out


def _tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = Tiny()
    with torch.no_grad():  # non-trivial running statistics, so eval-mode BN is not the identity
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn1.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _inputs(n: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, H, W, generator=g)
    maps = torch.rand(n, H, W, generator=g)  # distinct values: one pixel order, no ties
    targets = torch.arange(n) % 4
    return x, maps, targets


def _probability(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return Logits(model)(x).softmax(-1)[torch.arange(len(x)), targets]


# --- deletion / insertion against Quantus's PixelFlipping ------------------------------------


def _replace_from(arr: np.ndarray, indices: np.ndarray, source: np.ndarray, **_) -> np.ndarray:
    """A Quantus perturb_func: the flipped features take ``source``'s values (B×F, like arr)."""
    out = arr.copy()
    rows = np.arange(len(arr))[:, None]
    out[rows, indices] = source[rows, indices]
    return out


def _pixel_flipping(model, start: torch.Tensor, end: torch.Tensor | None, maps, targets):
    """Quantus's curve from ``start`` towards ``end`` (None: Quantus's own 0.0 baseline), in the
    maps' order, STEPS steps of all channels of H·W/STEPS pixels: B×STEPS, without step 0."""
    kw = {"perturb_baseline": 0.0}
    if end is not None:
        kw = {"perturb_func": _replace_from,
              "perturb_func_kwargs": {"source": end.flatten(1).numpy()}}  # fmt: skip
    metric = quantus.PixelFlipping(features_in_step=3 * H * W // STEPS, normalise=False, abs=False,
                                   disable_warnings=True, **kw)  # fmt: skip
    curve = metric(model=Logits(model).eval(), x_batch=start.numpy(), y_batch=targets.numpy(),
                   a_batch=maps[:, None].numpy(), channel_first=True, device="cpu")  # fmt: skip
    return torch.tensor(np.asarray(curve, dtype=np.float64), dtype=torch.float32)


@pytest.mark.parametrize("baseline", ["zeros", "blur", "mean"])
def test_deletion_curve_matches_quantus_pixel_flipping(baseline):
    model, (x, maps, t) = _tiny(), _inputs()
    ours = perturbation_curves(model, x, maps, t, "deletion", steps=STEPS, baseline=baseline)
    base = None if baseline == "zeros" else baseline_image(x, baseline)
    reference = _pixel_flipping(model, x, base, maps, t)
    assert reference.shape == (3, STEPS)
    torch.testing.assert_close(ours.scores[:, 1:], reference, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours.scores[:, 0], _probability(model, x, t))
    # A different order gives a different curve: the comparison can fail.
    assert (
        ours.scores[:, 1:-1] - _pixel_flipping(model, x, base, 1 - maps, t)[:, :-1]
    ).abs().max() > 1e-3


def test_deletion_with_a_per_image_baseline_matches_quantus_black():
    """Quantus's "black" is each image's minimum (over all channels): ours as an explicit B×1×1×1
    baseline, scored in chunks of 2 images (each chunk must take its own rows of the baseline)."""
    model, (x, maps, t) = _tiny(), _inputs(seed=9)
    black = x.amin(dim=(1, 2, 3), keepdim=True)
    ours = perturbation_curves(model, x, maps, t, "deletion", steps=STEPS, baseline=black,
                               images_per_chunk=2)  # fmt: skip
    metric = quantus.PixelFlipping(features_in_step=3 * H * W // STEPS, normalise=False, abs=False,
                                   perturb_baseline="black", disable_warnings=True)  # fmt: skip
    reference = metric(model=Logits(model).eval(), x_batch=x.numpy(), y_batch=t.numpy(),
                       a_batch=maps[:, None].numpy(), channel_first=True, device="cpu")  # fmt: skip
    reference = torch.tensor(np.asarray(reference), dtype=torch.float32)
    torch.testing.assert_close(ours.scores[:, 1:], reference, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("baseline", ["blur", "zeros"])
def test_insertion_curve_is_pixel_flipping_from_the_baseline_towards_the_image(baseline):
    model, (x, maps, t) = _tiny(), _inputs(seed=2)
    ours = perturbation_curves(model, x, maps, t, "insertion", steps=STEPS, baseline=baseline)
    base = baseline_image(x, baseline)
    reference = _pixel_flipping(model, base, x, maps, t)
    torch.testing.assert_close(ours.scores[:, 1:], reference, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours.scores[:, 0], _probability(model, base, t))
    torch.testing.assert_close(ours.scores[:, -1], _probability(model, x, t))


def test_auc_is_quantus_trapezoid_over_the_fraction_of_pixels(monkeypatch):
    """Quantus integrates its curve (no step 0) with dx=1; ours adds step 0 and uses dx=1/S."""
    if not hasattr(np, "trapz"):  # removed in NumPy 2.4; Quantus 0.6 still calls it
        monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)
    model, (x, maps, t) = _tiny(), _inputs(seed=3)
    ours = perturbation_curves(model, x, maps, t, "deletion", steps=STEPS, baseline="zeros")
    reference = _pixel_flipping(model, x, None, maps, t)
    full = torch.cat([_probability(model, x, t)[:, None], reference], dim=1).double().numpy()
    expected = quantus.helpers.utils.calculate_auc(full, dx=1 / STEPS, batched=True)
    torch.testing.assert_close(ours.auc.double(), torch.from_numpy(expected), atol=1e-6, rtol=1e-5)
    as_quantus = quantus.helpers.utils.calculate_auc(reference.double().numpy(), batched=True)
    p0, p1 = full[:, 0], full[:, 1]
    np.testing.assert_allclose((as_quantus + (p0 + p1) / 2) / STEPS, ours.auc.numpy(), rtol=1e-5)


# --- Average Drop / Increase in Confidence against pytorch-grad-cam --------------------------


def test_average_drop_and_increase_match_pytorch_grad_cam():
    from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model, (x, maps, t) = _tiny(), _inputs(n=6, seed=4)
    maps[::2] = 0.3 + 0.5 * maps[::2]  # unstretched maps: ours min-max scales them first
    ours = confidence_change(model, x, maps, t)
    low, high = maps.amin(dim=(1, 2), keepdim=True), maps.amax(dim=(1, 2), keepdim=True)
    cams = ((maps - low) / (high - low)).numpy()
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in t]
    wrapped = Logits(model)
    drop = torch.from_numpy(DropInConfidence()(x, cams, targets, wrapped)).view(-1)
    increase = torch.from_numpy(IncreaseInConfidence()(x, cams, targets, wrapped)).view(-1)
    # Grad-CAM++'s Average Drop is relative, max(0, Y − O)/Y; grad-cam's DropInConfidence absolute.
    torch.testing.assert_close(ours["drop"] * ours["confidence"], drop, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours["increase"], increase)
    assert (drop > 0).any()  # not a comparison of zeros


# --- ROAD against Quantus's noisy linear imputation ------------------------------------------


def _quantus_road(model, x, maps, t, percentile: int, most_relevant: bool) -> torch.Tensor:
    k = H * W * percentile // 100
    imputed = []
    for image, m in zip(x.numpy(), maps.flatten(1).numpy(), strict=True):
        order = np.argsort(-m if most_relevant else m, kind="stable")
        imputed.append(perturb_func.noisy_linear_imputation(image, indices=order[:k], noise=0.0))
    after = torch.from_numpy(np.stack(imputed)).float()
    return _probability(model, after, t) - _probability(model, x, t)


@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")  # grad-cam's np.argwhere
@pytest.mark.parametrize("percentile", [25, 50, 75])
def test_road_removes_the_given_percentage_as_quantus_does(monkeypatch, percentile):
    """MoRF imputes the top ``percentile`` % of pixels, LeRF the bottom (Rong et al., 2022)."""
    from pytorch_grad_cam.metrics import road as gc_road

    defaults = gc_road.NoisyLinearImputer.__init__.__defaults__
    monkeypatch.setattr(gc_road.NoisyLinearImputer.__init__, "__defaults__", (0.0, *defaults[1:]))
    model, (x, maps, t) = _tiny(), _inputs(seed=5)
    ours = road(model, x, maps, t, percentile=percentile)
    morf = _quantus_road(model, x, maps, t, percentile, most_relevant=True)
    lerf = _quantus_road(model, x, maps, t, percentile, most_relevant=False)
    torch.testing.assert_close(ours["road_morf"], morf, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours["road_lerf"], lerf, atol=1e-5, rtol=1e-4)


def test_road_refuses_a_percentile_outside_0_100():
    model, (x, maps, t) = _tiny(), _inputs(n=1)
    with pytest.raises(ValueError, match="percentile"):
        road(model, x, maps, t, percentile=100)


# --- model-parameter randomisation against Quantus's MPRT ------------------------------------


def _saliency(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """|∂ logit_t / ∂x| summed over channels, B×H×W: depends on every weight."""
    images = images.detach().clone().requires_grad_(True)
    logits = Logits(model)(images)
    (grad,) = torch.autograd.grad(logits[torch.arange(len(images)), targets].sum(), images)
    return grad.abs().sum(1)


def _quantus_saliency(model, inputs, targets, **_):
    maps = _saliency(model, torch.as_tensor(inputs), torch.as_tensor(targets).long())
    return maps[:, None].numpy()


def _reset(seed: int):
    """Quantus's randomisation: the seed, then the layer's own ``reset_parameters``."""

    def randomize(module: nn.Module, generator: torch.Generator) -> None:
        torch.manual_seed(seed + 1)
        module.reset_parameters()

    return randomize


def _mprt(model: nn.Module, x, t, seed: int, **kw) -> dict:
    metric = quantus.MPRT(layer_order="top_down", seed=seed, abs=False, normalise=False,
                          disable_warnings=True, **kw)  # fmt: skip
    return metric(model=model, x_batch=x.numpy(), y_batch=t.numpy(), a_batch=None,
                  channel_first=True, explain_func=_quantus_saliency, device="cpu")  # fmt: skip


def test_cascading_randomisation_matches_quantus_mprt_layer_by_layer(monkeypatch):
    import abn.metrics.sanity as sanity

    model, (x, _, t) = Logits(_tiny()), _inputs(n=4, seed=6)
    reference = _mprt(model, x, t, seed=42)
    layers = [k for k in reference if k != "original"]
    monkeypatch.setattr(sanity, "_randomize", _reset(42))
    ours = cascading_randomization(model, x, t, _saliency, max_steps=len(layers))
    assert [s.layer for s in ours.steps] == layers == ["model.fc", "model.conv2", "model.bn1",
                                                       "model.conv1"]  # fmt: skip
    for step, layer in zip(ours.steps, layers, strict=True):
        assert step.spearman == pytest.approx(float(np.mean(reference[layer])), abs=1e-5)
    assert ours.steps[-1].spearman < 0.9  # randomising really changed the maps


def test_fully_randomised_step_matches_quantus_last_correlation_with_grouped_layers(monkeypatch):
    import abn.metrics.sanity as sanity

    model, (x, _, t) = Logits(_tiny(seed=7)), _inputs(n=4, seed=8)
    last = _mprt(model, x, t, seed=3, return_last_correlation=True)
    monkeypatch.setattr(sanity, "_randomize", _reset(3))
    ours = cascading_randomization(model, x, t, _saliency, max_steps=2)
    assert len(ours.steps) == 2
    assert ours.final_spearman == pytest.approx(float(np.mean(last)), abs=1e-5)
