"""One registry for every backbone × variant, in the style of timm.

``create(name, variant=..., num_classes=...)`` is the only entry point users need;
``list_models()`` enumerates backbones and ``list_variants()`` the variants. A backbone is
registered when its module is imported (``@register_backbone``); ``abn.models`` imports every
family module, so there is no hand-kept list here.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .variants import VARIANT_KWARGS, VARIANTS, ModelSpec


@dataclass(frozen=True)
class BackboneEntry:
    """A registered backbone builder and what the CLI/app need to know about it."""

    name: str
    builder: Callable
    family: str  # "cifar" (32 px) or "imagenet"
    input_size: tuple[int, int]
    map_stride: int  # input pixels per attention-map cell at the default stem

    @property
    def description(self) -> str:
        """First line of the builder's docstring."""
        doc = (self.builder.__doc__ or "").strip().splitlines()
        return doc[0] if doc else ""

    def accepted_kwargs(self) -> set[str]:
        return set(inspect.signature(self.builder).parameters)


_BACKBONES: dict[str, BackboneEntry] = {}


def register_backbone(
    name: str, *, family: str, input_size: tuple[int, int], map_stride: int
) -> Callable[[Callable], Callable]:
    """Decorator registering a function that returns a :class:`Backbone`."""

    def wrap(fn: Callable) -> Callable:
        if name in _BACKBONES:
            raise ValueError(f"backbone {name!r} is already registered")
        _BACKBONES[name] = BackboneEntry(name, fn, family, input_size, map_stride)
        return fn

    return wrap


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered backbone names matching a glob ``pattern`` (and ``family``), sorted."""
    return sorted(
        n
        for n, e in _BACKBONES.items()
        if fnmatch.fnmatch(n, pattern) and (family is None or e.family == family)
    )


def list_variants() -> list[str]:
    """The variants every backbone can be built as."""
    return list(VARIANTS)


def get_entry(name: str) -> BackboneEntry:
    """The registry entry of a backbone; unknown names list the valid ones."""
    try:
        return _BACKBONES[name]
    except KeyError:
        close = fnmatch.filter(_BACKBONES, f"*{name[:4]}*") if name else []
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(
            f"unknown model {name!r}.{hint} Available: {', '.join(list_models())}"
        ) from None


def create(name: str, variant: str = "abn", num_classes: int = 1000, **kwargs) -> nn.Module:
    """Build a model by name.

    Args:
        name: a registered backbone, e.g. ``"resnet110"`` (CIFAR) or ``"resnet50"``.
        variant: ``abn``, ``plain``, ``cam``, ``abn_multitask`` or ``plain_multitask``.
        num_classes: classes K (tasks T for the multi-task variants).
        **kwargs: variant options (``mechanism``, ``map_kernel``, ``chunk_size``,
            ``structure``) and backbone options (e.g. ``stem="small"``, ``widen_factor``).

    ``model.spec.kwargs`` holds every resolved option, the defaults included, so a card
    rebuilds the model from what it records rather than from the code's defaults of the day.
    """
    entry = get_entry(name)
    _check_variant(variant)
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    variant_kw = {k: kwargs[k] for k in VARIANT_KWARGS[variant] if k in kwargs}
    backbone_kw = {k: v for k, v in kwargs.items() if k not in variant_kw}
    unknown = set(backbone_kw) - entry.accepted_kwargs()
    if unknown:
        allowed = sorted(model_options(name, variant))
        raise TypeError(
            f"{name}/{variant} does not take {sorted(unknown)}; it accepts {allowed or 'none'}"
        )
    model = VARIANTS[variant](entry.builder(**backbone_kw), num_classes, **variant_kw)
    model.spec = ModelSpec(name, variant, num_classes, {**default_options(name, variant), **kwargs})
    return model


def model_options(name: str, variant: str) -> set[str]:
    """Every constructor argument of ``name`` built as ``variant``: backbone and variant options."""
    _check_variant(variant)
    return get_entry(name).accepted_kwargs() | set(VARIANT_KWARGS[variant])


def default_options(name: str, variant: str) -> dict:
    """Today's code defaults of those arguments (what :func:`create` fills in)."""
    _check_variant(variant)
    variant_defaults = _defaults(VARIANTS[variant])
    return {
        **_defaults(get_entry(name).builder),
        **{k: variant_defaults[k] for k in VARIANT_KWARGS[variant] if k in variant_defaults},
    }


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise KeyError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def _defaults(fn: Callable) -> dict:
    """The keyword defaults of a builder or a class's constructor."""
    return {
        k: p.default
        for k, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
