"""Is the explanation faithful? Metrics that score maps against the model they explain."""

from abn.stats import mean_ci

from .confidence import confidence_change, road
from .intervention import INTERVENTIONS, attention_intervention, intervened_maps
from .perturbation import PerturbationCurves, baseline_image, perturbation_curves, pixel_ranks
from .sanity import SanityReport, cascade_groups, cascading_randomization
from .similarity import agreement_matrix, spearman, ssim, top_overlap

__all__ = [
    "INTERVENTIONS",
    "PerturbationCurves",
    "SanityReport",
    "agreement_matrix",
    "attention_intervention",
    "baseline_image",
    "cascade_groups",
    "cascading_randomization",
    "confidence_change",
    "intervened_maps",
    "mean_ci",
    "perturbation_curves",
    "pixel_ranks",
    "road",
    "spearman",
    "ssim",
    "top_overlap",
]
