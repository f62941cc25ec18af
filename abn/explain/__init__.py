"""Explanation methods behind one interface: ABN's attention, CAM and the Grad-CAM family.

>>> from abn.explain import explain, list_methods
>>> result = explain(model, images, method="gradcam", target=None)  # predicted class
>>> result.maps.shape  # B×H×W in [0, 1]; result.raw is the low-resolution map

The library never imports Streamlit; :mod:`abn.explain.render` draws overlays and grids for the
app and the CLI.
"""

from . import methods as _methods  # noqa: F401  (registers the methods)
from .base import (
    Explainer,
    Explanation,
    TargetSpec,
    get_explainer,
    get_method,
    list_methods,
    register_method,
    stretch,
)
from .engine import explain, explain_many, run
from .methods import GradCamFamily
from .replica import count_hooks

__all__ = [
    "Explainer",
    "Explanation",
    "GradCamFamily",
    "TargetSpec",
    "count_hooks",
    "explain",
    "explain_many",
    "get_explainer",
    "get_method",
    "list_methods",
    "register_method",
    "run",
    "stretch",
]
