"""Measuring the receptive field of a built model, and the naive (wrong) "512^k" formula.

`WavenetConfig.receptive_field_frames` is derived on paper; `measure_receptive_field` checks it
on the real network: it back-propagates from the logits of one EDA step to the MFCC input and
reports the span of frames whose gradient is non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wavenet_lib.configs import WavenetConfig
from wavenet_lib.models.wavenet import Wavenet

__all__ = ["MeasuredReceptiveField", "measure_receptive_field", "naive_claimed_receptive_field"]


@dataclass(frozen=True)
class MeasuredReceptiveField:
    step: int  # the EDA step whose logits were differentiated
    first_frame: int  # earliest MFCC frame with a non-zero gradient
    last_frame: int  # latest MFCC frame with a non-zero gradient
    frame_gradient: torch.Tensor  # (frames,) summed |gradient| per frame

    @property
    def frames(self) -> int:
        return self.last_frame - self.first_frame + 1


def measure_receptive_field(model: Wavenet, batch: int = 4, seed: int = 0) -> MeasuredReceptiveField:
    """Gradient of one step's logits w.r.t. the MFCCs, in float64, on random inputs.

    The step is chosen late enough that its whole window lies inside the input, so zero padding
    cannot hide the window's start. Several random inputs make an accidentally zero gradient
    (e.g. a ReLU that happens to be off) practically impossible.
    """
    cfg = model.config
    spf = cfg.spectral_frames_per_eda_step
    step = cfg.receptive_field_eda_steps + 1
    steps = step + 2  # two later steps, which must not matter
    g = torch.Generator().manual_seed(seed)
    probe = Wavenet(cfg).double().eval()
    probe.load_state_dict(model.state_dict())
    mfcc = torch.randn(
        batch, cfg.in_channels, steps * spf, cfg.features_per_frame, generator=g, dtype=torch.float64
    )
    eda_prev = torch.rand(batch, cfg.out_channels, steps, generator=g, dtype=torch.float64) * 2 - 1
    mfcc.requires_grad_(True)
    probe(mfcc, eda_prev)[..., step].square().sum().backward()
    assert mfcc.grad is not None
    per_frame = mfcc.grad.abs().sum(dim=(0, 1, 3))
    touched = torch.nonzero(per_frame).flatten()
    return MeasuredReceptiveField(step, int(touched.min()), int(touched.max()), per_frame.detach())


def naive_claimed_receptive_field(config: WavenetConfig) -> int:
    """What the naive rule "k stacks have receptive field 512^k" would claim (frames).

    Wrong because stacks are applied in series and each adds its reach (2^L - 1 frames) to the
    window: receptive fields of stacked convolutions add, they do not multiply.
    """
    return config.stack_receptive_field**config.num_stacks
