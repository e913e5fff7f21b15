"""The EDA rise a sound evokes in a model: its expected rise with the audio minus without it.

    rise = evoked_rise(model, mfcc, eda_units)          # (S,) normalized units, one per trace
    rise_us = evoked_rise_us(model, generated)          # (S,) µS, for `generate_from_audio`'s output

Screening by counting SCRs in sampled traces is noisy twice over: each trace draws its own
spontaneous SCRs, and whether a small evoked response passes the detector's threshold is
itself a draw. This statistic asks the model directly instead. With a trace held fixed as the
history (the model's own sample, or a real recording), the model's **expected rise** at step t
is

    R_t(a) = Σ_q p_t(q | a, x_<t) · max(c_q − x_{t−1}, 0)

(c_q the level centres): how much it expects EDA to climb at that step, given the audio `a`
and the past. The **evoked rise** of the trace is Σ_t max(R_t(audio) − R_t(reference), 0): at
every step, how much more rise the model expects with the sound than with a reference input on
the same history, summed over the clip. What the model expects regardless of the audio
(spontaneous SCRs, the continuation of a rise under way) cancels; steps where the sound lowers
the expected rise count as zero instead of cancelling responses evoked elsewhere.

**The reference** (`reference`): by default `clip_mean`, the clip's own mean frame held
constant (`mean_mfcc_like`): the same sound on average with nothing changing in it. The
statistic then credits a file for what changes in it (onsets, entries, accents), not for being
loud throughout. `silent` (`silent_mfcc_like`, the audio-blind model's input; the reference
before this option) also credits loudness itself: a model that expects a little more EDA under
any music than under silence adds that over every step of a loud file. On the quickstart's 72
held-out sessions (8 samples) ranking by the evoked rise followed the listener's true events
with Spearman ρ 0.38 against silence and 0.55 against the clip's mean (causal means of the
last 4 / 30 s: 0.52 / 0.55); on the novelty listener, whose link the model learns weakly, −0.08
and +0.06.

Sampling still matters through the histories (an SCR under way changes what the model expects
next), so the statistic is averaged over samples. Relative to its mean it varies between
samples about as much as an SCR count (coefficient of variation 0.21 against 0.22, quickstart,
8 samples), but it differs far more between files: the spread of the files' means is 2.5
standard errors of a mean at 8 samples, against 0.85 for SCRs per minute. On the quickstart's
held-out recordings it follows the listener's true
events (Spearman ρ 0.28–0.58 at 8 samples over three trainings of the config) better than the
SCR rate (0.19–0.24) and, in two of the three, the summed SCR amplitudes (0.28–0.38); see
`docs/design.md` and notebook 04.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from wavenet_lib.data.features import mean_mfcc_like, silent_mfcc_like
from wavenet_lib.models.quantization import START_VALUE, dequantize, level_centres, quantize

if TYPE_CHECKING:
    from wavenet_lib.configs import WavenetConfig
    from wavenet_lib.generation import GeneratedEDA

__all__ = [
    "REFERENCES",
    "has_forward",
    "clip_tensors",
    "expected_rise",
    "reference_input",
    "evoked_rise",
    "evoked_rise_us",
]

# What the audio is compared against: its own mean frame held constant (the default) or silence.
REFERENCES = ("clip_mean", "silent")


def reference_input(mfcc: torch.Tensor, reference: str, num_mfccs: int, first_frame: int = 0) -> torch.Tensor:
    """The counterfactual input of `evoked_rise`: `clip_mean` or `silent` (module docstring)."""
    if reference == "clip_mean":
        return mean_mfcc_like(mfcc, num_mfccs, first_frame)
    if reference == "silent":
        return silent_mfcc_like(mfcc, num_mfccs)
    raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")


def has_forward(model: nn.Module) -> bool:
    """Whether `model` computes logits from (mfcc, eda_prev) (a Wavenet does; a stand-in may not)."""
    return type(model).forward is not nn.Module.forward


def expected_rise(logits: torch.Tensor, eda_prev: torch.Tensor) -> torch.Tensor:
    """Expected rise above the previous value under the softmax: (B, Q, C, T), (B, C, T) → (B, C, T)."""
    centres = level_centres(logits.shape[1], logits.device, logits.dtype)
    climb = (centres[None, :, None, None] - eda_prev[:, None]).clamp(min=0.0)
    return (torch.softmax(logits, dim=1) * climb).sum(dim=1)


def clip_tensors(
    model: nn.Module, mfcc: torch.Tensor | np.ndarray, eda_units: torch.Tensor | np.ndarray
) -> tuple[WavenetConfig, torch.Tensor, torch.Tensor]:
    """A clip's features and traces to re-run `model` on: float32 tensors on the model's device.

    Args:
        model: a model with a `config` (a Wavenet, or a stand-in with its config).
        mfcc: (C_in, T*spf, M) model-ready features of the clip.
        eda_units: traces of T steps in normalized units, any leading shape (kept as given); a
            tensor may be on any device (a CUDA tensor has no numpy view).

    Returns:
        (the model's config, mfcc, traces).

    Raises:
        ValueError: the features do not hold spf frames for each of the traces' T steps.
    """
    cfg: WavenetConfig = getattr(model, "config")  # noqa: B009 (a Wavenet or a stand-in with its config)
    device = next(model.parameters()).device
    x = torch.as_tensor(mfcc, dtype=torch.float32).to(device)
    if isinstance(eda_units, torch.Tensor):
        traces = eda_units.detach().to(device=device, dtype=torch.float32)
    else:
        traces = torch.as_tensor(np.asarray(eda_units, dtype=np.float32)).to(device)
    spf = int(cfg.spectral_frames_per_eda_step)
    steps = traces.shape[-1]
    if x.dim() != 3 or x.shape[1] != steps * spf:
        raise ValueError(
            f"mfcc must be (in_channels, {steps * spf}, features) for {steps} EDA steps, got {tuple(x.shape)}"
        )
    return cfg, x, traces


@torch.no_grad()
def evoked_rise(
    model: nn.Module,
    mfcc: torch.Tensor,
    eda_units: torch.Tensor | np.ndarray,
    *,
    skip_steps: int = 0,
    channel: int = 0,
    batch_size: int = 4,
    reference: str = "clip_mean",
) -> np.ndarray:
    """Evoked rise of each trace (module docstring), in normalized model units.

    Args:
        model: a model with `forward(mfcc, eda_prev) -> logits (B, Q, C_out, T)` (a Wavenet).
        mfcc: (C_in, T*spf, M) model-ready features of the clip.
        eda_units: (S, C_out, T) traces in normalized units (or (S, T) for one EDA signal), held
            fixed as the history; quantized to the model's levels first, as generation feeds back.
        skip_steps: leading steps left out of the sum (a prime that was teacher-forced).
        channel: the EDA signal summed.
        batch_size: traces per forward pass (bounds memory on long clips).
        reference: the input compared against: "clip_mean" (the clip's mean frame over the
            steps after `skip_steps`, held constant) or "silent" (`silent_mfcc_like`).

    Returns:
        (S,) float64, Σ over steps of max(R_t(audio) − R_t(reference), 0).

    Raises:
        ValueError: an unknown reference, or features that do not fit the traces.
    """
    cfg, x, traces = clip_tensors(model, mfcc, eda_units)
    if traces.dim() == 2:
        traces = traces[:, None]
    levels = cfg.quantization_levels
    history = dequantize(quantize(traces, levels), levels, torch.float32)
    start = dequantize(quantize(torch.tensor(START_VALUE), levels), levels, torch.float32)  # generation's
    prev = torch.cat([start.expand(*history.shape[:2], 1).to(x.device), history[..., :-1]], dim=-1)
    spf = int(cfg.spectral_frames_per_eda_step)
    counterfactual = reference_input(x, reference, cfg.num_mfccs, first_frame=skip_steps * spf)
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, history.shape[0], batch_size):
            p = prev[i : i + batch_size]
            n = p.shape[0]
            with_audio = expected_rise(model(x.expand(n, *x.shape), p), p)[:, channel]
            without = expected_rise(model(counterfactual.expand(n, *x.shape), p), p)[:, channel]
            gain = (with_audio - without)[:, skip_steps:].clamp(min=0.0)
            out.append(gain.sum(dim=-1).double().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def evoked_rise_us(model: nn.Module, generated: GeneratedEDA, reference: str = "clip_mean") -> np.ndarray:
    """`evoked_rise` of `generate_from_audio`'s samples in µS, over the stimulus (prime left out).

    Needs the features and normalization the samples were generated with (`generated.features`,
    `generated.normalizer`: set by `generate_from_audio`).
    """
    if generated.features is None or generated.normalizer is None:
        raise ValueError("the generated EDA carries no features or no normalization; use generate_from_audio")
    history = generated.eda_units
    skip = 0
    if generated.prime_units is not None:
        prime = np.broadcast_to(generated.prime_units, (history.shape[0], *generated.prime_units.shape))
        history = np.concatenate([prime, history], axis=-1)
        skip = generated.prime_units.shape[-1]
    units = evoked_rise(model, generated.features, history, skip_steps=skip, reference=reference)
    return units * generated.normalizer.us_per_unit
