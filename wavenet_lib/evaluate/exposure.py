"""Exposure bias, measured: does the model predict the same steps on its own samples as on real EDA?

    d = step_directions(model, mfcc, eda_units)   # eda_units (S, C_out, T) histories, held fixed
    d["predicted_fall"], d["predicted_rise"]      # the model's mean P(next level below / above)
    d["observed_fall"], d["observed_rise"]        # the share of steps that do fall / rise

The model is trained teacher-forced: it always reads the real past. Generation feeds it its
own past instead. Where its samples differ from real EDA in ways the model reads (more
flicker between neighbouring levels, a less steady recovery), its predictions change too, and
the difference compounds over the steps of a sample: exposure bias (Bengio et al., 2015,
"Scheduled sampling for sequence prediction with recurrent neural networks").

This module measures it with one teacher-forced pass per set of histories. Read the model's
mean probability that the next level lies below (`predicted_fall`) or above
(`predicted_rise`) the previous one with the real trace as its past, and again with its own
free-running samples as the past. A calibrated model predicts on real histories the shares
real EDA shows (`observed_*` of the real trace), and on its own the shares its samples show
(they were drawn from those predictions). If the two predictions differ, the model behaves
differently on its own output, and the sampled traces inherit that. On the quickstart's
held-out listeners (`metrics.json`) real EDA falls at 43.5 % of steps and rises at 24.1 %; on
that past the model predicts 41.2 % and 26.2 % (calibrated within 2.3 points), on its own
samples 36.7 % and 29.4 %, and its samples fall at 36.8 % and rise at 28.9 %: on its own past
the model expects less recovery, which is the samples' upward drift and what the two-sample
classifier reads first (the share of rising steps and the median step of a window).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from wavenet_lib.evoked import clip_tensors
from wavenet_lib.models.quantization import dequantize, quantize

__all__ = ["DIRECTION_KEYS", "direction_probabilities", "step_directions"]

DIRECTION_KEYS = ("predicted_fall", "predicted_rise", "observed_fall", "observed_rise")


def direction_probabilities(
    logits: torch.Tensor, prev_levels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """P(next level < previous) and P(next level > previous) per step.

    Args:
        logits: (B, Q, C, T) over the Q absolute levels.
        prev_levels: (B, C, T) integer level of the previous step.

    Returns:
        (fall, rise), each (B, C, T).
    """
    probs = torch.softmax(logits.float(), dim=1)
    levels = torch.arange(logits.shape[1], device=logits.device)[None, :, None, None]
    prev = prev_levels[:, None].to(logits.device)
    return (probs * (levels < prev)).sum(dim=1), (probs * (levels > prev)).sum(dim=1)


@torch.no_grad()
def step_directions(
    model: nn.Module,
    mfcc: torch.Tensor | np.ndarray,
    eda_units: torch.Tensor | np.ndarray,
    *,
    skip_steps: int = 0,
    channel: int = 0,
    batch_size: int = 4,
) -> dict[str, float]:
    """Predicted and observed shares of falling and rising steps along fixed histories.

    Args:
        model: `forward(mfcc, eda_prev) -> logits (B, Q, C_out, T)` (a Wavenet).
        mfcc: (C_in, T*spf, M) model-ready features of the clip.
        eda_units: (S, C_out, T), (C_out, T) or (T,) traces in normalized units, quantized to the
            model's levels first (the values generation feeds back).
        skip_steps: leading steps left out (a prime, the first steps without a past).
        channel: the EDA signal measured.
        batch_size: traces per forward pass.

    Returns:
        {"predicted_fall", "predicted_rise", "observed_fall", "observed_rise", "n_steps"}: means
        over traces and steps t >= max(skip_steps, 1) (step 0 has no previous level).
    """
    cfg, x, h = clip_tensors(model, mfcc, eda_units)
    h = h.reshape(1, 1, -1) if h.dim() == 1 else (h[None] if h.dim() == 2 else h)
    steps, levels = h.shape[-1], cfg.quantization_levels
    q = quantize(h, levels)
    first = max(int(skip_steps), 1)
    if steps <= first:
        raise ValueError(f"no steps left to measure: {steps} steps, skip_steps {skip_steps}")
    was_training = model.training
    model.eval()
    sums = dict.fromkeys(DIRECTION_KEYS, 0.0)
    try:
        for i in range(0, q.shape[0], batch_size):
            qb = q[i : i + batch_size]
            value = dequantize(qb, levels, torch.float32)
            prev_value = torch.cat([value[..., :1], value[..., :-1]], dim=-1)  # step 0 reads itself
            prev_level = torch.cat([qb[..., :1], qb[..., :-1]], dim=-1)
            logits = model(x.expand(qb.shape[0], *x.shape), prev_value)
            fall, rise = direction_probabilities(logits, prev_level)
            change = (qb - prev_level)[:, channel, first:]
            sums["predicted_fall"] += float(fall[:, channel, first:].sum())
            sums["predicted_rise"] += float(rise[:, channel, first:].sum())
            sums["observed_fall"] += float((change < 0).sum())
            sums["observed_rise"] += float((change > 0).sum())
    finally:
        model.train(was_training)
    n = q.shape[0] * (steps - first)
    return {key: value / n for key, value in sums.items()} | {"n_steps": float(n)}
