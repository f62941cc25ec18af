"""The typed result every model in the zoo returns from ``forward``."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class ModelOutput:
    """What a forward pass produced.

    ``logits`` are always the final prediction (the perception branch's, for ABN). The other
    fields are ``None`` where a variant has no such thing; see docs/ARCHITECTURE.md.
    """

    logits: torch.Tensor
    att_logits: torch.Tensor | None = None
    attention: torch.Tensor | None = None
    class_maps: torch.Tensor | None = None
    features: torch.Tensor | None = None
    attended_features: torch.Tensor | None = None

    def detach(self) -> ModelOutput:
        """A copy with every tensor detached from the graph."""
        return ModelOutput(
            **{
                f.name: (v.detach() if isinstance(v, torch.Tensor) else v)
                for f in fields(self)
                for v in [getattr(self, f.name)]
            }
        )
