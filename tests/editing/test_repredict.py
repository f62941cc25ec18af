"""Re-prediction with an edited map (abn.editing.Editable) against the model's own forward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import abn
from abn.editing import Editable, box, erase

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def forward_probs(model, x, attention=None, attribute=None) -> np.ndarray:
    with torch.no_grad():
        out = model(x, attention=attention)
    if attribute is None:
        return out.logits[0].softmax(-1).numpy()
    return out.logits[0, attribute].softmax(-1).numpy()


def edited_map(shape, seed=3) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.mark.parametrize("mechanism", ["residual", "multiply"])
def test_own_map_changes_nothing_single_task(mechanism, image):
    torch.manual_seed(0)
    model = abn.create("resnet20", "abn", num_classes=10, mechanism=mechanism).eval()
    e = Editable(model, image)
    assert e.map.shape == (16, 16) and e.probs.shape == (10,)
    np.testing.assert_allclose(e.probs, forward_probs(model, image), atol=1e-6)
    np.testing.assert_allclose(e.predict(e.map), e.probs, atol=1e-6)
    assert e.names == [str(k) for k in range(10)]


@pytest.mark.parametrize("attribute", [0, 3])
def test_own_map_changes_nothing_multi_task(multi_task, image, attribute):
    e = Editable(multi_task, image, attribute=attribute)
    assert e.probs.shape == (2,) and e.names == ["no", "yes"]
    np.testing.assert_allclose(
        e.probs, forward_probs(multi_task, image, None, attribute), atol=1e-6
    )
    np.testing.assert_allclose(e.predict(e.map), e.probs, atol=1e-6)
    with torch.no_grad():
        own = multi_task(image).attention[0, attribute].numpy()
    np.testing.assert_array_equal(e.map, own)


def test_edited_map_agrees_with_the_override_single_task(single_task, image):
    e = Editable(single_task, image)
    edited = erase(edited_map(e.map.shape), box(e.map.shape, 0, 0, 7, 7))
    expected = forward_probs(single_task, image, torch.from_numpy(edited)[None, None])
    got = e.predict(edited)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert np.abs(got - e.probs).max() > 1e-4  # the edit did change the prediction


def test_edited_map_agrees_with_the_override_multi_task(multi_task, image):
    e = Editable(multi_task, image, attribute=2)
    edited = edited_map(e.map.shape)
    with torch.no_grad():
        own = multi_task(image).attention.clone()
    own[0, 2] = torch.from_numpy(edited)
    expected = forward_probs(multi_task, image, own, attribute=2)
    np.testing.assert_allclose(e.predict(edited), expected, atol=1e-6)


def test_erased_map_under_residual_is_perception_on_g(single_task, image):
    e = Editable(single_task, image)
    assert single_task.mechanism == "residual"
    with torch.no_grad():
        plain = single_task.perception_branch(single_task.feature_extractor(image))
    np.testing.assert_allclose(
        e.predict(np.zeros(e.map.shape, np.float32)), plain[0].softmax(-1).numpy(), atol=1e-6
    )


def test_batch_of_edits_in_one_pass(single_task, image):
    e = Editable(single_task, image)
    maps = np.stack([e.map, np.zeros_like(e.map), edited_map(e.map.shape)])
    probs = e.predict(maps)
    assert probs.shape == (3, 10)
    for m, p in zip(maps, probs, strict=True):
        np.testing.assert_allclose(p, e.predict(m), atol=1e-6)


def test_mode_is_restored_and_refusals_are_clear(single_task, multi_task, image):
    single_task.train()
    try:
        e = Editable(single_task, image)
        np.testing.assert_allclose(e.probs, forward_probs(single_task.eval(), image), atol=1e-6)
        single_task.train()
        e.predict(e.map)
        assert single_task.training
    finally:
        single_task.eval()
    with pytest.raises(ValueError, match="shape"):
        e.predict(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        e.predict(np.full(e.map.shape, 1.5, np.float32))
    with pytest.raises(ValueError, match="leave attribute"):
        Editable(single_task, image, attribute=0)
    with pytest.raises(ValueError, match="task index 0–3"):
        Editable(multi_task, image)
    with pytest.raises(ValueError, match="task index"):
        Editable(multi_task, image, attribute=4)
    with pytest.raises(ValueError, match="'plain'"):
        Editable(abn.create("resnet20", "plain", num_classes=10), image)
    with pytest.raises(ValueError, match="1×3×H×W"):
        Editable(single_task, torch.randn(2, 3, 32, 32))


def test_shipped_model_names_its_classes(image):
    model = abn.load(ASSETS / "cifar10-resnet20-abn.safetensors")
    e = Editable(model, image[0])  # 3×H×W is one image
    assert e.names == list(model.card.class_names) and len(e.names) == 10
    np.testing.assert_allclose(e.predict(e.map), forward_probs(model, image), atol=1e-6)


def test_bf16_autocast_stays_close_to_fp32(single_task, image):
    fp32 = Editable(single_task, image)
    bf16 = Editable(single_task, image, precision="bf16")
    assert bf16.map.dtype == np.float32 and bf16.probs.dtype == np.float32
    assert np.abs(bf16.map - fp32.map).mean() < 0.02  # bf16 has 8 bits of mantissa
    assert not np.array_equal(bf16.map, fp32.map)  # autocast did run in bf16
    np.testing.assert_allclose(bf16.predict(fp32.map), fp32.probs, atol=0.05)
