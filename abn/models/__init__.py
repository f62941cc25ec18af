"""Every model of the paper, built by name: ``create("resnet110", variant="abn")``."""

from .backbone import Backbone
from .branches import apply_attention
from .output import ModelOutput
from .registry import create, get_entry, list_models, list_variants, register_backbone
from .variants import (
    ABN,
    CAM,
    VARIANTS,
    ModelSpec,
    MultiTaskABN,
    MultiTaskPlain,
    Plain,
    attribute_probabilities,
)

__all__ = [
    "ABN",
    "CAM",
    "VARIANTS",
    "Backbone",
    "ModelOutput",
    "ModelSpec",
    "MultiTaskABN",
    "MultiTaskPlain",
    "Plain",
    "apply_attention",
    "attribute_probabilities",
    "create",
    "get_entry",
    "list_models",
    "list_variants",
    "register_backbone",
]
