"""Model cards: everything needed to rebuild, trust and cite a checkpoint, as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

CARD_VERSION = 2


@dataclass
class ModelCard:
    """What a checkpoint is: architecture, data, recipe, measured metrics, provenance.

    ``arch``/``variant``/``num_classes``/``model_kwargs`` rebuild the model through
    :func:`abn.models.create`; the rest documents it. From card version 2, ``model_kwargs``
    names every constructor argument (the defaults included), so a card never depends on the
    code's defaults of the day.
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
        version = data.get("card_version", CARD_VERSION)
        if not isinstance(version, int) or not 1 <= version <= CARD_VERSION:
            raise ValueError(
                f"model card version {version!r} is not one this version of abn reads "
                f"(1 to {CARD_VERSION}); upgrade abn if a newer one wrote it"
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


def canonical_json(data: Any) -> str:
    """``data`` as compact, key-sorted, ASCII JSON (one text for one value)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


# --- card version 1 ---------------------------------------------------------------------------
# Version-1 cards recorded only the options passed to ``create`` (usually none), so what they
# mean is fixed by the defaults of the code that wrote them. Frozen here: never today's defaults.

V1_VARIANT_DEFAULTS: dict[str, dict[str, Any]] = {
    "abn": {"mechanism": "residual", "map_kernel": 3},
    "plain": {},
    "cam": {"structure": "native"},  # the last stage at its own stride (maps half as fine)
    "abn_multitask": {"mechanism": "multiply", "chunk_size": 0},
    "plain_multitask": {},
}
V1_BACKBONE_DEFAULTS: dict[str, dict[str, Any]] = {
    **{f"resnet{d}": {} for d in (20, 32, 44, 56, 110)},  # CIFAR ResNets
    "resnext29_8x64d": {"cardinality": 8, "widen_factor": 4},
    "wrn28_10": {"widen_factor": 10, "drop_rate": 0.0},
    "wrn28_4": {"widen_factor": 4, "drop_rate": 0.0},
    "densenet_bc100_12": {"growth_rate": 12},
    **{f"{p}resnet{d}": {"stem": "imagenet"} for p in ("", "se_") for d in (18, 34, 50, 101, 152)},
    "vgg16_bn": {"hidden": 4096},
}
# Datasets whose name meant something else in version 1.
V1_DATASETS = {"celeba-hq": "celeba-hq-by-number"}  # the split by image number


def v1_model_kwargs(arch: str, variant: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The complete constructor arguments a version-1 card (or training state) meant.

    Options it does not name take the version-1 defaults; an architecture unknown to version 1
    keeps only what it names.
    """
    return {
        **V1_BACKBONE_DEFAULTS.get(arch, {}),
        **V1_VARIANT_DEFAULTS.get(variant, {}),
        **kwargs,
    }


def upgrade_card(card: ModelCard) -> ModelCard:
    """A version-1 card as a version-2 card with the same meaning (other versions unchanged).

    Fills ``model_kwargs`` from the frozen version-1 defaults and renames datasets that have
    since changed meaning (``celeba-hq`` → ``celeba-hq-by-number``), in ``dataset``, the
    metrics' keys and the recipe's ``data``.
    """
    if card.card_version != 1:
        return card
    dataset = V1_DATASETS.get(card.dataset, card.dataset)
    recipe = dict(card.recipe)
    if recipe.get("data") in V1_DATASETS:
        recipe["data"] = V1_DATASETS[recipe["data"]]
    return replace(
        card,
        model_kwargs=v1_model_kwargs(card.arch, card.variant, card.model_kwargs),
        dataset=dataset,
        metrics={_renamed_key(k, card.dataset, dataset): v for k, v in card.metrics.items()},
        recipe=recipe,
        card_version=CARD_VERSION,
    )


def _renamed_key(key: str, old: str, new: str) -> str:
    return new + key[len(old) :] if old != new and key.startswith(f"{old}/") else key
