"""What every explanation method and the engine share: the result type, the batch being
explained, targets, scores and map scaling. This module imports no other part of
:mod:`abn.explain`, so every other module can import it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import cache
from types import ModuleType
from typing import Any, Protocol

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
        raw: B×h×w, the method's own map before scaling (see each method's docstring): ``abn``
            the attention map exactly as the model returned it; ``abn-class``/``cam`` the
            target's class map (unnormalised); the Grad-CAM family pytorch-grad-cam's map at the
            target layer's size, in [0, 1]; ``rise`` the mean probability under masks;
            ``integrated-gradients``/``occlusion`` the positive part of the channel-summed
            attribution, at the input's size.
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


class Method(Protocol):
    """What the engine and the backends use of an explainer (:class:`abn.explain.Explainer`)."""

    name: str
    model: nn.Module
    class_names: list[str] | None
    normalize: bool
    backend: Any


@dataclass
class ForwardPass:
    """The images being explained and what the model's forward pass gave for them.

    ``output`` and ``targets`` are ``None`` only for a backend that runs the forward pass itself
    (see :meth:`~abn.explain.backends.Backend.gives_output`); ``seconds`` is what that pass cost.
    """

    images: torch.Tensor
    output: ModelOutput | None
    targets: torch.Tensor | None
    seconds: float = 0.0


@dataclass
class Computed:
    """What a backend computed for a group of methods: raw maps and seconds by method name, and
    the forward pass's output and targets when the backend ran it."""

    raws: dict[str, torch.Tensor]
    seconds: dict[str, float]
    output: ModelOutput | None = None
    targets: torch.Tensor | None = None


# ----------------------------------------------------------------------------- lazy libraries


class LazyClass:
    """A class of an optional library by name, resolved on first access (from the class or from
    an instance), so defining a method costs no import of its library."""

    def __init__(self, library: Callable[[], ModuleType], name: str) -> None:
        self.library = library
        self.name = name

    def __get__(self, instance: object, owner: type) -> type:
        return getattr(self.library(), self.name)


@cache
def captum_library() -> ModuleType:
    """``captum.attr``, imported on first use (it pulls in matplotlib: seconds on a small CPU)."""
    import captum.attr

    return captum.attr


# ----------------------------------------------------------------------------- inputs and targets


def resolve_class_names(model: nn.Module, class_names: Sequence[str] | None) -> list[str] | None:
    """Explicit names, else the model card's, else ``None``."""
    if class_names is not None:
        return list(class_names)
    card = getattr(model, "card", None)
    names = getattr(card, "class_names", None)
    return list(names) if names else None


def check_ready(model: nn.Module) -> None:
    """Explaining needs eval mode (fixed BatchNorm statistics, no dropout); it is not forced
    here because switching a shared model's mode would affect other threads."""
    if model.training:
        raise RuntimeError(
            "explaining needs the model in eval mode: call model.eval() first "
            "(abn.load returns models in eval mode)"
        )


def as_batch(images: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """B×3×H×W float tensor on the model's device."""
    if not isinstance(images, torch.Tensor):
        raise TypeError("images must be a preprocessed tensor (see abn.explain.preprocess)")
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be B×C×H×W with B ≥ 1, got {tuple(images.shape)}")
    device = next(model.parameters()).device
    return images.to(device=device, dtype=torch.float32 if not images.is_floating_point() else None)


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


# ----------------------------------------------------------------------------- scores


def class_scores(output: ModelOutput) -> torch.Tensor:
    """B×K logits, one per class (multi-task: per attribute; multi-task ABN: "present")."""
    logits = output.logits.float()
    return logits[..., 1] if logits.dim() == 3 else logits


def predictions(model: nn.Module, output: ModelOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted B, probabilities B×K) — multi-task: most probable attribute, P(present)."""
    logits = output.logits.float()
    if model.is_multitask:
        probs = logits.softmax(-1)[..., 1] if logits.dim() == 3 else logits.sigmoid()
    else:
        probs = logits.softmax(-1)
    return probs.argmax(1), probs


def target_scores(output: ModelOutput, targets: torch.Tensor) -> torch.Tensor:
    """B logits of the targets (multi-task ABN: the attribute's "present" logit)."""
    return class_scores(output).gather(1, targets[:, None])[:, 0]


def pick(maps: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``maps[b, targets[b]]`` for a B×K×h×w tensor."""
    return maps[torch.arange(maps.shape[0], device=maps.device), targets]


# ----------------------------------------------------------------------------- map scaling


def minmax_per_map(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scale each of B maps (B×…) to [0, 1]; a constant map becomes 0."""
    flat = maps.flatten(1)
    shape = (-1,) + (1,) * (maps.dim() - 1)
    low = flat.min(1).values.view(shape)
    high = flat.max(1).values.view(shape)
    return (maps - low) / (high - low).clamp_min(1e-7)


def maps_at_input_size(raw: torch.Tensor, size: tuple[int, int], normalize: bool) -> torch.Tensor:
    """Raw B×h×w maps → B×H×W in [0, 1]: min-max per map (if ``normalize``), bilinear upsampling
    to ``size``, clamping."""
    maps = raw.float()
    if normalize:
        maps = minmax_per_map(maps)
    if maps.shape[-2:] != size:
        maps = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return maps.clamp(0.0, 1.0) if maps is raw else maps.clamp_(0.0, 1.0)
