"""One interface for every explanation method.

``explain(model, images, method, target)`` and its object form ``get_explainer(method, model)``
return an :class:`Explanation`: per-image maps in [0, 1] at the input's resolution, the raw
low-resolution map, the explained target's score and the model's prediction.

The shape follows pytorch-grad-cam's template method: :class:`Explainer` does the work (the
forward pass, targets, normalisation, upsampling) and each method is a thin subclass that only
says how to get its low-resolution map. Methods that read the forward pass itself (``abn``,
``abn-class``, ``cam``) implement :meth:`Explainer.raw_maps`; the Grad-CAM family runs through
pytorch-grad-cam on a private replica of the model (see :mod:`abn.explain.replica` and
:mod:`abn.explain.engine`). Several methods explained together share one forward (and backward)
pass, via :func:`explain_many`.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from abn.models.output import ModelOutput

TargetSpec = int | str | Sequence[int | str] | torch.Tensor | None


@dataclass
class Explanation:
    """The result of explaining a batch of B images with one method.

    Attributes:
        method: the method's registered name.
        maps: B×H×W float maps in [0, 1] at the input's resolution.
        raw: B×h×w, the method's own low-resolution map: ``abn`` the attention map exactly as
            the model returned it; ``abn-class``/``cam`` the target's class map (unnormalised);
            the Grad-CAM family pytorch-grad-cam's map at the target layer's size, in [0, 1].
        targets: B indices of the explained class (multi-task: attribute).
        scores: B logits of the explained target (multi-task ABN: the attribute's "present"
            logit; plain multi-task: the attribute's logit).
        predicted: B predicted classes (multi-task: the most probable attribute).
        probabilities: B×K class probabilities (multi-task: B×T P(attribute present)).
        class_names: names of the K classes/attributes when known.
        seconds: wall time to compute these maps (a shared pass is counted in full).
    """

    method: str
    maps: torch.Tensor
    raw: torch.Tensor
    targets: torch.Tensor
    scores: torch.Tensor
    predicted: torch.Tensor
    probabilities: torch.Tensor
    class_names: list[str] | None = None
    seconds: float = 0.0

    def __len__(self) -> int:
        return self.maps.shape[0]

    @property
    def target_probabilities(self) -> torch.Tensor:
        """B probabilities of the explained target."""
        return self.probabilities.gather(1, self.targets[:, None])[:, 0]

    def name_of(self, index: int) -> str:
        """The class name of ``index`` (its number when names are unknown)."""
        names = self.class_names
        return names[index] if names and 0 <= index < len(names) else str(index)

    def cpu(self) -> Explanation:
        """A copy with every tensor on the CPU."""
        return Explanation(
            **{
                f.name: v.cpu() if isinstance(v, torch.Tensor) else v
                for f in fields(self)
                for v in [getattr(self, f.name)]
            }
        )

    @staticmethod
    def concat(parts: Sequence[Explanation]) -> Explanation:
        """Join the explanations of consecutive chunks of one batch."""
        first = parts[0]
        if len(parts) == 1:
            return first
        cat = {
            name: torch.cat([getattr(p, name) for p in parts])
            for name in ("maps", "raw", "targets", "scores", "predicted", "probabilities")
        }
        return Explanation(
            method=first.method,
            class_names=first.class_names,
            seconds=sum(p.seconds for p in parts),
            **cat,
        )


@dataclass
class Pass:
    """What one forward pass gave the methods that read it."""

    images: torch.Tensor
    output: ModelOutput
    targets: torch.Tensor


class Explainer:
    """Base class of every method; a subclass sets ``name`` and provides its raw map.

    Args:
        model: a model from :func:`abn.models.create` or :func:`abn.load`, in eval mode.
        target_layer: the Grad-CAM family's layer, a module of ``model`` or its dotted name
            (default ``model.default_target_layer()``); ignored by the other methods.
        class_names: names for string targets (default ``model.card.class_names``).
    """

    name: ClassVar[str] = ""
    #: min-max normalise the raw map per image before upsampling (``abn`` keeps its values).
    normalize: ClassVar[bool] = True
    #: the map comes from the model's own forward pass (no hooks, no gradients).
    from_forward: ClassVar[bool] = True

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
        self.layer_name = "" if self.from_forward else layer_name(model, target_layer)

    @classmethod
    def unsupported(cls, model: nn.Module) -> str | None:
        """Why this method cannot explain ``model``, or ``None`` when it can."""
        return None

    def raw_maps(self, batch: Pass) -> torch.Tensor:
        """B×h×w low-resolution maps for the batch's targets (forward-pass methods)."""
        raise NotImplementedError

    def __call__(
        self, images: torch.Tensor, target: TargetSpec = None, *, batch_size: int | None = None
    ) -> Explanation:
        """Explain a batch (B×3×H×W or 3×H×W, preprocessed) for ``target``."""
        from .engine import run

        return run([self], images, target, batch_size=batch_size)[self.name]

    def __repr__(self) -> str:
        layer = f", layer={self.layer_name!r}" if self.layer_name else ""
        return f"{type(self).__name__}(method={self.name!r}{layer})"


# ----------------------------------------------------------------------------- registry

_METHODS: dict[str, type[Explainer]] = {}


def _key(name: str) -> str:
    key = name.lower().replace("-", "").replace("_", "").replace(" ", "")
    return {"gradcampp": "gradcam++", "gradcamplusplus": "gradcam++"}.get(key, key)


def register_method(cls: type[Explainer]) -> type[Explainer]:
    """Class decorator adding an :class:`Explainer` subclass to the registry."""
    key = _key(cls.name)
    if key in _METHODS:
        raise ValueError(f"explanation method {cls.name!r} is already registered")
    _METHODS[key] = cls
    return cls


def list_methods(model: nn.Module | None = None) -> list[str]:
    """Registered method names, in registration order; with ``model``, those that fit it."""
    return [c.name for c in _METHODS.values() if model is None or c.unsupported(model) is None]


def get_method(name: str) -> type[Explainer]:
    """The class of a method by name (case, ``-`` and ``_`` are ignored: ``Grad-CAM``)."""
    try:
        return _METHODS[_key(name)]
    except KeyError:
        raise KeyError(
            f"unknown explanation method {name!r}; choose one of {', '.join(list_methods())}"
        ) from None


def get_explainer(
    method: str,
    model: nn.Module,
    *,
    target_layer: nn.Module | str | None = None,
    class_names: Sequence[str] | None = None,
) -> Explainer:
    """The object API: ``get_explainer("gradcam", model)(images, target)``."""
    return get_method(method)(model, target_layer=target_layer, class_names=class_names)


# ----------------------------------------------------------------------------- helpers


def resolve_class_names(model: nn.Module, class_names: Sequence[str] | None) -> list[str] | None:
    """Explicit names, else the model card's, else ``None``."""
    if class_names is not None:
        return list(class_names)
    card = getattr(model, "card", None)
    names = getattr(card, "class_names", None)
    return list(names) if names else None


_LAYER_NAMES: weakref.WeakKeyDictionary[nn.Module, dict[int, str]] = weakref.WeakKeyDictionary()


def layer_name(model: nn.Module, layer: nn.Module | str | None) -> str:
    """The dotted name of the Grad-CAM target layer within ``model``."""
    if layer is None:
        layer = model.default_target_layer()
    if isinstance(layer, str):
        try:
            model.get_submodule(layer)
        except AttributeError:
            raise ValueError(f"model has no layer named {layer!r}") from None
        return layer
    names = _LAYER_NAMES.get(model)
    name = names.get(id(layer)) if names else None
    if name is None or model.get_submodule(name) is not layer:
        names = {id(m): n for n, m in model.named_modules()}
        _LAYER_NAMES[model] = names
        name = names.get(id(layer))
    if name is None:
        raise ValueError("target_layer is not a module of the model being explained")
    return name


def num_outputs(model: nn.Module) -> int:
    """Classes K (attributes T for multi-task models)."""
    return int(model.spec.num_classes)


def resolve_targets(
    target: TargetSpec,
    batch: int,
    count: int,
    names: Sequence[str] | None,
    predicted: torch.Tensor | None,
    device: torch.device,
) -> torch.Tensor | None:
    """B target indices: ``None`` → ``predicted``; an index or name for all; or one per image."""
    if target is None:
        return predicted
    if isinstance(target, torch.Tensor):
        target = target.flatten().tolist() if target.dim() else int(target)
    items = [target] * batch if isinstance(target, (int, str)) else list(target)
    if len(items) != batch:
        raise ValueError(f"got {len(items)} targets for {batch} images")
    return torch.tensor([_index(t, count, names) for t in items], device=device, dtype=torch.long)


def _index(target: int | str, count: int, names: Sequence[str] | None) -> int:
    if isinstance(target, str):
        if not names:
            raise ValueError(
                f"target {target!r} is a name but the model has no class names "
                "(load it from a checkpoint whose card lists them, or pass class_names=)"
            )
        if target in names:
            return names.index(target)
        folded = [n.lower() for n in names]
        if target.lower() in folded:
            return folded.index(target.lower())
        raise ValueError(f"unknown class {target!r}; choose one of {', '.join(names)}")
    if isinstance(target, bool) or not isinstance(target, int):
        raise TypeError(f"target must be an int index or a name, got {target!r}")
    if not 0 <= target < count:
        raise ValueError(f"target {target} is out of range for {count} outputs")
    return target


def predictions(model: nn.Module, output: ModelOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted B, probabilities B×K) — multi-task: most probable attribute, P(present)."""
    logits = output.logits.float()
    if model.is_multitask:
        probs = logits.softmax(-1)[..., 1] if logits.dim() == 3 else logits.sigmoid()
    else:
        probs = logits.softmax(-1)
    return probs.argmax(1), probs


def target_scores(model: nn.Module, output: ModelOutput, targets: torch.Tensor) -> torch.Tensor:
    """B logits of the targets (multi-task ABN: the attribute's "present" logit)."""
    logits = output.logits.float()
    if logits.dim() == 3:
        logits = logits[..., 1]
    return logits.gather(1, targets[:, None])[:, 0]


def pick(maps: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``maps[b, targets[b]]`` for a B×K×h×w tensor."""
    return maps[torch.arange(maps.shape[0], device=maps.device), targets]


def stretch(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scale each of B maps (B×…) to [0, 1]; a constant map becomes 0."""
    flat = maps.flatten(1)
    shape = (-1,) + (1,) * (maps.dim() - 1)
    low = flat.min(1).values.view(shape)
    high = flat.max(1).values.view(shape)
    return (maps - low) / (high - low).clamp_min(1e-7)


def finish(raw: torch.Tensor, size: tuple[int, int], normalize: bool) -> torch.Tensor:
    """Low-resolution B×h×w maps → B×H×W in [0, 1] (optionally min-max per image)."""
    maps = raw.float()
    if normalize:
        maps = stretch(maps)
    if maps.shape[-2:] != size:
        maps = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return maps.clamp(0.0, 1.0) if maps is raw else maps.clamp_(0.0, 1.0)
