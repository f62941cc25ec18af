"""Average Drop, Increase in Confidence (Chattopadhyay et al., Grad-CAM++) and ROAD.

The image is multiplied by its map, and the explained class's confidence compared before and
after, through pytorch-grad-cam's metric implementations (CamMultImageConfidenceChange,
ROADMostRelevantFirst/ROADLeastRelevantFirst), with our models wrapped to return plain logits.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..explain.core import minmax_per_map
from ._model import logits_of, target_probability


class _Logits(nn.Module):
    """pytorch-grad-cam's metrics expect a model returning a logits tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(x)).float()


def _targets(targets: torch.Tensor) -> list:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    return [ClassifierOutputSoftmaxTarget(int(t)) for t in targets.view(-1).tolist()]


@torch.no_grad()
def confidence_change(
    model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per image: confidence before (Y) and after masking the image with its map (O),
    ``drop`` = max(0, Y − O)/Y (its mean ×100 is the Average Drop %) and ``increase`` = O > Y
    (its mean ×100 is the Increase in Confidence %).

    Each map is min-max scaled to [0, 1] first, as the Grad-CAM family's maps are: masking
    depends on the map's scale, and a map that never goes below 0.4 (ABN's raw sigmoid map
    M(x), say) would otherwise keep 40% of every pixel and look more faithful than it is.
    """
    from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange

    targets = torch.as_tensor(targets).view(-1)
    before = target_probability(model, images, targets.to(images.device)).cpu()
    after = CamMultImageConfidenceChange()(
        images,
        minmax_per_map(maps.detach().cpu().float()).numpy(),
        _targets(targets),
        _Logits(model),
        return_diff=False,
    )
    after = torch.from_numpy(np.asarray(after, dtype=np.float32))
    return {
        "confidence": before,
        "masked_confidence": after,
        "drop": (before - after).clamp(min=0) / before.clamp(min=1e-12),
        "increase": (after > before).float(),
    }


def road(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    percentile: int = 50,
) -> dict[str, torch.Tensor]:
    """ROAD (Rong et al., 2022): confidence change after imputing the most (``road_morf``) or
    least (``road_lerf``) relevant ``percentile`` % of pixels; a faithful map has a large drop
    for MoRF and a small one for LeRF.

    pytorch-grad-cam's ``percentile`` is the threshold below which pixels are *kept* (its
    ``ROADMostRelevantFirst(80)`` imputes the top 20%), so it is given ``100 - percentile``.
    """
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst

    if not 0 < percentile < 100:
        raise ValueError(f"percentile must be between 0 and 100 (exclusive), got {percentile}")
    cams = maps.detach().cpu().float().numpy()
    t = _targets(torch.as_tensor(targets))
    wrapped = _Logits(model)
    kept = 100 - percentile
    with torch.no_grad():
        morf = ROADMostRelevantFirst(percentile=kept)(images, cams, t, wrapped)
        lerf = ROADLeastRelevantFirst(percentile=kept)(images, cams, t, wrapped)
    return {
        "road_morf": torch.from_numpy(np.asarray(morf, dtype=np.float32)).view(-1),
        "road_lerf": torch.from_numpy(np.asarray(lerf, dtype=np.float32)).view(-1),
    }
