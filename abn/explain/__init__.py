"""Explanation methods behind one interface: ABN's attention, CAM, the Grad-CAM family, RISE,
Integrated Gradients and Occlusion.

>>> from abn.explain import explain, list_methods
>>> result = explain(model, images, method="gradcam", target=None)  # predicted class
>>> result.maps.shape  # B×H×W in [0, 1]; result.raw is the method's own map

Each method is a registered :class:`Explainer` subclass carrying its display name, a one-line
description and its backend (:mod:`abn.explain.backends`). pytorch-grad-cam and Captum are
imported only when one of their methods runs. The library never imports Streamlit;
:mod:`abn.explain.render` draws overlays and grids for the app and the CLI.

Layers (each imports only those above it): ``core`` (result, batch, targets, scaling) →
``replica`` → ``backends`` → ``engine`` → ``base`` (``Explainer``, the registry) → the methods
(``methods``, ``gradcam``, ``rise``, ``attribution``). ``progress`` (the callback's tracker)
sits below ``engine``; ``cost`` (estimates from measured forward passes) above the methods.
"""

# Importing registers the methods, in this order (list_methods keeps it).
# isort: off
from . import methods as _methods  # noqa: F401
from . import gradcam as _gradcam  # noqa: F401
from . import rise as _rise  # noqa: F401
from . import attribution as _attribution  # noqa: F401

# isort: on
from .backends import ON_REPLICA, READ_FORWARD, Backend
from .base import (
    Explainer,
    explain,
    explain_many,
    get_explainer,
    get_method,
    list_methods,
    method_names,
    register_method,
)
from .core import Explanation, ForwardPass, TargetSpec, maps_at_input_size, minmax_per_map
from .cost import about, estimate_seconds, pass_seconds
from .engine import run
from .gradcam import GradCamFamily
from .progress import ProgressFn
from .replica import count_hooks

__all__ = [
    "ON_REPLICA",
    "READ_FORWARD",
    "Backend",
    "Explainer",
    "Explanation",
    "ForwardPass",
    "GradCamFamily",
    "ProgressFn",
    "TargetSpec",
    "about",
    "count_hooks",
    "estimate_seconds",
    "explain",
    "explain_many",
    "get_explainer",
    "get_method",
    "list_methods",
    "maps_at_input_size",
    "method_names",
    "minmax_per_map",
    "pass_seconds",
    "register_method",
    "run",
]
