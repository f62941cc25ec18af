"""Model-randomisation sanity check (Adebayo et al., 2018).

The model's layers are re-initialised cumulatively, from the output side inwards, and after each
step the map is recomputed and compared with the original (Spearman rank correlation and SSIM).
A method whose map barely changes once the weights are random is not explaining the model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .similarity import spearman, ssim

ExplainFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
PASS_THRESHOLD = 0.5  # mean Spearman to the original map after full randomisation


@dataclass
class SanityStep:
    """Similarity to the original map after randomising up to ``layer``."""

    layer: str
    spearman: float
    ssim: float


@dataclass
class SanityReport:
    method: str
    steps: list[SanityStep]

    @property
    def final_spearman(self) -> float:
        return self.steps[-1].spearman if self.steps else 1.0

    @property
    def passed(self) -> bool:
        """True when the map decorrelates from the original once all weights are random."""
        return self.final_spearman < PASS_THRESHOLD

    @property
    def verdict(self) -> str:
        if self.passed:
            return "pass"
        return f"FAIL: map barely changes with random weights (Spearman {self.final_spearman:.2f})"


def cascade_groups(model: nn.Module, max_steps: int = 6) -> list[tuple[str, list[nn.Module]]]:
    """Parameterised layers grouped into at most ``max_steps`` groups, output side first."""
    leaves = [
        (name, m)
        for name, m in model.named_modules()
        if any(True for _ in m.parameters(recurse=False))
    ][::-1]
    if not leaves:
        return []
    per = -(-len(leaves) // max_steps)
    return [
        (leaves[i][0] + (f" … {leaves[min(i + per, len(leaves)) - 1][0]}" if per > 1 else ""),
         [m for _, m in leaves[i : i + per]])
        for i in range(0, len(leaves), per)
    ]  # fmt: skip


def _randomize(module: nn.Module, generator: torch.Generator) -> None:
    """Re-draw ``module``'s own parameters: He-normal weights, normalisation scales near 1 and
    biases near 0 (a fresh initialisation with some noise, as Adebayo et al. randomise)."""
    with torch.no_grad():
        for name, p in module.named_parameters(recurse=False):
            noise = torch.randn(p.shape, generator=generator)
            if p.dim() > 1:
                p.copy_(noise * (2.0 / p[0].numel()) ** 0.5)
            elif name == "weight":  # batch-norm / layer-norm scale
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)


def cascading_randomization(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    explain_fn: ExplainFn,
    method: str = "",
    max_steps: int = 6,
    seed: int = 0,
) -> SanityReport:
    """Randomise ``model``'s layers cumulatively from the top; compare maps to the original.

    ``explain_fn(model, images, targets)`` returns B×H×W maps in [0, 1]. The model itself is
    never modified (a deep copy is randomised).
    """
    original = explain_fn(model, images, targets).detach().float().cpu()
    work = copy.deepcopy(model).eval()
    names = {id(m): n for n, m in model.named_modules()}
    work_modules = dict(work.named_modules())
    generator = torch.Generator().manual_seed(seed)
    steps = []
    for label, group in cascade_groups(model, max_steps):
        for m in group:
            _randomize(work_modules[names[id(m)]], generator)
        maps = explain_fn(work, images, targets).detach().float().cpu()
        steps.append(
            SanityStep(
                label, float(spearman(original, maps).mean()), float(ssim(original, maps).mean())
            )
        )
    return SanityReport(method, steps)
