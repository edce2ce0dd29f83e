"""Weight averaging: an exponential moving average (EMA) of the parameters, kept beside training.

The average is what `sample`, `score` and `serve` use and what evaluation ranks checkpoints by; the
raw weights keep training (and stay in the checkpoint, so a resumed run continues exactly). Early on
the decay follows (1 + t) / (10 + t), so the average spans about the last tenth of the steps taken,
until it reaches the configured decay. This module does not decide when to evaluate or save.
"""

from __future__ import annotations

import copy

import torch

from charrnn.checkpoint import AVERAGE as PREFIX
from charrnn.model import CharRNN


def decay_at(step: int, decay: float) -> float:
    """The decay for the update after `step` optimizer steps: warm at first, then `decay`.

    A fixed 0.999 from step 1 would keep the random initialisation in the average for thousands of
    steps; (1 + t) / (10 + t) weights the first steps like a plain running mean of the recent past."""
    return min(decay, (1 + step) / (10 + step))


class Averaged:
    """An eval-mode copy of the model whose parameters are the running average of the model's."""

    def __init__(self, model: CharRNN, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._mine = list(self.model.parameters())
        self._theirs = list(model.parameters())

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Blend in the live weights after optimizer step number `step` (0-based count before it)."""
        torch._foreach_lerp_(self._mine, self._theirs, 1.0 - decay_at(step, self.decay))

    def tensors(self) -> dict[str, torch.Tensor]:
        """The average as checkpoint tensors: `ema.<state_dict key>`."""
        return {PREFIX + k: v for k, v in self.model.state_dict().items()}

    def load(self, tensors: dict[str, torch.Tensor]) -> bool:
        """Take a checkpoint's average if it has one (False: start the average from the live weights,
        as for a checkpoint written before averaging or with it off)."""
        found = {k[len(PREFIX) :]: v for k, v in tensors.items() if k.startswith(PREFIX)}
        if not found:
            return False
        self.model.load_state_dict(found)
        return True
