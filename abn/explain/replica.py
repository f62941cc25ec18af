"""Structural replicas of a model, so hook-based explainers never touch a shared model.

pytorch-grad-cam registers forward hooks on the target layer and keeps the activations and
gradients they capture on the CAM object. A hook on a module that several threads share sees
every thread's forward pass, so explaining with one cached model from several threads (as
Streamlit sessions do) would mix their activations. Instead each explanation borrows a
*replica*: new ``Module`` objects with the same classes and attributes whose parameters are
``nn.Parameter(p.detach(), requires_grad=False)`` sharing storage with the original, and whose
buffers are the original's tensors. No memory is copied, the original is never modified, and no
``.grad`` accumulates on the shared parameters. Replicas are pooled per model (weakly keyed, so
they die with the model) and one replica is lent to one call at a time.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_MAX_FREE = 8  # replicas kept per model; more are built on demand and dropped after use


def replicate(module: nn.Module) -> nn.Module:
    """A structural copy of ``module`` sharing parameter storage and buffers, with no hooks."""
    return _replicate(module, {})


def _replicate(module: nn.Module, memo: dict[int, nn.Module]) -> nn.Module:
    if id(module) in memo:  # a module used twice stays one module
        return memo[id(module)]
    new = module.__class__.__new__(module.__class__)
    state = dict(module.__dict__)
    for key, value in state.items():
        if (
            key.endswith("hooks")
            or key.endswith("hooks_with_kwargs")
            or key == "_forward_hooks_always_called"
        ):
            state[key] = type(value)()
    state["_parameters"] = {
        k: None if p is None else nn.Parameter(p.detach(), requires_grad=False)
        for k, p in module._parameters.items()
    }
    state["_buffers"] = dict(module._buffers)
    state["_non_persistent_buffers_set"] = set(module._non_persistent_buffers_set)
    new.__dict__.update(state)
    memo[id(module)] = new
    new.__dict__["_modules"] = {
        k: None if m is None else _replicate(m, memo) for k, m in module._modules.items()
    }
    return new


_PLAIN = (bool, int, float, str, type(None))


def fingerprint(model: nn.Module) -> tuple:
    """What a replica copies: the modules, their plain settings (``training``, ``mechanism``,
    ``chunk_size``, …) and the identity of the tensors it shares. It changes when a submodule is
    swapped, a setting changes, or ``.to()`` or re-assignment replaces a parameter or buffer;
    in-place updates of the weights are shared and need no rebuild."""
    parts = []
    for m in model.modules():
        settings = tuple(
            (k, v) for k, v in m.__dict__.items() if not k.startswith("_") and type(v) in _PLAIN
        )
        tensors = tuple(
            (t.data_ptr(), t.dtype, t.device)
            for t in (*m._parameters.values(), *m._buffers.values())
            if t is not None
        )
        parts.append((id(m), settings, tensors))
    return tuple(parts)


class _Pool:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.free: list[nn.Module] = []
        self.key: tuple = ()


_POOLS: weakref.WeakKeyDictionary[nn.Module, _Pool] = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()


@contextmanager
def borrowed_replica(model: nn.Module) -> Iterator[nn.Module]:
    """Lend a replica of ``model`` to the caller alone; it returns to the pool afterwards.

    A replica is only returned when the block ends without an exception (a method that failed
    half-way may have left it modified, e.g. Ablation-CAM swaps a layer); callers remove their
    hooks in ``finally``. Idle replicas may carry per-replica caches (see ``session_cache``).
    """
    with _POOLS_LOCK:
        pool = _POOLS.get(model)
        if pool is None:
            pool = _POOLS[model] = _Pool()
    key = fingerprint(model)
    with pool.lock:
        if pool.key != key:
            pool.free.clear()
            pool.key = key
        replica = pool.free.pop() if pool.free else None
    if replica is None:
        replica = replicate(model)
    yield replica  # not reached again after an exception: the replica is dropped
    with pool.lock:
        if pool.key == key and len(pool.free) < _MAX_FREE:
            pool.free.append(replica)


def session_cache(replica: nn.Module) -> dict:
    """A dict stored on the replica for objects only its current borrower may use."""
    return replica.__dict__.setdefault("_explain_cache", {})


def pooled_replicas(model: nn.Module) -> int:
    """How many idle replicas of ``model`` are pooled (for tests and diagnostics)."""
    pool = _POOLS.get(model)
    return len(pool.free) if pool else 0


def count_hooks(model: nn.Module) -> int:
    """Forward/backward hooks registered on all of ``model``'s modules."""
    total = 0
    for m in model.modules():
        for key, value in m.__dict__.items():
            if key.endswith("hooks") and isinstance(value, dict):
                total += len(value)
    return total


def cut_graph_hook(requires_grad: bool):
    """A forward hook that makes the layer's output a fresh float32 graph root.

    Gradient methods then back-propagate only from the logits down to the target layer (the
    part of the graph Grad-CAM needs), not through the whole network to the input; and
    activations captured under bf16 autocast are float32 (pytorch-grad-cam converts them to
    numpy). The clone keeps in-place operations after the layer legal.
    """

    def hook(module: nn.Module, inputs, output: torch.Tensor):
        if not requires_grad:
            return None if output.dtype == torch.float32 else output.detach().float()
        return output.detach().float().requires_grad_(True).clone()

    return hook
