"""Model cards: everything needed to rebuild, trust and cite a checkpoint, as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

CARD_VERSION = 1


@dataclass
class ModelCard:
    """What a checkpoint is: architecture, data, recipe, measured metrics, provenance.

    ``arch``/``variant``/``num_classes``/``model_kwargs`` rebuild the model through
    :func:`abn.models.create`; the rest documents it.
    """

    arch: str
    variant: str
    num_classes: int
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    task: str = "multiclass"  # or "multilabel"
    input_size: tuple[int, int] = (32, 32)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    dataset: str = ""
    splits: dict[str, str] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""
    notes: str = ""
    card_version: int = CARD_VERSION

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(asdict(self), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Parse a card, refusing missing required fields and unknown ones by name."""
        if not isinstance(data, dict):
            raise ValueError("model card must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"model card has unknown fields: {', '.join(unknown)}")
        missing = [k for k in ("arch", "variant", "num_classes") if k not in data]
        if missing:
            raise ValueError(f"model card lacks required fields: {', '.join(missing)}")
        if not isinstance(data["num_classes"], int) or data["num_classes"] < 1:
            raise ValueError(
                f"model card num_classes must be a positive integer: {data['num_classes']!r}"
            )
        card = cls(**data)
        card.input_size = tuple(card.input_size)
        card.mean, card.std = tuple(card.mean), tuple(card.std)
        if card.class_names and len(card.class_names) != card.num_classes:
            raise ValueError(
                f"model card lists {len(card.class_names)} class names for "
                f"{card.num_classes} classes"
            )
        return card

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"model card is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    @property
    def display_name(self) -> str:
        data = f" · {self.dataset_name}" if self.dataset else ""
        return f"{self.arch} {self.variant}{data}"

    @property
    def dataset_name(self) -> str:
        """The dataset's name; for a user's own image tree, the tree's folder name too."""
        tree = (self.recipe or {}).get("data_root") if self.dataset == "imagefolder" else None
        return f"{self.dataset} {Path(str(tree)).name}" if tree else self.dataset
