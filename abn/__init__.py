"""Attention Branch Networks (Fukui et al., CVPR 2019): models, training, explanations."""

__version__ = "0.1.0"

from .card import ModelCard
from .checkpoint import CheckpointError, load, read_card, save
from .models import ModelOutput, create, list_models

__all__ = [
    "CheckpointError",
    "ModelCard",
    "ModelOutput",
    "__version__",
    "create",
    "list_models",
    "load",
    "read_card",
    "save",
]
