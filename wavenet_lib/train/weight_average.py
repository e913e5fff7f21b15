"""An exponential moving average of the weights (Polyak averaging), `train.ema_decay`.

    average = WeightAverage.create(model, decay)    # None when decay is 0
    average.update(model)                           # after every optimizer step
    average.module                                  # the averaged model: validate and infer with it

After each step every parameter's average moves toward its new value by (1 - decay); the first
update copies the weights (`torch.optim.swa_utils.AveragedModel` with
`get_ema_multi_avg_fn`, whose arithmetic this uses). An average over the last ~1/(1-decay) steps
of a noisy optimizer sits nearer the middle of the region they wander in than any single step;
PixelCNN++ and diffusion models are evaluated and sampled from such an average. The averaged
model is what validation scores, what `best.pt` is chosen by and what inference loads. On the
quickstart (0.998, two seeds) it changed neither the cross-entropy nor the attribution and
weakened the sampled response, so every config leaves it off (notebook 05).

A checkpoint holds the raw weights under "model" (what the optimizer continues from) and, when
on, the average under "weight_average": {"decay", "n_averaged", "model"} (a plain state dict).
`load_model` then loads the average. Buffers are not averaged: the model's buffers are
constants (index ranges), copied once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["WeightAverage", "averaged_state_dict"]


class WeightAverage:
    """The moving average of a model's weights; see the module docstring."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) for a weight average, got {decay}")
        self.decay = float(decay)
        self._averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay))
        self._averaged.eval()

    @classmethod
    def create(cls, model: nn.Module, decay: float) -> WeightAverage | None:
        """An average of `model` (the bare module, not a DDP wrapper), or None when decay is 0."""
        return cls(model, decay) if decay > 0.0 else None

    @property
    def module(self) -> nn.Module:
        """The averaged model (a separate copy of the architecture holding the averages)."""
        return self._averaged.module

    @property
    def n_averaged(self) -> int:
        """How many updates the average has taken (the first copies the weights)."""
        return int(self._averaged.n_averaged.item())

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average toward `model`'s current weights (call after each optimizer step)."""
        self._averaged.update_parameters(model)

    def state_dict(self) -> dict[str, Any]:
        """{"decay", "n_averaged", "model"}: plain values and tensors (weights_only-loadable)."""
        return {
            "decay": self.decay,
            "n_averaged": self.n_averaged,
            "model": {k: v.detach().clone() for k, v in self.module.state_dict().items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` wrote (the decay of the running config is kept)."""
        self.module.load_state_dict(state["model"])
        self._averaged.n_averaged.fill_(int(state["n_averaged"]))


def averaged_state_dict(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The averaged weights stored in a checkpoint payload, or None when it has none."""
    stored = payload.get("weight_average")
    return None if stored is None else stored["model"]
