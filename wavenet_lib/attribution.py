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

**Baseline** (`baseline`, `BASELINES`). IG integrates along the straight line from the baseline
to the audio, so the attribution answers "how much more EDA does the model predict for this
sound than for the baseline, and which frames account for it".

- `recent_past` (default): each frame replaced by the mean of the `RECENT_PAST_SECONDS` (2 s)
  of frames before it (`recent_past_mfcc_like`): "nothing new happened here". A steady sound
  equals its recent past and gets no credit; a change is credited over the 2 s after it.
- `silent`: the "silent" MFCC of `silent_mfcc_like` (each coefficient's minimum over the clip,
  repeated), the silence the audio-blind baseline of notebook 03 is fed. It also credits the
  sound for being there at all: a model that expects a little more EDA under any music than
  under silence spreads credit over every loud moment.
- `clip_mean`: the clip's mean frame held constant (`mean_mfcc_like`): departures from the
  clip's typical sound either way, the quiet before a loud entry as much as the entry.

On the shipped quickstart model (36 test sessions, recorded EDA as the history) the share of
positive attribution within 0.5 s of a true event was 19 % from the recent past and 14 % from
silence (peaks 0.25 s and 1.25 s after the events), 8 % from the clip's mean (12 sessions;
peak 1.25 s before them). Any other baseline of the MFCC's shape can be passed as an array.

**Several histories.** The answer depends on the history: after an SCR under way the model
expects its recovery whatever it hears, before one the audio decides. A batch of histories
(S, C_out, T) gives the mean attribution over them (one Integrated Gradients run per history,
in the same forward passes). Without a recorded EDA (a new stimulus), `samples` traces are
generated from the audio and averaged: one generated trace is a single draw of where the model's
SCRs fall, and its attribution follows that draw; the mean over draws follows the audio. On the
quickstart's 36 test sessions (`benchmarks/attribution_histories.py`, from silence, on the
model of the release before the trend input), the share of the positive attribution within
0.5 s of a true event (windows covering 6.5 % of the time) is 15 % with one
generated history, 38 % with the mean over 8, and 33 % with the recorded EDA (11, 22 and 23 %
for the model trained on the listener's earlier, non-causal events).

Attribution is of the model, not of a listener: it says what this network learned to respond
to, which on real data includes whatever in the audio merely co-occurs with responses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wavenet_lib.data.features import mean_mfcc_like, recent_past_mfcc_like, silent_mfcc_like
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.models.quantization import dequantize, level_centres, quantize
from wavenet_lib.models.wavenet import Wavenet

__all__ = [
    "BASELINES",
    "DEFAULT_CHUNK_SECONDS",
    "RECENT_PAST_SECONDS",
    "AudioAttribution",
    "baseline_input",
    "expected_eda",
    "attribute_audio",
]

# The named baselines `attribute_audio` accepts (any array of the MFCC's shape is accepted too).
BASELINES = ("recent_past", "silent", "clip_mean")
# How far back the "recent_past" baseline averages (s).
RECENT_PAST_SECONDS = 2.0

# Targets attributed per Integrated Gradients run (`attribute_audio`'s chunk_seconds): memory
# grows with the clip's length, about 0.2 GB per minute for the quickstart model up to 10 minutes.
DEFAULT_CHUNK_SECONDS = 600.0


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
        baseline: the named baseline (`BASELINES`), or "custom" for a given array.
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
    baseline: str = "recent_past"

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


def baseline_input(mfcc: torch.Tensor, name: str, num_mfccs: int, frame_rate: float) -> torch.Tensor:
    """The named IG baseline for a clip's features (module docstring, **Baseline**).

    Args:
        mfcc: (C_in, F, M) the clip's model-ready features.
        name: one of `BASELINES`.
        num_mfccs: the MFCC columns (later ones are contrasts, 0 in every baseline).
        frame_rate: MFCC frames per second (for the recent past's length).
    """
    if name == "recent_past":
        return recent_past_mfcc_like(mfcc, max(1, round(RECENT_PAST_SECONDS * frame_rate)), num_mfccs)
    if name == "silent":
        return silent_mfcc_like(mfcc, num_mfccs)
    if name == "clip_mean":
        return mean_mfcc_like(mfcc, num_mfccs)
    raise ValueError(f"baseline must be one of {BASELINES} or an array of the mfcc's shape, got {name!r}")


def _integrated_gradients(
    model: Wavenet,
    x: torch.Tensor,
    base: torch.Tensor,
    eda_prev: torch.Tensor,
    memory: torch.Tensor | None,
    target: slice,
    scale: float,
    n_steps: int,
    internal_batch_size: int,
) -> tuple[torch.Tensor, float, float]:
    """One Integrated Gradients run over a slice of the clip, for every history at once.

    Args:
        x, base: (C_in, F, M) the slice's audio and baseline features.
        eda_prev: (S, C_out, T) the histories' previous values over the slice's T steps.
        memory: the EDA memory of those steps (models that read one), else None.
        target: the slice's steps whose expected EDA is summed.
        scale: µS per normalized unit (1 for units).

    Returns:
        (S, C_in, F, M) attributions; the mean over histories of F(audio) − F(baseline) and of
        Captum's convergence delta.
    """
    from captum.attr import IntegratedGradients

    n = eda_prev.shape[0]

    def forward(batch: torch.Tensor, prev: torch.Tensor, *mem: torch.Tensor) -> torch.Tensor:
        # (B, C_in, F, M) audio and (B, C_out, T) past → (B,) predicted EDA summed over the targets
        logits = model(batch, prev, eda_memory=mem[0]) if mem else model(batch, prev)
        return expected_eda(logits)[..., target].sum(dim=(1, 2)) * scale

    inputs = x[None].expand(n, *x.shape).contiguous()
    baselines = base[None].expand(n, *x.shape).contiguous()
    extra = (eda_prev,) if memory is None else (eda_prev, memory)
    attr, delta = IntegratedGradients(forward).attribute(
        inputs,
        baselines=baselines,
        additional_forward_args=extra,
        n_steps=n_steps,
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    with torch.no_grad():
        total = float((forward(inputs, *extra) - forward(baselines, *extra)).mean())
    return attr.detach(), total, float(delta.double().mean())


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
    baseline: str | torch.Tensor | np.ndarray = "recent_past",
    target_steps: slice | None = None,
    normalizer: MinMaxNormalizer | None = None,
    n_steps: int = 32,
    internal_batch_size: int = 8,
    seed: int = 0,
    samples: int = 8,
    chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
) -> AudioAttribution:
    """Integrated Gradients of the predicted EDA with respect to every MFCC frame of one clip.

    Args:
        model: a trained Wavenet (put in eval mode for the call, restored after).
        mfcc: (C_in, T*spf, M) model-ready features of the clip.
        eda_history: (C_out, T) or (T,) EDA in normalized units held fixed as the model's past
            (e.g. the real trace of a recording), or (S, C_out, T): S histories, attribution
            averaged over them. None: `samples` traces generated from the audio with `seed` (the
            model's own responses to this audio), averaged.
        baseline: one of `BASELINES` ("recent_past": each frame replaced by the mean of the
            `RECENT_PAST_SECONDS` before it; "silent"; "clip_mean"), or a (C_in, T*spf, M) array.
        target_steps: the EDA steps whose predictions are summed (default: all).
        normalizer: the EDA normalization; when given, attributions are in µS.
        n_steps: IG integration points (Gauss-Legendre).
        internal_batch_size: integration points per forward pass, over all histories (bounds memory).
        seed: sampling seed when the histories are generated.
        samples: how many histories to generate when `eda_history` is None (>= 1).
        chunk_seconds: the target steps are attributed in consecutive chunks of at most this
            many seconds, each run on its own frames and the receptive field before them, and
            the frames' attributions added up (None: the whole clip in one pass). Integrated
            Gradients is additive over the targets and no target depends on frames outside its
            chunk's slice, so the result is the one-pass answer (tested). Memory stays that of
            one chunk: for the quickstart model, 30 minutes of audio took 2.5 GB and 24 s in
            10-minute chunks, 3.7 GB and 62 s in one pass (peak RSS, one history, 2 threads).

    Returns:
        AudioAttribution with per-frame and per-step values summed over coefficients, channels
        and signals, averaged over the histories.

    Raises:
        ValueError: misshapen or non-finite inputs, `samples` < 1, `chunk_seconds` not positive,
            or `target_steps` with a step.
    """
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
    frame_rate = cfg.audio_sample_rate / cfg.mfcc_hop_size
    if isinstance(baseline, str):
        base, baseline_name = baseline_input(x, baseline, cfg.num_mfccs, frame_rate), baseline
    else:
        base, baseline_name = torch.as_tensor(baseline, dtype=torch.float32), "custom"
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

    first, stop, stride = target.indices(steps)
    if stride != 1:
        raise ValueError(f"target_steps must be a contiguous slice, got step {stride}")
    if chunk_seconds is not None and not chunk_seconds > 0:
        raise ValueError(f"chunk_seconds must be > 0 or None, got {chunk_seconds}")
    per_chunk = steps if chunk_seconds is None else max(1, int(chunk_seconds * cfg.eda_sample_rate))
    context = cfg.receptive_field_eda_steps - 1  # earlier steps whose frames a target step reads
    reads_memory = getattr(model, "reads_memory", False)  # a stand-in model may not have one
    memory = model.memory_of(eda_prev) if reads_memory else None  # a function of the history only

    per_frame = np.zeros(x.shape[1])  # (F,) summed over coefficients and channels, mean over histories
    total = delta = 0.0
    was_training = model.training
    model.eval()
    try:
        for a in range(first, stop, per_chunk):
            b = min(a + per_chunk, stop)
            lo = max(0, a - context)
            frames = slice(lo * spf, b * spf)
            chunk_attr, chunk_total, chunk_delta = _integrated_gradients(
                model,
                x[:, frames],
                base[:, frames],
                eda_prev[..., lo:b],
                None if memory is None else memory[..., lo:b],
                slice(a - lo, b - lo),
                scale,
                n_steps,
                internal_batch_size,
            )
            per_frame[frames] += chunk_attr.sum(dim=(1, 3)).mean(dim=0).cpu().double().numpy()
            total, delta = total + chunk_total, delta + chunk_delta
    finally:
        model.train(was_training)
    return AudioAttribution(
        frame_attribution=per_frame,
        step_attribution=per_frame.reshape(steps, spf).sum(axis=1),
        frame_rate=frame_rate,
        eda_sample_rate=float(cfg.eda_sample_rate),
        unit="us" if normalizer is not None else "units",
        total=total,
        convergence_delta=delta,
        horizon_s=float(cfg.receptive_field_seconds),
        n_histories=n,
        baseline=baseline_name,
    )
