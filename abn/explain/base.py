"""One interface for every explanation method, and the registry of methods.

``explain(model, images, method, target)`` and its object form ``get_explainer(method, model)``
return an :class:`~abn.explain.core.Explanation`: per-image maps in [0, 1] at the input's
resolution, the raw map, the explained target's score and the model's prediction.

The shape follows pytorch-grad-cam's template method: :class:`Explainer` and the engine do the
work (the forward pass, targets, normalisation, upsampling) and each method is a thin subclass
that names its *backend* (:mod:`.backends`: how its raw map is obtained) and the one thing it
differs in (``raw_maps`` for maps read from the forward pass, ``attribute`` for methods run on a
replica, pytorch-grad-cam's class for the Grad-CAM family). Several methods explained together
share one forward (and backward) pass, via :func:`explain_many`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from .backends import READ_FORWARD, Backend
from .core import Explanation, ForwardPass, TargetSpec, resolve_class_names
from .engine import run
from .progress import ProgressFn


class Explainer:
    """Base class of every method; a subclass sets ``name``, its display names and backend, and
    provides its raw map.

    Args:
        model: a model from :func:`abn.models.create` or :func:`abn.load`, in eval mode.
        target_layer: the layer of methods that read one (the Grad-CAM family), a module of
            ``model`` or its dotted name; ignored by the other methods.
        class_names: names for string targets (default ``model.card.class_names``).
    """

    #: the registered name (matched ignoring case, ``-``, ``_`` and spaces).
    name: ClassVar[str] = ""
    #: more names it is found by (e.g. ``gradcampp``, ``ig``).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: display name, a short label for tables, and one plain-language line.
    title: ClassVar[str] = ""
    short: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: explains any model from the outside (not a map the model itself computes).
    post_hoc: ClassVar[bool] = False
    #: costs many forward passes per image (seconds per map on a CPU).
    slow: ClassVar[bool] = False
    #: one map whatever the target class (single-label models): no target to choose.
    class_agnostic: ClassVar[bool] = False
    #: min-max normalise the raw map per image before upsampling (``abn`` keeps its values).
    normalize: ClassVar[bool] = True
    #: how the raw map is obtained (see :mod:`.backends`).
    backend: ClassVar[Backend] = READ_FORWARD

    def __init__(
        self,
        model: nn.Module,
        *,
        target_layer: nn.Module | str | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        reason = self.unsupported(model)
        if reason:
            raise ValueError(f"method {self.name!r} cannot explain this model: {reason}")
        self.model = model
        self.class_names = resolve_class_names(model, class_names)
        self.layer_name = self.resolve_layer(model, target_layer)

    def resolve_layer(self, model: nn.Module, target_layer: nn.Module | str | None) -> str:
        """The name of the layer this method explains; ``""`` for methods that use none."""
        return ""

    @classmethod
    def unsupported(cls, model: nn.Module) -> str | None:
        """Why this method cannot explain ``model``, or ``None`` when it can."""
        return None

    def forward_passes(self, size: tuple[int, int]) -> float:
        """Forward passes per image of ``size`` this method runs beyond the shared one (a
        backward pass counts as two): what progress counts and cost estimates multiply."""
        return 0.0

    def raw_maps(self, batch: ForwardPass) -> torch.Tensor:
        """B×h×w maps for the batch's targets, read from its forward pass (``READ_FORWARD``)."""
        raise NotImplementedError

    def attribute(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """B×h×w maps of ``targets`` computed by querying ``model`` (a replica; ``ON_REPLICA``)."""
        raise NotImplementedError

    def __call__(
        self,
        images: torch.Tensor,
        target: TargetSpec = None,
        *,
        batch_size: int | None = None,
        progress: ProgressFn | None = None,
    ) -> Explanation:
        """Explain a batch (B×3×H×W or 3×H×W, preprocessed) for ``target``; ``progress``
        (``callback(fraction, message)``) follows the work per batch of forward passes."""
        return run([self], images, target, batch_size=batch_size, progress=progress)[self.name]

    def __repr__(self) -> str:
        layer = f", layer={self.layer_name!r}" if self.layer_name else ""
        return f"{type(self).__name__}(method={self.name!r}{layer})"


# ----------------------------------------------------------------------------- registry

_METHODS: dict[str, type[Explainer]] = {}
_ALIASES: dict[str, str] = {}


def method_key(name: str) -> str:
    """A name as the registry matches it: lower case without ``-``, ``_`` and spaces."""
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


def register_method(cls: type[Explainer]) -> type[Explainer]:
    """Class decorator adding an :class:`Explainer` subclass to the registry."""
    if not cls.name or not cls.title or not cls.description:
        raise ValueError(f"{cls.__name__} needs a name, a title and a description")
    keys = [method_key(n) for n in (cls.name, *cls.aliases)]
    taken = [k for k in keys if k in _METHODS or k in _ALIASES]
    if taken:
        raise ValueError(f"explanation method name(s) {taken} of {cls.name!r} already registered")
    _METHODS[keys[0]] = cls
    _ALIASES.update(dict.fromkeys(keys[1:], keys[0]))
    return cls


def list_methods(model: nn.Module | None = None) -> list[str]:
    """Registered method names, in registration order; with ``model``, those that fit it."""
    return [c.name for c in _METHODS.values() if model is None or c.unsupported(model) is None]


def get_method(name: str) -> type[Explainer]:
    """The class of a method by name or alias; case, ``-``, ``_`` and spaces are ignored
    (``Grad-CAM``, ``gradcampp``, ``IntegratedGradients``, ``integrated_gradients``)."""
    key = method_key(name)
    try:
        return _METHODS[_ALIASES.get(key, key)]
    except KeyError:
        raise KeyError(
            f"unknown explanation method {name!r}; choose one of {', '.join(list_methods())}"
        ) from None


def method_names(methods: str | Sequence[str], model: nn.Module | None = None) -> list[str]:
    """Registered names of ``methods`` (comma-separated text or a sequence; any case or alias),
    in the given order without repeats: ``"GradCAM, rise"`` → ``["gradcam", "rise"]``.

    Raises ``ValueError``: without ``model``, the registry's message for an unknown name; with
    ``model``, one message naming every method that is unknown or cannot explain it.
    """
    items = methods.split(",") if isinstance(methods, str) else methods
    asked = [m.strip() for m in items if m.strip()]
    usable = list_methods(model)
    names, bad = [], []
    for item in asked:
        try:
            name = get_method(item).name
        except KeyError as exc:
            if model is None:
                raise ValueError(exc.args[0]) from None
            name = None
        if name in usable:
            names.append(name)
        else:
            bad.append(item)
    if not asked:
        raise ValueError(f"no methods given; choose from {', '.join(usable)}")
    if bad:
        spec = getattr(model, "spec", None)
        what = f"{spec.name}/{spec.variant}" if spec else type(model).__name__
        raise ValueError(
            f"method(s) {', '.join(bad)} cannot explain {what}; choose from {', '.join(usable)}"
        )
    return list(dict.fromkeys(names))


def get_explainer(
    method: str,
    model: nn.Module,
    *,
    target_layer: nn.Module | str | None = None,
    class_names: Sequence[str] | None = None,
) -> Explainer:
    """The object API: ``get_explainer("gradcam", model)(images, target)``."""
    return get_method(method)(model, target_layer=target_layer, class_names=class_names)


def explain_many(
    model: nn.Module,
    images: torch.Tensor,
    methods: Sequence[str],
    target: TargetSpec = None,
    *,
    target_layer: nn.Module | str | None = None,
    class_names: Sequence[str] | None = None,
    batch_size: int | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Explanation]:
    """Explain ``images`` with several methods, sharing the forward (and backward) pass; the
    result is keyed by each method's registered name. ``progress`` as in :func:`explain`."""
    classes = {cls.name: cls for cls in map(get_method, methods)}
    explainers = [
        cls(model, target_layer=target_layer, class_names=class_names) for cls in classes.values()
    ]
    return run(explainers, images, target, batch_size=batch_size, progress=progress)


def explain(
    model: nn.Module,
    images: torch.Tensor,
    method: str = "abn",
    target: TargetSpec = None,
    *,
    target_layer: nn.Module | str | None = None,
    class_names: Sequence[str] | None = None,
    batch_size: int | None = None,
    progress: ProgressFn | None = None,
) -> Explanation:
    """Explain a batch of preprocessed images (B×3×H×W or 3×H×W) with one method.

    Args:
        model: an eval-mode model from :func:`abn.models.create` or :func:`abn.load`.
        images: preprocessed input on any device (moved to the model's).
        method: a name from :func:`list_methods`, e.g. ``"abn"``, ``"gradcam"``, ``"rise"``.
        target: class index or name for all images, one per image, or ``None`` for the
            predicted class; for multi-task models an attribute (index or name).
        target_layer: Grad-CAM family layer (module or dotted name); default per architecture.
        class_names: names for string targets (default ``model.card.class_names``).
        batch_size: explain in chunks of this many images (bounds memory).
        progress: ``callback(fraction, message)``, called as the work advances (per method and
            chunk, and per batch of forward passes in the slow methods) with a fraction in
            [0, 1] that never decreases; ``st.progress(...).progress`` fits it.
    """
    explainer = get_explainer(method, model, target_layer=target_layer, class_names=class_names)
    return explainer(images, target, batch_size=batch_size, progress=progress)
