"""How long an explanation will take, said before it runs: forward passes × measured seconds.

Each method says how many forward passes it runs per image (:meth:`Explainer.forward_passes`,
the engine's :func:`~abn.explain.engine.passes`); :func:`pass_seconds` times one image's forward
pass of the model on this machine, once per model, input size and thread count (cached), in
fp32 as the slow methods run it and on Score-CAM's fast path. The estimate is their product,
not a guess: it is as good as the machine's load is steady.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Sequence

import torch
from torch import nn

from .base import get_explainer
from .engine import passes

_TIMES: weakref.WeakKeyDictionary[nn.Module, dict[tuple, float]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def input_size(model: nn.Module) -> tuple[int, int]:
    """The model's input size from its card (or its registry entry)."""
    from .preprocess import input_spec

    h, w = input_spec(model)[0]
    return int(h), int(w)


def pass_seconds(
    model: nn.Module, size: tuple[int, int] | None = None, *, fast: bool = False, batch: int = 8
) -> float:
    """Seconds of one image's forward pass at ``size`` (default: the model's input size),
    measured on a batch of ``batch`` blank images after a warm-up; cached per model, size,
    path and thread count. ``fast``: Score-CAM's masked passes (bf16 where native,
    channels-last; see :class:`~abn.explain.gradcam.ScoreCAMExplainer`)."""
    size = tuple(size or input_size(model))
    key = (size, fast, batch, torch.get_num_threads())
    with _LOCK:
        cached = _TIMES.get(model, {}).get(key)
    if cached is not None:
        return cached
    seconds = _measure(model, size, fast, batch)
    with _LOCK:
        _TIMES.setdefault(model, {})[key] = seconds
    return seconds


def _measure(model: nn.Module, size: tuple[int, int], fast: bool, batch: int) -> float:
    from .gradcam import FastMaskedPasses, fast_copy, fast_setting
    from .replica import borrowed_replica

    device = next(model.parameters()).device
    x = torch.randn(batch, 3, *size, device=device)
    task = 0 if (model.is_multitask and model.is_abn) else None
    best = float("inf")
    if fast:
        autocast, channels_last = fast_setting("auto", None, device)
        run = FastMaskedPasses(fast_copy(model, channels_last), task, channels_last).logits
        with torch.inference_mode(), autocast:
            best = _best_of(run, x, device)
    else:
        with borrowed_replica(model) as replica, torch.inference_mode():
            best = _best_of(replica, x, device)
    return best / batch


def _best_of(run, x: torch.Tensor, device: torch.device, repeats: int = 2) -> float:
    run(x)  # warm-up: oneDNN primitives, autocast's weight cast
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def estimate_seconds(
    model: nn.Module,
    methods: str | Sequence[str],
    images: int = 1,
    size: tuple[int, int] | None = None,
    *,
    target_layer: nn.Module | str | None = None,
) -> float:
    """Expected seconds to explain ``images`` images of ``size`` with ``methods`` (one name or
    several, explained together as :func:`~abn.explain.explain_many` does) on this machine."""
    names = [methods] if isinstance(methods, str) else list(methods)
    size = tuple(size or input_size(model))
    explainers = [get_explainer(m, model, target_layer=target_layer) for m in names]
    fast = sum(e.forward_passes(size) for e in explainers if getattr(e, "fast", False))
    normal = passes(explainers, size) - fast
    per_image = normal * pass_seconds(model, size)
    if fast:
        per_image += fast * pass_seconds(model, size, fast=True)
    return per_image * images


def about(seconds: float) -> str:
    """``"about 40 s"``, ``"about 3 min"``, ``"about 1.5 h"`` (two significant figures)."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.2g} s" if seconds < 10 else f"about {round(seconds):d} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60):d} min"
    return f"about {seconds / 3600:.1f} h"
