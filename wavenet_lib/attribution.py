"""Which moments of the audio drive the predicted EDA: Integrated Gradients over the MFCC frames.

    att = attribute_audio(model, mfcc, eda_history)        # mfcc (C_in, T*spf, M), history (C_out, T)
    att = attribute_audio(model, mfcc, samples=8)           # no EDA: 8 generated histories, averaged
    att.frame_attribution                                   # (T*spf,) µS (or units) per MFCC frame
    att.step_attribution                                    # (T,) the same summed per EDA step

**What is attributed.** With the EDA history held fixed (teacher-forced: `eda_prev` is the given
trace, real or generated, shifted by one step), the model's predicted EDA at step t is the
expected level under its softmax, E[x_t] = Σ_q p_t(q)·centre_q. The attributed scalar is the
sum of these expectations over the target steps (default: every step). Because the network is
causal with a finite receptive field, frame f can only change the predictions of the steps
whose receptive field holds it: step f // spf and the following `receptive_field_eda_steps - 1`
steps (the "following seconds", `receptive_field_seconds` of them). A frame's attribution is
therefore how much that moment of the audio raises the predicted EDA over the seconds after
it; its gradient with respect to every earlier target step is exactly zero, so attribution
never flows backwards in time (tested exactly).

**Why Integrated Gradients** (Sundararajan et al., 2017; `captum.attr.IntegratedGradients`)
rather than feature ablation or occlusion: occlusion needs one forward pass per occluded
window (one per EDA step: hundreds of passes for a two-minute clip, each over the whole clip,
and the answer depends on the window size), while IG needs `n_steps` forward + backward passes
over the whole clip whatever its length, and gives every frame its own value. IG is also
*complete*: the attributions sum to F(audio) − F(baseline), so the per-frame values split the
total effect of the audio on the predicted EDA, and "the share of attribution near loud onsets"
is a well-defined fraction. Captum reports the error of the integral (`convergence_delta`).

**Baseline.** The "silent" MFCC of `wavenet_lib.evaluate.scoring.silent_mfcc_like`: each
coefficient's minimum over the clip, repeated at every frame, the same silence the audio-blind
baseline of notebook 03 is fed. IG integrates along the straight line from that silence to
the audio, so the attribution answers "how much more EDA does the model predict for this
sound than for silence, and which frames account for it". Any other baseline of the MFCC's
shape can be passed (e.g. the clip's median frame, to ask what deviates from its background).

**Several histories.** The answer depends on the history: after an SCR under way the model
expects its recovery whatever it hears, before one the audio decides. A batch of histories
(S, C_out, T) gives the mean attribution over them (one Integrated Gradients run per history,
in the same forward passes). Without a recorded EDA (a new stimulus), `samples` traces are
generated from the audio and averaged: one generated trace is a single draw of where the model's
SCRs fall, and its attribution follows that draw; the mean over draws follows the audio. On the
quickstart's 36 test sessions (`benchmarks/attribution_histories.py`), the share of the positive
attribution within 0.5 s of a true event (windows covering 6.5 % of the time) is 15 % with one
generated history, 38 % with the mean over 8, and 33 % with the recorded EDA (11, 22 and 23 %
for the model trained on the listener's earlier, non-causal events).

Attribution is of the model, not of a listener: it says what this network learned to respond
to, which on real data includes whatever in the audio merely co-occurs with responses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.evaluate.scoring import silent_mfcc_like
from wavenet_lib.models.quantization import dequantize, level_centres, quantize
from wavenet_lib.models.wavenet import Wavenet

__all__ = ["AudioAttribution", "expected_eda", "attribute_audio"]


@dataclass
class AudioAttribution:
    """Per-moment attribution of the predicted EDA to the audio of one clip.

    Attributes:
        frame_attribution: (F,) per MFCC frame (summed over coefficients and audio channels);
            positive = the frame raises the predicted EDA of the following seconds.
        step_attribution: (T,) per EDA step: the sum over the step's spf frames.
        frame_rate: MFCC frames per second; frame f covers audio [f, f+1) / frame_rate.
        eda_sample_rate: EDA steps per second; step t covers [t, t+1) / eda_sample_rate.
        unit: "us" (µS, summed over the target steps) or "units" (normalized model units).
        total: F(audio) − F(baseline), the expected EDA the audio adds over the target steps.
        convergence_delta: Captum's error of the integral: Σ attributions − total.
        horizon_s: how far ahead a frame can act, the model's receptive field in seconds.
        n_histories: how many EDA histories the attribution (and `total`) is the mean over.
    """

    frame_attribution: np.ndarray
    step_attribution: np.ndarray
    frame_rate: float
    eda_sample_rate: float
    unit: str
    total: float
    convergence_delta: float
    horizon_s: float
    n_histories: int = 1

    @property
    def frame_times_s(self) -> np.ndarray:
        """(F,) start time of each MFCC frame (s)."""
        return np.arange(self.frame_attribution.size) / self.frame_rate

    @property
    def step_times_s(self) -> np.ndarray:
        """(T,) start time of each EDA step (s)."""
        return np.arange(self.step_attribution.size) / self.eda_sample_rate


def expected_eda(logits: torch.Tensor) -> torch.Tensor:
    """Expected level under the softmax, in normalized units: (B, Q, C_out, T) → (B, C_out, T)."""
    centres = level_centres(logits.shape[1], logits.device, logits.dtype)
    return torch.einsum("bqct,q->bct", torch.softmax(logits, dim=1), centres)


def _history_tensor(eda_history: np.ndarray | torch.Tensor, out_channels: int, steps: int) -> torch.Tensor:
    """The given history as (S, C_out, T) float32 on the CPU: (T,) and (C_out, T) are one history."""
    if isinstance(eda_history, torch.Tensor):  # on any device (a CUDA tensor has no numpy view)
        h = eda_history.detach().to(device="cpu", dtype=torch.float32)
    else:
        h = torch.as_tensor(np.asarray(eda_history, dtype=np.float32))
    if h.dim() == 1:
        h = h[None]
    if h.dim() == 2:
        h = h[None]
    if h.dim() != 3 or h.shape[0] < 1 or h.shape[1] != out_channels or h.shape[2] != steps:
        raise ValueError(
            f"eda_history must be ({out_channels}, {steps}) in normalized units, ({steps},) for one "
            f"EDA signal, or (S, {out_channels}, {steps}) for S histories, got {tuple(np.shape(eda_history))}"
        )
    if not torch.isfinite(h).all():
        raise ValueError("eda_history contains NaN or inf")
    return h


def attribute_audio(
    model: Wavenet,
    mfcc: torch.Tensor | np.ndarray,
    eda_history: np.ndarray | torch.Tensor | None = None,
    *,
    baseline: torch.Tensor | np.ndarray | None = None,
    target_steps: slice | None = None,
    normalizer: MinMaxNormalizer | None = None,
    n_steps: int = 32,
    internal_batch_size: int = 8,
    seed: int = 0,
    samples: int = 8,
) -> AudioAttribution:
    """Integrated Gradients of the predicted EDA with respect to every MFCC frame of one clip.

    Args:
        model: a trained Wavenet (put in eval mode for the call, restored after).
        mfcc: (C_in, T*spf, M) model-ready features of the clip.
        eda_history: (C_out, T) or (T,) EDA in normalized units held fixed as the model's past
            (e.g. the real trace of a recording), or (S, C_out, T): S histories, attribution
            averaged over them. None: `samples` traces generated from the audio with `seed` (the
            model's own responses to this audio), averaged.
        baseline: (C_in, T*spf, M) reference input; default `silent_mfcc_like(mfcc)`.
        target_steps: the EDA steps whose predictions are summed (default: all).
        normalizer: the EDA normalization; when given, attributions are in µS.
        n_steps: IG integration points (Gauss-Legendre).
        internal_batch_size: integration points per forward pass, over all histories (bounds memory).
        seed: sampling seed when the histories are generated.
        samples: how many histories to generate when `eda_history` is None (>= 1).

    Returns:
        AudioAttribution with per-frame and per-step values summed over coefficients, channels
        and signals, averaged over the histories.

    Raises:
        ValueError: misshapen or non-finite inputs, or `samples` < 1.
    """
    from captum.attr import IntegratedGradients

    cfg = model.config
    x = torch.as_tensor(np.asarray(mfcc, dtype=np.float32)) if not isinstance(mfcc, torch.Tensor) else mfcc
    x = x.detach().float()
    if x.dim() != 3:
        raise ValueError(f"mfcc must be (in_channels, frames, features_per_frame), got {tuple(x.shape)}")
    spf = model.spf
    if x.shape[1] % spf:
        raise ValueError(f"mfcc has {x.shape[1]} frames, not a whole number of EDA steps of {spf} frames")
    steps = x.shape[1] // spf
    device = next(model.parameters()).device
    x = x.to(device)
    base = (
        silent_mfcc_like(x, cfg.num_mfccs)
        if baseline is None
        else torch.as_tensor(baseline, dtype=torch.float32)
    )
    if base.shape != x.shape:
        raise ValueError(f"baseline must have the mfcc's shape {tuple(x.shape)}, got {tuple(base.shape)}")
    base = base.to(device)
    levels = cfg.quantization_levels
    if eda_history is None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a whole number >= 1, got {samples!r}")
        g = torch.Generator(device=device).manual_seed(int(seed))
        drawn = model.generate(x[None].expand(samples, *x.shape), generator=g)
        assert isinstance(drawn, torch.Tensor)  # no logits asked for
        history = drawn.cpu()
    else:
        history = _history_tensor(eda_history, cfg.out_channels, steps)
    history = dequantize(quantize(history, levels), levels)  # the values generation feeds back
    eda_prev = torch.cat([history[..., :1], history[..., :-1]], dim=-1).to(device)  # (S, C_out, T)
    n = eda_prev.shape[0]
    target = slice(None) if target_steps is None else target_steps
    scale = 1.0
    if normalizer is not None:
        scale = normalizer.us_per_unit

    def forward(batch: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        # (B, C_in, F, M) audio and (B, C_out, T) past → (B,) predicted EDA summed over the targets
        return expected_eda(model(batch, prev))[..., target].sum(dim=(1, 2)) * scale

    inputs = x[None].expand(n, *x.shape).contiguous()
    baselines = base[None].expand(n, *x.shape).contiguous()
    was_training = model.training
    model.eval()
    try:
        ig = IntegratedGradients(forward)
        attr, delta = ig.attribute(
            inputs,
            baselines=baselines,
            additional_forward_args=(eda_prev,),
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
            return_convergence_delta=True,
        )
        with torch.no_grad():
            total = float((forward(inputs, eda_prev) - forward(baselines, eda_prev)).mean())
    finally:
        model.train(was_training)
    per_frame = attr.sum(dim=(1, 3)).mean(dim=0).detach().cpu().double().numpy()  # (F,)
    return AudioAttribution(
        frame_attribution=per_frame,
        step_attribution=per_frame.reshape(steps, spf).sum(axis=1),
        frame_rate=cfg.audio_sample_rate / cfg.mfcc_hop_size,
        eda_sample_rate=float(cfg.eda_sample_rate),
        unit="us" if normalizer is not None else "units",
        total=total,
        convergence_delta=float(delta.double().mean()),
        horizon_s=float(cfg.receptive_field_seconds),
        n_histories=n,
    )
