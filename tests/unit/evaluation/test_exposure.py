"""Exposure bias measured by teacher-forcing the model on histories: known models, known traces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.tiny_configs import TINY_MODEL
from tests.unit.test_evoked import loud_steps_mfcc
from wavenet_lib.configs import WavenetConfig
from wavenet_lib.evaluate.exposure import direction_probabilities, step_directions
from wavenet_lib.models.quantization import dequantize, quantize

LEVELS = TINY_MODEL["quantization_levels"]


class Uniform(nn.Module):
    """Every level equally likely at every step, whatever the past."""

    def __init__(self, config: WavenetConfig) -> None:
        super().__init__()
        self.config, self.spf = config, config.spectral_frames_per_eda_step
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, mfcc, eda_prev):
        return torch.zeros(eda_prev.shape[0], LEVELS, eda_prev.shape[1], eda_prev.shape[2])


class Falls(nn.Module):
    """Sure the level falls by one after a fall or a stay, and rises by one after a rise: it
    reads the direction of its past, as a model of recovering EDA does."""

    def __init__(self, config: WavenetConfig) -> None:
        super().__init__()
        self.config = config
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, mfcc, eda_prev):
        level = quantize(eda_prev[:, 0], LEVELS)  # (B, T): level of step t-1, read at step t
        before = torch.cat([level[:, :1], level[:, :-1]], dim=1)  # level of step t-2
        target = torch.where(level > before, level + 1, level - 1).clamp(0, LEVELS - 1)
        logits = torch.full((eda_prev.shape[0], LEVELS, 1, eda_prev.shape[2]), -60.0)
        logits.scatter_(1, target[:, None, None, :], 60.0)
        return logits


def levels_to_units(levels) -> torch.Tensor:
    return dequantize(torch.as_tensor(np.asarray(levels)), LEVELS, torch.float32)


def mfcc_for(cfg: WavenetConfig, steps: int) -> torch.Tensor:
    return loud_steps_mfcc(cfg, steps, loud=[])  # silent features: these models ignore the audio


def test_direction_probabilities_split_the_mass_around_the_previous_level():
    logits = torch.full((1, LEVELS, 1, 2), -1e9)
    logits[0, [2, 5, 9], 0, 0] = 0.0  # previous level 5: 1/3 below, 1/3 the same, 1/3 above
    logits[0, [0, 1], 0, 1] = 0.0  # previous level 3: everything below
    fall, rise = direction_probabilities(logits, torch.tensor([[[5, 3]]]))
    torch.testing.assert_close(fall[0, 0], torch.tensor([1 / 3, 1.0]))
    torch.testing.assert_close(rise[0, 0], torch.tensor([1 / 3, 0.0]))


def test_a_uniform_model_predicts_the_share_of_levels_below_and_above():
    cfg = WavenetConfig(**TINY_MODEL)
    steps, level = 12, 4
    flat = levels_to_units(np.full((2, 1, steps), level))
    got = step_directions(Uniform(cfg), mfcc_for(cfg, steps), flat)
    assert got["predicted_fall"] == pytest.approx(level / LEVELS)
    assert got["predicted_rise"] == pytest.approx((LEVELS - 1 - level) / LEVELS)
    assert got["observed_fall"] == 0 and got["observed_rise"] == 0  # a flat trace never moves
    assert got["n_steps"] == 2 * (steps - 1)  # step 0 has no previous level


def test_observed_and_predicted_directions_of_a_recovery_and_of_a_flicker():
    cfg = WavenetConfig(**TINY_MODEL)
    steps = 12
    recovery = levels_to_units(np.arange(14, 14 - steps, -1))  # one level down at every step
    got = step_directions(Falls(cfg), mfcc_for(cfg, steps), recovery)
    assert got["observed_fall"] == 1 and got["observed_rise"] == 0
    assert got["predicted_fall"] == pytest.approx(1.0)  # the steady fall is continued
    # The same model on a flickering history (down, up, down, ...): after every rise it predicts
    # a rise, so on this past it predicts a fall at 6 of 11 steps instead of at every step.
    flicker = levels_to_units(np.where(np.arange(steps) % 2 == 0, 9, 8))
    got = step_directions(Falls(cfg), mfcc_for(cfg, steps), flicker)
    assert got["observed_fall"] == pytest.approx(6 / 11) and got["observed_rise"] == pytest.approx(5 / 11)
    assert got["predicted_fall"] == pytest.approx(6 / 11, abs=1e-6)
    assert got["predicted_rise"] == pytest.approx(5 / 11, abs=1e-6)
    # Leading (primed) steps are left out; a 1-D trace is one history.
    skipped = step_directions(
        Falls(cfg), mfcc_for(cfg, steps), recovery[None, None].reshape(-1), skip_steps=4
    )
    assert skipped["n_steps"] == steps - 4


def test_bad_shapes_are_named():
    cfg = WavenetConfig(**TINY_MODEL)
    with pytest.raises(ValueError, match="mfcc must be"):
        step_directions(Uniform(cfg), mfcc_for(cfg, 5), levels_to_units(np.zeros((1, 1, 6), int)))
    with pytest.raises(ValueError, match="no steps left"):
        step_directions(
            Uniform(cfg), mfcc_for(cfg, 3), levels_to_units(np.zeros((1, 1, 3), int)), skip_steps=3
        )
