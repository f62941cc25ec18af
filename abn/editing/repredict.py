"""Re-predict with an edited attention map, reusing g(x).

ABN's perception branch runs on g'(x) = (1 + M(x))·g(x) (or M(x)·g(x)), so replacing M(x)
changes the prediction (Mitsuhara et al., "Embedding Human Knowledge into Deep Neural Network via
Attention Map"). :class:`Editable` computes g(x) and M(x) once; each :meth:`Editable.predict`
then runs only the attention mechanism and the perception branch on the edited map, which gives
what ``model(x, attention=edited)`` gives at a fraction of its cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from abn.models import apply_attention
from abn.precision import autocast_for

__all__ = ["Editable"]


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the block; the model's own mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _parameter(model: nn.Module) -> torch.Tensor:
    try:
        return next(model.parameters())
    except StopIteration:
        raise ValueError("the model has no parameters") from None


class Editable:
    """One image under one ABN model, ready for edited-map re-prediction.

    ``Editable(model, x, attribute=None)``: ``x`` is the preprocessed 1×3×H×W input (3×H×W
    is taken as one image). A single-task ABN edits its one map; a multi-task ABN edits the map
    of ``attribute`` (a task index) and predicts that attribute's 2-way output.

    ``map`` is the model's own map (h×w float32), ``probs`` the perception branch's
    probabilities with it (K classes, or ``[P(no), P(yes)]``), ``names`` their labels.
    ``precision="bf16"`` runs under bf16 autocast (:func:`abn.precision.autocast_for`).
    """

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        attribute: int | None = None,
        *,
        precision: str = "fp32",
    ) -> None:
        if not getattr(model, "is_abn", False):
            variant = getattr(getattr(model, "spec", None), "variant", type(model).__name__)
            raise ValueError(
                f"only ABN models have an attention map to edit; this model is {variant!r}"
            )
        self.model = model
        self.multitask = bool(getattr(model, "is_multitask", False))
        self.attribute = self._check_attribute(attribute)
        self.precision = precision
        weight = _parameter(model)
        self.device = weight.device
        x = torch.as_tensor(x)
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(f"expected one image of shape 1×3×H×W, got {tuple(x.shape)}")
        x = x.to(self.device, weight.dtype if weight.is_floating_point() else torch.float32)
        with self._running():
            self.features = model.feature_extractor(x)
            branch = model.attention_branch(self.features)
            maps = branch[1]  # single task: B×1×h×w; multi-task: B×T×h×w
            channel = 0 if self.attribute is None else self.attribute
            own = maps[:, channel : channel + 1].float()
            self._probs = self._perceive(own)
        self.map: np.ndarray = own[0, 0].cpu().numpy().astype(np.float32)
        self.map.flags.writeable = False
        self.probs: np.ndarray = self._probs[0]
        self.names: list[str] = self._names()

    def _check_attribute(self, attribute: int | None) -> int | None:
        tasks = self.model.spec.num_classes
        if not self.multitask:
            if attribute is not None:
                raise ValueError("a single-task ABN has one map: leave attribute as None")
            return None
        if attribute is None or not 0 <= int(attribute) < tasks:
            raise ValueError(
                f"a multi-task ABN edits one attribute's map: pass attribute as a task index "
                f"0–{tasks - 1}, got {attribute!r}"
            )
        return int(attribute)

    @contextmanager
    def _running(self) -> Iterator[None]:
        with _evaluating(self.model), autocast_for(self.device, self.precision):
            yield

    @property
    def map_size(self) -> tuple[int, int]:
        return tuple(self.map.shape)

    @property
    def mechanism(self) -> str:
        return self.model.mechanism

    def _names(self) -> list[str]:
        if self.multitask:
            return ["no", "yes"]
        card = getattr(self.model, "card", None)
        names = list(getattr(card, "class_names", None) or [])
        return names if len(names) == len(self.probs) else [str(k) for k in range(len(self.probs))]

    @property
    def attribute_name(self) -> str | None:
        """The edited attribute's name (multi-task; from the model card when it has one)."""
        if self.attribute is None:
            return None
        names = list(getattr(getattr(self.model, "card", None), "class_names", None) or [])
        return names[self.attribute] if self.attribute < len(names) else str(self.attribute)

    def _perceive(self, maps: torch.Tensor) -> np.ndarray:
        """Probabilities (N×K, or N×2 for the attribute) for N maps (N×1×h×w) on g(x)."""
        model, g = self.model, self.features
        attended = apply_attention(g, maps.to(g.dtype), model.mechanism)
        branch = model.perception_branch
        if self.multitask:
            index = torch.tensor([self.attribute], device=g.device)
            logits = branch.head(branch.features(attended), index)[:, 0]
        else:
            logits = branch(attended)
        return logits.float().softmax(dim=-1).cpu().numpy()

    def predict(self, edited: np.ndarray) -> np.ndarray:
        """Probabilities with ``edited`` (h×w, values in [0, 1]) in place of M(x).

        N×h×w gives N×K: several edited maps in one batched pass.
        """
        maps = np.asarray(edited, dtype=np.float32)
        if maps.shape[-2:] != self.map.shape or maps.ndim not in (2, 3):
            raise ValueError(
                f"the edited map's shape {maps.shape} does not match the model's map "
                f"{self.map.shape}"
            )
        if not np.isfinite(maps).all() or maps.min(initial=0) < 0 or maps.max(initial=0) > 1:
            raise ValueError("an attention map holds values in [0, 1] (no NaN)")
        batch = torch.tensor(maps.reshape(-1, 1, *self.map.shape), device=self.device)
        with self._running():
            probs = self._perceive(batch)
        return probs[0] if maps.ndim == 2 else probs
