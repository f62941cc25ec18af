"""No leaked hooks, replicas or objects over many calls."""

from __future__ import annotations

import contextlib
import gc
import tracemalloc

import pytest
import torch

from abn.explain import count_hooks, explain, explain_many
from abn.explain.replica import pooled_replicas


@pytest.mark.slow
def test_flat_memory_over_a_thousand_calls(make_model):
    model = make_model("resnet20", "abn", num_classes=3)
    x = torch.randn(2, 3, 8, 8)
    hooks = count_hooks(model)

    def call(i: int) -> None:
        if i % 2:
            explain(model, x, "gradcam", target=i % 3)
        else:
            explain_many(model, x, ["abn", "gradcam++", "eigencam"])

    for i in range(50):  # warm up caches (replica pool, low-res classes)
        call(i)
    gc.collect()
    objects = len(gc.get_objects())
    for i in range(600):
        call(i)
    tracemalloc.start()  # traced for the last 400 calls only: tracing is slow
    try:
        call(0)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(400):
            call(i)
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert count_hooks(model) == hooks == 0
    assert pooled_replicas(model) == 1
    assert len(gc.get_objects()) - objects < 100
    assert growth < 100_000, f"{growth} bytes kept after 400 calls"
    assert all(p.grad is None for p in model.parameters())


def test_hooks_released_when_a_method_fails(make_model):
    model = make_model("resnet20", "plain")
    x = torch.randn(1, 3, 8, 8)
    explain(model, x, "gradcam")
    from abn.explain import gradcam

    original = gradcam.GradCamFamily.make_cam

    def broken(self, view):
        raise RuntimeError("boom")

    gradcam.GradCamFamily.make_cam = broken
    try:
        with contextlib.suppress(RuntimeError):
            explain(model, x, "gradcam")
    finally:
        gradcam.GradCamFamily.make_cam = original
    assert count_hooks(model) == 0
    assert explain(model, x, "gradcam").maps.shape == (1, 8, 8)
