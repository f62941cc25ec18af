"""Score-CAM's fast masked passes, progress callbacks and cost estimates."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch

import abn
from abn.explain import estimate_seconds, explain, explain_many, get_explainer
from abn.explain.cost import about, pass_seconds
from abn.explain.gradcam import FastMaskedPasses, ScoreCAMExplainer

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra = a.flatten().argsort().argsort().double()
    rb = b.flatten().argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def _agreement(fast, exact) -> tuple[float, float]:
    """(lowest Spearman ρ over the images, largest |Δ| of the min-max scaled raw maps)."""
    rho = min(_spearman(f, e) for f, e in zip(fast.raw, exact.raw, strict=True))
    return rho, float((fast.maps - exact.maps).abs().max())


def _exact(model, x, target, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(ScoreCAMExplainer, "fast", False)
        return explain(model, x, "scorecam", target)


def test_fast_path_agrees_with_the_library_default(make_model, monkeypatch):
    model = make_model("resnet20", "abn", num_classes=4)
    x = torch.randn(2, 3, 32, 32)
    fast = explain(model, x, "scorecam", [1, 3])
    exact = _exact(model, x, [1, 3], monkeypatch)
    rho, diff = _agreement(fast, exact)
    assert rho > 0.95 and diff < 0.1, (rho, diff)
    # and it is not the library path by accident: bf16 (where native) changes the last digits
    other = explain(model, x, "scorecam", [0, 2])
    assert not torch.allclose(other.raw, fast.raw, atol=1e-3)


def test_fast_path_in_fp32_matches_the_library_closely(make_model, monkeypatch):
    """Channels-last, inference mode and the skipped blank masks change nothing but rounding."""
    model = make_model("resnet20", "plain", num_classes=4)
    x = torch.randn(2, 3, 16, 16)
    monkeypatch.setattr(ScoreCAMExplainer, "precision", "fp32")
    fast = explain(model, x, "scorecam", [2, 0])
    exact = _exact(model, x, [2, 0], monkeypatch)
    torch.testing.assert_close(fast.raw, exact.raw, atol=1e-4, rtol=1e-4)


def test_blank_masked_images_reuse_one_pass(make_model):
    model = make_model("resnet20", "plain", num_classes=4)
    passes = FastMaskedPasses(model, None, channels_last=False)
    x = torch.randn(5, 3, 16, 16)
    x[[1, 3]] = 0
    out = passes(x)
    with torch.inference_mode():
        ref = model(x).logits
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert passes.skipped == 2


def test_progress_is_called_per_batch_with_monotone_fractions(make_model):
    model = make_model("resnet20", "plain", num_classes=4)
    calls: list[tuple[float, str]] = []
    e = get_explainer("scorecam", model)
    e.batch_size = 8  # 64 channels: 8 batches per image
    e(torch.randn(2, 3, 16, 16), progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert len(calls) >= 2 * 64 // 8
    assert all(b >= a for a, b in pairwise(fractions))
    assert 0 <= fractions[0] < 0.2 and fractions[-1] == 1.0
    assert any("Score-CAM" in m for _, m in calls)
    assert len({round(f, 6) for f in fractions}) >= 8  # it moves within the method


def test_progress_of_several_methods_and_chunks(make_model):
    model = make_model("resnet20", "abn", num_classes=4)
    calls: list[float] = []
    explain_many(
        model,
        torch.randn(3, 3, 16, 16),
        ["abn", "gradcam", "scorecam"],
        batch_size=2,
        progress=lambda f, m: calls.append(f),
    )
    assert all(b >= a for a, b in pairwise(calls)) and calls[-1] == 1.0
    assert len(calls) > 10
    rise = get_explainer("rise", model)
    rise.num_masks, rise.batch_size = 64, 16
    calls.clear()
    rise(torch.randn(2, 3, 16, 16), progress=lambda f, m: calls.append(f))
    assert len(calls) >= 8 and all(b >= a for a, b in pairwise(calls)) and calls[-1] == 1.0


def test_no_callback_no_change(make_model):
    model = make_model("resnet20", "plain", num_classes=4)
    x = torch.randn(1, 3, 16, 16)
    a = explain(model, x, "scorecam", 1)
    b = explain(model, x, "scorecam", 1, progress=lambda f, m: None)
    torch.testing.assert_close(a.raw, b.raw)


def test_cost_estimate_is_positive_and_scales(make_model):
    model = make_model("resnet20", "plain", num_classes=4)
    size = (16, 16)
    one = estimate_seconds(model, "scorecam", 1, size)
    assert one > 0
    assert estimate_seconds(model, "scorecam", 3, size) == pytest.approx(3 * one)
    # channels: the perception body's 64 channels vs the feature extractor's 32
    e = get_explainer("scorecam", model)
    assert e.forward_passes(size) == 64 == e.layer_shape(size)[0]
    small = get_explainer("scorecam", model, target_layer="feature_extractor")
    assert small.forward_passes(size) == 32
    fewer = estimate_seconds(model, "scorecam", 1, size, target_layer="feature_extractor")
    assert fewer < one
    # RISE's passes are its masks; a fast method costs about one pass
    assert estimate_seconds(model, "rise", 1, size) > estimate_seconds(model, "gradcam", 1, size)
    assert pass_seconds(model, size) > 0 and pass_seconds(model, size, fast=True) > 0


def test_cost_estimate_is_measured_once_per_model(make_model, monkeypatch):
    from abn.explain import cost

    model = make_model("resnet20", "plain", num_classes=4)
    measured = []
    real = cost._measure
    monkeypatch.setattr(cost, "_measure", lambda *a: measured.append(a) or real(*a))
    for _ in range(3):
        estimate_seconds(model, ["scorecam", "gradcam"], 2, (16, 16))
    assert len(measured) == 2  # the fp32 pass and the fast pass, once each


def test_about_reads_well():
    assert about(0.2) == "under a second"
    assert about(4.44) == "about 4.4 s"
    assert about(42.4) == "about 42 s"
    assert about(600) == "about 10 min"


# ----------------------------------------------------------------------------- real images


def _real(stem: str, split: str, n: int, data_root):
    from abn.metrics.scorecard import sample_batches

    model = abn.load(ASSETS / f"{stem}.safetensors")
    batches, _, _ = sample_batches(model.card, split=split, n=n, batch_size=n, root=data_root)
    return model, next(iter(batches()))[1]


def test_fast_maps_are_faithful_on_real_cifar10_images(data_root, monkeypatch):
    model, x = _real("cifar10-resnet20-abn", "test", 4, data_root)
    fast = explain(model, x, "scorecam")
    exact = _exact(model, x, fast.targets, monkeypatch)
    rho, diff = _agreement(fast, exact)
    assert rho > 0.98 and diff < 0.05, (rho, diff)


@pytest.mark.parametrize("variant", ["abn", "plain"])
def test_fast_maps_are_faithful_on_a_real_imagenette_image(variant, data_root, monkeypatch):
    """The Imagenette ResNet-18's default Score-CAM layer at 160 px is layer4's 512×5×5."""
    model, x = _real(f"imagenette-resnet18-{variant}", "val", 1, data_root)
    e = get_explainer("scorecam", model)
    assert e.layer_name == "perception_branch.body"
    assert e.layer_shape((160, 160)) == (512, 5, 5)
    fast = e(x)
    exact = _exact(model, x, fast.targets, monkeypatch)
    rho, diff = _agreement(fast, exact)
    assert rho > 0.98 and diff < 0.05, (rho, diff)
    assert np.isfinite(fast.raw.numpy()).all()


@pytest.mark.slow  # about 20 s on a loaded 2-core CPU (pytorch-grad-cam's import, the measuring)
def test_cli_estimates_then_shows_progress(tmp_path, checkpoint, capsys):
    import argparse

    from PIL import Image

    from abn.explain.cli import add_explain_parser

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16, 3), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    parser = argparse.ArgumentParser(prog="abn")
    add_explain_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["explain", "--model", str(checkpoint), "--images", str(folder), "--methods",
         "abn,scorecam", "--out", str(tmp_path / "out"), "--batch-size", "2"]
    )  # fmt: skip
    assert args.func(args) == 0
    lines = capsys.readouterr().err.splitlines()
    assert "3 image(s) with abn, scorecam:" in lines[0] and "on this machine" in lines[0]
    shown = [int(line.split("%")[0]) for line in lines if line.strip()[:4].strip().endswith("%")]
    assert len(shown) >= 4 and shown == sorted(shown) and shown[-1] == 100, lines
    assert any("Score-CAM" in line and "batch 2/2" in line for line in lines)


def test_scorecard_progress_moves_within_a_batch(make_model):
    from abn.metrics.scorecard import Entry, score

    model = make_model("resnet20", "plain", num_classes=4)
    x = torch.randn(2, 3, 16, 16)
    seen: list[float] = []
    score(
        [Entry("Score-CAM", model, "scorecam")],
        lambda: iter([(torch.arange(2), x, None)]),
        ("confidence",),
        progress=lambda done, total, label: seen.append(done),
        total_batches=1,
    )
    assert seen == sorted(seen) and seen[-1] == 1
    assert len([d for d in seen if 0 < d < 1]) >= 4  # Score-CAM's passes move the bar
