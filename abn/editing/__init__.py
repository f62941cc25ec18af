"""Attention editing (Mitsuhara et al., "Embedding Human Knowledge into Deep Neural Network via
Attention Map"): edit an ABN's map, re-predict with it, save edits as edit sets, fine-tune.

``maps`` (regions, operations, undo history: NumPy only), ``repredict`` (:class:`Editable`,
g(x) computed once), ``editset`` (the folder format, validated); ``finetune`` (fine-tuning from
an edit set) is imported on first use of its names.
"""

from importlib import import_module
from typing import Any

from abn.editing.editset import (
    FORMAT,
    EditRecord,
    EditSet,
    EditSetError,
    list_edit_sets,
    model_digest,
    model_info,
    model_map_size,
)
from abn.editing.maps import (
    OPERATIONS,
    EditHistory,
    Region,
    box,
    brush,
    cells,
    describe_region,
    emphasise,
    erase,
    invert,
    lasso,
    set_value,
    smooth,
)
from abn.editing.repredict import Editable

# the fine-tuning module's public classes, imported on first use (when that module exists), so
# importing the package does not pay for the training stack; the function itself is
# ``abn.editing.finetune.finetune`` (the submodule's name is taken by the module)
_LAZY = {"FinetuneConfig": "finetune", "FinetuneResult": "finetune"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            module = import_module(f"{__name__}.{_LAZY[name]}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{_LAZY[name]}":
                raise
            raise AttributeError(f"{name}: abn.editing.{_LAZY[name]} is not installed") from None
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FORMAT",
    "OPERATIONS",
    "EditHistory",
    "EditRecord",
    "EditSet",
    "EditSetError",
    "Editable",
    "Region",
    "box",
    "brush",
    "cells",
    "describe_region",
    "emphasise",
    "erase",
    "invert",
    "lasso",
    "list_edit_sets",
    "model_digest",
    "model_info",
    "model_map_size",
    "set_value",
    "smooth",
]
