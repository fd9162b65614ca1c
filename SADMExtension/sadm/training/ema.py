"""Exponential moving average of model weights: what a model folder ships."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """Shadow copy of a model's floating-point state, updated as θ_ema ← d θ_ema + (1 − d) θ.

    The decay ramps up as min(decay, (1 + n) / (10 + n)) so early averages are not dominated by the
    random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in model.state_dict().items():
            shadow = self.shadow[name]
            if value.dtype.is_floating_point:
                shadow.lerp_(value.detach(), 1.0 - decay)
            else:
                shadow.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        for name, value in state.items():
            self.shadow[name].copy_(value)
        self.updates = updates

    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.shadow)
