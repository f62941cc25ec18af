"""Attention Branch Networks (Fukui et al., CVPR 2019): models, training, explanations."""

__version__ = "0.1.0"

from importlib import import_module
from typing import Any

# the public names and their modules, imported on first use (``python -m abn --help`` and the
# CLI's parser do not pay for torch)
_LAZY = {
    "ModelCard": "card",
    "CheckpointError": "checkpoint",
    "load": "checkpoint",
    "read_card": "checkpoint",
    "save": "checkpoint",
    "ModelOutput": "models",
    "create": "models",
    "list_models": "models",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


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
