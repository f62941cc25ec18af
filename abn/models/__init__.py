"""Every model of the paper, built by name: ``create("resnet110", variant="abn")``.

Importing this package imports each family module below, and each registers its backbones
with ``@register_backbone`` (timm's pattern): a new family module only needs an import here.
"""

from . import cifar_resnet, densenet, resnet, vgg, wide_resnet  # noqa: F401  (registration)
from .backbone import Backbone
from .branches import apply_attention
from .output import ModelOutput
from .registry import (
    create,
    default_options,
    get_entry,
    list_models,
    list_variants,
    model_options,
    register_backbone,
)
from .variants import (
    ABN,
    CAM,
    VARIANTS,
    ModelBase,
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
    "ModelBase",
    "ModelOutput",
    "ModelSpec",
    "MultiTaskABN",
    "MultiTaskPlain",
    "Plain",
    "apply_attention",
    "attribute_probabilities",
    "create",
    "default_options",
    "get_entry",
    "list_models",
    "list_variants",
    "model_options",
    "register_backbone",
]
