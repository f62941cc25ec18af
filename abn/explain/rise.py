"""RISE (Petsiuk et al., BMVC 2018): the class probability averaged over random masks.

Saliency S = (1 / (N·p)) Σᵢ P(class | I ⊙ Mᵢ) · Mᵢ over N smooth random masks Mᵢ, each a
``grid``×``grid`` binary grid (cells kept with probability p) upsampled bilinearly to
(grid + 1) cells and cropped at a random shift, as in the paper. Masked pixels become 0 in the
model's normalised input, the dataset's mean colour. The masks come from a generator seeded by
``seed``, so a map is reproducible; they are made a chunk at a time and never stored.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .backends import ON_REPLICA
from .base import Explainer, register_method
from .core import predictions
from .progress import step


def rise_masks(
    count: int, size: tuple[int, int], grid: int, keep: float, generator: torch.Generator
) -> torch.Tensor:
    """``count``×H×W soft masks in [0, 1] (RISE's random shifted, upsampled binary grids)."""
    h, w = size
    cell_h, cell_w = math.ceil(h / grid), math.ceil(w / grid)
    cells = (torch.rand(count, 1, grid, grid, generator=generator) < keep).float()
    up = F.interpolate(
        cells, size=((grid + 1) * cell_h, (grid + 1) * cell_w), mode="bilinear", align_corners=False
    )[:, 0]
    dy = torch.randint(0, cell_h, (count,), generator=generator)
    dx = torch.randint(0, cell_w, (count,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    return up[torch.arange(count)[:, None, None], rows, cols]


@register_method
class RiseExplainer(Explainer):
    """RISE: black-box saliency from the model's probabilities on randomly masked images.

    ``raw`` is the saliency at the input's resolution (the expected probability of the target
    given each pixel is kept); ``maps`` min-max scale it per image. Set ``num_masks``, ``grid``,
    ``keep``, ``seed`` or ``batch_size`` (masked images per forward) on an explainer object to
    change them (e.g. ``e = get_explainer("rise", model); e.num_masks = 4000``).
    """

    name = "rise"
    title = "RISE"
    short = "RISE"
    description = (
        "The class probability averaged over many randomly masked copies of the image (Petsiuk "
        "et al.)."
    )
    post_hoc = True
    slow = True
    backend = ON_REPLICA
    num_masks: int = 1000
    grid: int = 8
    keep: float = 0.5
    seed: int = 0
    batch_size: int = 128

    def forward_passes(self, size: tuple[int, int]) -> float:
        """One pass per mask."""
        return float(self.num_masks)

    def attribute(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        b, _, h, w = images.shape
        generator = torch.Generator().manual_seed(self.seed)
        saliency = images.new_zeros(b, h, w)
        chunk = max(1, self.batch_size // b)
        with torch.no_grad():
            for start in range(0, self.num_masks, chunk):
                n = min(chunk, self.num_masks - start)
                masks = rise_masks(n, (h, w), self.grid, self.keep, generator).to(images)
                masked = (images[:, None] * masks[None, :, None]).flatten(0, 1)
                probs = predictions(model, model(masked))[1].view(b, n, -1)
                kept = probs.gather(2, targets.view(b, 1, 1).expand(b, n, 1))[..., 0]
                saliency += torch.einsum("bn,nhw->bhw", kept, masks)
                step(len(masked))
        return saliency / (self.num_masks * self.keep)
