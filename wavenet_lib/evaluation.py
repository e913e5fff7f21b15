"""Evaluation: one scoring path for the model and its baselines, free-running and SCR metrics.

Every row of a metrics table comes from the same code, so the table shows what the audio adds:

* **model** — teacher-forced log-probabilities of the trained model on a whole recording;
* **audio_blind** — the same model fed a constant "silent" MFCC (`silent_mfcc_like`): what the
  EDA history alone predicts;
* **persistence** — no model at all: the next bin is the previous bin plus a discrete-Laplace jump
  (`persistence_log_probs`), the classic "tomorrow looks like today" baseline.

All three produce log-probabilities `(B, Q, C_out, T)` and `score_log_probs` turns log-probs +
target bins into cross-entropy (nats per step) and accuracy. Steps before `first_step` (by default
`config.first_full_step`, the first step whose receptive field lies inside the recording) are
ignored for all rows alike.

Free-running metrics compare traces in µS (RMSE, Pearson r, DTW); SCR statistics come from
neurokit2 with an absolute amplitude threshold in µS; `event_locked_response` averages the
baseline-subtracted EDA after audio events and reports the response latency.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from wavenet_lib.models.wavenet import Wavenet
from wavenet_lib.quantization import dequantize, quantize

__all__ = [
    "eda_prev_from_targets",
    "model_log_probs",
    "score_log_probs",
    "teacher_forced_metrics",
    "silent_mfcc_like",
    "audio_blind_metrics",
    "fit_persistence_scale",
    "persistence_log_probs",
    "persistence_metrics",
    "evaluate_recording",
    "free_running_metrics",
    "detect_scrs",
    "scr_statistics",
    "EventLockedResponse",
    "event_locked_response",
    "metrics_table",
    "write_metrics_json",
]

# Floor on the persistence jump scale (bins): a perfectly constant training trace would otherwise
# give a zero scale and infinite cross-entropy on the first jump of any other trace.
MIN_PERSISTENCE_SCALE_BINS = 1e-3


# ======================================================================================
# Teacher-forced scoring: one function for every row
# ======================================================================================


def _as_batch(eda_norm: torch.Tensor | np.ndarray, out_channels: int | None = None) -> torch.Tensor:
    """(T,), (C, T) or (B, C, T) → (B, C, T) float tensor."""
    x = torch.as_tensor(eda_norm)
    if x.dim() == 1:
        x = x[None, None]
    elif x.dim() == 2:
        x = x[None]
    if x.dim() != 3 or (out_channels is not None and x.shape[1] != out_channels):
        raise ValueError(
            f"EDA must be (T,), (C_out, T) or (B, C_out, T), got {tuple(torch.as_tensor(eda_norm).shape)}"
        )
    return x.float()


def eda_prev_from_targets(targets: torch.Tensor, levels: int) -> torch.Tensor:
    """Teacher-forcing input from target bins: (B, C, T) int64 → (B, C, T) float.

    `eda_prev[..., 0] = 0.0` (the start value), `eda_prev[..., t] = dequantize(targets[..., t-1])`:
    the same dequantized values that generation feeds back.
    """
    prev = torch.zeros(targets.shape, dtype=torch.float32, device=targets.device)
    prev[..., 1:] = dequantize(targets[..., :-1], levels)
    return prev


@torch.no_grad()
def model_log_probs(
    model: Wavenet,
    mfcc: torch.Tensor,
    eda_norm: torch.Tensor | np.ndarray,
    chunk_steps: int | None = None,
) -> torch.Tensor:
    """Teacher-forced log-softmax of the model over a whole recording.

    Args:
        model: the Wavenet (put in eval mode for the call, restored after).
        mfcc: (C_in, T*spf, M) or (B, C_in, T*spf, M) features.
        eda_norm: (T,), (C_out, T) or (B, C_out, T) EDA in normalized units [-1, 1].
        chunk_steps: if given, run the forward over chunks of this many steps, each with
            `first_full_step` steps of history in front, which gives exactly the full forward's
            logits (the network is causal with a finite receptive field) in bounded memory.

    Returns:
        log-probabilities (B, Q, C_out, T), float32 on the CPU.
    """
    cfg = model.config
    q, spf = cfg.quantization_levels, cfg.spectral_frames_per_eda_step
    mfcc = mfcc[None] if mfcc.dim() == 3 else mfcc
    param = next(model.parameters())
    targets = quantize(_as_batch(eda_norm, cfg.out_channels), q)
    eda_prev = eda_prev_from_targets(targets, q).to(param.device, param.dtype)
    mfcc = mfcc.to(param.device, param.dtype)
    steps = eda_prev.shape[-1]
    chunk = steps if chunk_steps is None else max(1, chunk_steps)
    history = cfg.first_full_step
    was_training = model.training
    model.eval()
    try:
        parts = []
        for start in range(0, steps, chunk):
            stop = min(steps, start + chunk)
            lo = max(0, start - history)
            logits = model(mfcc[:, :, lo * spf : stop * spf], eda_prev[..., lo:stop])
            parts.append(torch.log_softmax(logits[..., start - lo :].float(), dim=1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(parts, dim=-1)


def score_log_probs(log_probs: torch.Tensor, targets: torch.Tensor, first_step: int = 0) -> dict[str, float]:
    """Cross-entropy (nats per step) and accuracy of log-probabilities against target bins.

    Args:
        log_probs: (B, Q, C_out, T) log-probabilities (normalized over Q).
        targets: (B, C_out, T) int64 bin indices.
        first_step: steps t < first_step are ignored.

    Returns:
        {"cross_entropy_nats", "accuracy", "n_steps"}; the mean over batch, channels and scored steps.
    """
    lp = log_probs[..., first_step:]
    tg = targets[..., first_step:].to(lp.device)
    n = tg.numel()
    if n == 0:
        return {"cross_entropy_nats": float("nan"), "accuracy": float("nan"), "n_steps": 0.0}
    picked = lp.gather(1, tg.unsqueeze(1)).squeeze(1)  # (B, C_out, T')
    accuracy = (lp.argmax(dim=1) == tg).double().mean()
    return {
        "cross_entropy_nats": float(-picked.double().mean()),
        "accuracy": float(accuracy),
        "n_steps": float(n),
    }


def teacher_forced_metrics(
    model: Wavenet,
    mfcc: torch.Tensor,
    eda_norm: torch.Tensor | np.ndarray,
    first_step: int | None = None,
    chunk_steps: int | None = None,
) -> dict[str, float]:
    """Model cross-entropy (nats/step) and accuracy on one recording, teacher-forced.

    Args:
        mfcc: (C_in, T*spf, M) features of the whole recording (a batch dimension is allowed).
        eda_norm: (C_out, T) (or (T,)) EDA in normalized units.
        first_step: steps before it are not scored; None → `model.config.first_full_step`.
        chunk_steps: see `model_log_probs`.
    """
    cfg = model.config
    first = cfg.first_full_step if first_step is None else first_step
    targets = quantize(_as_batch(eda_norm, cfg.out_channels), cfg.quantization_levels)
    return score_log_probs(model_log_probs(model, mfcc, eda_norm, chunk_steps), targets, first)


# ======================================================================================
# Audio-blind baseline
# ======================================================================================


def silent_mfcc_like(mfcc: torch.Tensor) -> torch.Tensor:
    """A constant "silent" MFCC of the same shape: each coefficient's minimum over the clip, repeated.

    Silence after MFCC extraction is a time-constant frame at the bottom of the log-energy
    range (c0 at its minimum). Taking each coefficient's minimum over the clip gives such a frame
    in the clip's own units — whatever scaling or per-recording standardization was applied —
    without re-running feature extraction on zeroed audio. What matters for the baseline is that
    the input carries no audio events; pass any other mfcc to `audio_blind_metrics` to try another.

    Args:
        mfcc: (..., frames, M); the minimum is taken over the frames axis (-2), per channel.
    """
    return mfcc.amin(dim=-2, keepdim=True).expand_as(mfcc).clone()


def audio_blind_metrics(
    model: Wavenet,
    mfcc: torch.Tensor,
    eda_norm: torch.Tensor | np.ndarray,
    first_step: int | None = None,
    silent_mfcc: torch.Tensor | None = None,
    chunk_steps: int | None = None,
) -> dict[str, float]:
    """`teacher_forced_metrics` of the same model with the audio replaced by silence.

    `silent_mfcc` defaults to `silent_mfcc_like(mfcc)`; any (C_in, T*spf, M) tensor can be passed.
    """
    silent = silent_mfcc_like(mfcc) if silent_mfcc is None else silent_mfcc
    return teacher_forced_metrics(model, silent, eda_norm, first_step, chunk_steps)


# ======================================================================================
# Persistence baseline
# ======================================================================================


def _bin_deltas(
    traces: Sequence[torch.Tensor | np.ndarray] | torch.Tensor | np.ndarray, levels: int
) -> np.ndarray:
    """Step-to-step changes of quantized traces, in bins (int64), pooled over traces/channels."""
    if isinstance(traces, (np.ndarray, torch.Tensor)):
        traces = [traces]
    deltas = []
    for trace in traces:
        bins = np.asarray(quantize(np.asarray(trace, dtype=np.float64), levels))
        deltas.append(np.diff(bins, axis=-1).ravel())
    return np.concatenate(deltas) if deltas else np.zeros(0, dtype=np.int64)


def fit_persistence_scale(
    traces: Sequence[torch.Tensor | np.ndarray] | torch.Tensor | np.ndarray, levels: int
) -> float:
    """Maximum-likelihood jump scale (bins) of the persistence baseline.

    The baseline models the next bin as previous bin + D with D discrete-Laplace,
    P(D = d) = tanh(a/2) exp(-a |d|) (scipy.stats.dlaplace). Its maximum-likelihood parameter has
    the closed form a = arcsinh(1 / mean|d|); we return the scale 1/a, floored at
    `MIN_PERSISTENCE_SCALE_BINS`.

    Args:
        traces: normalized EDA, one array (…, T) or a sequence of them — the training recordings
            (or the evaluated recording itself when no training data is at hand).
        levels: quantization levels.
    """
    deltas = _bin_deltas(traces, levels)
    if deltas.size == 0:
        raise ValueError("need at least one trace with two or more steps to fit the persistence scale")
    mean_abs = float(np.abs(deltas).mean())
    if mean_abs == 0.0:
        return MIN_PERSISTENCE_SCALE_BINS
    return max(1.0 / math.asinh(1.0 / mean_abs), MIN_PERSISTENCE_SCALE_BINS)


def persistence_log_probs(
    eda_norm: torch.Tensor | np.ndarray, levels: int, scale_bins: float
) -> torch.Tensor:
    """Log-probabilities (B, Q, C_out, T) of the persistence baseline.

    At step t the distribution is centred on the previous step's bin (the start value 0.0 at t = 0,
    as the model sees it) with discrete-Laplace jumps of scale `scale_bins` (see
    `fit_persistence_scale`); mass beyond either end folds into the edge bin, as `quantize` clips.

    Written out in log space rather than with scipy.stats.dlaplace because the folded edge bins need
    log tail masses far out in the tails, where dlaplace's cdf/sf underflow to log(0) = -inf.
    """
    targets = quantize(_as_batch(eda_norm), levels)
    prev = quantize(eda_prev_from_targets(targets, levels), levels)  # (B, C, T) centre bins
    a = 1.0 / max(float(scale_bins), MIN_PERSISTENCE_SCALE_BINS)
    k = torch.arange(levels, dtype=torch.float64).view(1, levels, 1, 1)
    d = k - prev.unsqueeze(1).double()  # (B, Q, C, T) jump to each bin
    log_norm = math.log(math.tanh(a / 2))
    log_pmf = log_norm - a * d.abs()

    def log_tail(j: torch.Tensor) -> torch.Tensor:
        # log P(D >= j) = log P(D <= -j): for j >= 1 it is -a j - log(1 + e^-a); else log(1 - P(D >= 1 - j)).
        upper = -a * j - math.log1p(math.exp(-a))
        lower = torch.log1p(-torch.exp(-a * (1 - j) - math.log1p(math.exp(-a))))
        return torch.where(j >= 1, upper, lower)

    log_probs = log_pmf.clone()
    log_probs[:, 0] = log_tail(-d[:, 0])  # bin 0 takes all jumps <= its offset
    log_probs[:, -1] = log_tail(d[:, -1])  # bin Q-1 takes all jumps >= its offset
    return log_probs.float()


def persistence_metrics(
    eda_norm: torch.Tensor | np.ndarray,
    levels: int,
    scale_bins: float | None = None,
    train_traces: Sequence[torch.Tensor | np.ndarray] | None = None,
    first_step: int = 0,
) -> dict[str, float]:
    """Cross-entropy and accuracy of the persistence baseline on one recording.

    The jump scale is `scale_bins` if given, else fitted on `train_traces` if given, else on the
    recording's own deltas (an optimistic baseline: it has seen the test deltas). Pass the model's
    `config.first_full_step` as `first_step` so the same steps are scored as for the model.
    """
    if scale_bins is None:
        scale_bins = fit_persistence_scale(train_traces if train_traces else eda_norm, levels)
    targets = quantize(_as_batch(eda_norm), levels)
    metrics = score_log_probs(persistence_log_probs(eda_norm, levels, scale_bins), targets, first_step)
    return metrics | {"scale_bins": float(scale_bins)}


def evaluate_recording(
    model: Wavenet,
    mfcc: torch.Tensor,
    eda_norm: torch.Tensor | np.ndarray,
    persistence_scale_bins: float | None = None,
    first_step: int | None = None,
    chunk_steps: int | None = None,
) -> dict[str, dict[str, float]]:
    """The teacher-forced rows of the table for one recording, scored on the same steps.

    Returns {"model": ..., "audio_blind": ..., "persistence": ...}, each as `score_log_probs` gives.
    """
    first = model.config.first_full_step if first_step is None else first_step
    return {
        "model": teacher_forced_metrics(model, mfcc, eda_norm, first, chunk_steps),
        "audio_blind": audio_blind_metrics(model, mfcc, eda_norm, first, chunk_steps=chunk_steps),
        "persistence": persistence_metrics(
            eda_norm, model.config.quantization_levels, persistence_scale_bins, first_step=first
        ),
    }


# ======================================================================================
# Free-running metrics (µS traces)
# ======================================================================================


def free_running_metrics(
    real_us: np.ndarray,
    generated_us: np.ndarray,
    band_rad: float | None = None,
    dtw_max_samples: int | None = 4000,
) -> dict[str, float]:
    """RMSE, Pearson r and DTW distance between a real and a generated trace.

    Args:
        real_us, generated_us: (T,) traces in µS at the same (EDA) rate and of the same length.
        band_rad: optional Sakoe-Chiba band radius for DTW, as a fraction of the length
            (librosa's `band_rad`: the warping path stays within band_rad * T samples of the
            diagonal).
        dtw_max_samples: DTW needs a T×T cost matrix; longer traces are block-averaged by the
            smallest integer factor that brings them under this (None: never).

    Returns:
        {"rmse_us", "pearson_r" (NaN if either trace is constant), "dtw_us" (accumulated
        |difference| along the optimal path divided by the path length, µS), "dtw_factor"}.
    """
    real = np.asarray(real_us, dtype=np.float64).ravel()
    gen = np.asarray(generated_us, dtype=np.float64).ravel()
    if real.shape != gen.shape or real.size == 0:
        raise ValueError(
            f"real and generated traces must have the same non-zero length, got {real.size}, {gen.size}"
        )
    rmse = float(np.sqrt(np.mean((real - gen) ** 2)))
    r = float(np.corrcoef(real, gen)[0, 1]) if real.std() > 0 and gen.std() > 0 else float("nan")
    factor = 1 if dtw_max_samples is None else max(1, math.ceil(real.size / dtw_max_samples))
    a, b = _block_mean(real, factor), _block_mean(gen, factor)
    import librosa  # imported here: slow to import, and only this function needs it

    kwargs = {"global_constraints": True, "band_rad": band_rad} if band_rad is not None else {}
    cost, path = librosa.sequence.dtw(X=a[None, :], Y=b[None, :], metric="euclidean", **kwargs)
    return {
        "rmse_us": rmse,
        "pearson_r": r,
        "dtw_us": float(cost[-1, -1] / len(path)),
        "dtw_factor": float(factor),
    }


def _block_mean(x: np.ndarray, factor: int) -> np.ndarray:
    # Plain block means (not a filter): DTW only needs the trace's shape at a coarser step.
    if factor == 1:
        return x
    n = x.size // factor * factor
    return x[:n].reshape(-1, factor).mean(axis=1)


# ======================================================================================
# SCR statistics (neurokit2, absolute threshold)
# ======================================================================================

SCR_COLUMNS = ["onset_s", "peak_s", "amplitude_us", "rise_time_s", "recovery_time_s"]


def detect_scrs(
    eda_us: np.ndarray,
    sampling_rate: float,
    amplitude_min_us: float = 0.05,
    phasic_method: str = "highpass",
    max_rise_time_s: float | None = 5.0,
) -> pd.DataFrame:
    """Skin conductance responses of one trace, with an ABSOLUTE amplitude threshold in µS.

    neurokit2's `eda_peaks(amplitude_min=...)` threshold is relative (a fraction of the largest
    peak's prominence), so one big SCR would hide smaller real ones, and a flat generated trace
    would still "have" SCRs. We therefore run neurokit2's pipeline with no threshold
    (`amplitude_min=None`) — `eda_clean` (skipped at ≤ 6 Hz, where its 3 Hz low-pass is above
    Nyquist; E4 traces at 4 Hz need no upsampling), `eda_phasic` (`phasic_method`, default the
    0.05 Hz high-pass), `eda_peaks` (method "neurokit", half-recovery) — and keep the SCRs whose
    amplitude (peak minus onset of the phasic signal) is ≥ `amplitude_min_us` and whose rise time
    is ≤ `max_rise_time_s` (SCRs rise in about 1–3 s; the zero-phase high-pass rings after a large
    isolated SCR, and that slow rebound would otherwise pass an absolute threshold as an SCR).

    Returns:
        DataFrame with one row per SCR and columns onset_s, peak_s, amplitude_us, rise_time_s,
        recovery_time_s (NaN when the trace does not recover to half amplitude).
    """
    import neurokit2 as nk  # imported here: slow to import, and only SCR detection needs it

    x = np.asarray(eda_us, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError("EDA trace contains NaN or inf; interpolate or drop them before SCR detection")
    empty = pd.DataFrame({c: pd.Series(dtype=float) for c in SCR_COLUMNS})
    if x.size < max(4, int(4 * sampling_rate)) or np.ptp(x) == 0:
        return empty
    fs = int(round(sampling_rate)) if float(sampling_rate).is_integer() else sampling_rate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neurokit2 warns per call about filters and short signals
        clean = nk.eda_clean(x, sampling_rate=fs) if sampling_rate > 6 else x
        phasic = nk.eda_phasic(clean, sampling_rate=fs, method=phasic_method)["EDA_Phasic"].to_numpy()
        found = nk.eda_findpeaks(phasic, sampling_rate=fs, method="neurokit", amplitude_min=None)
        if len(found["SCR_Peaks"]) == 0 or np.all(np.isnan(found["SCR_Onsets"])):
            return empty
        _, info = nk.eda_peaks(phasic, sampling_rate=fs, method="neurokit", amplitude_min=None)
    table = pd.DataFrame(
        {
            "onset_s": np.asarray(info["SCR_Onsets"], dtype=float) / sampling_rate,
            "peak_s": np.asarray(info["SCR_Peaks"], dtype=float) / sampling_rate,
            "amplitude_us": np.asarray(info["SCR_Amplitude"], dtype=float),
            "rise_time_s": np.asarray(info["SCR_RiseTime"], dtype=float),
            "recovery_time_s": np.asarray(info["SCR_RecoveryTime"], dtype=float),
        }
    )
    keep = table["amplitude_us"] >= amplitude_min_us
    if max_rise_time_s is not None:
        keep &= table["rise_time_s"] <= max_rise_time_s
    return table[keep].reset_index(drop=True)


def scr_statistics(
    eda_us: np.ndarray,
    sampling_rate: float,
    amplitude_min_us: float = 0.05,
    phasic_method: str = "highpass",
    max_rise_time_s: float | None = 5.0,
) -> dict[str, float]:
    """Summary SCR statistics of one trace (see `detect_scrs` for the detection).

    Returns:
        {"n_scr", "scr_rate_per_min", "mean_amplitude_us", "mean_rise_time_s",
        "mean_recovery_time_s"}; with no SCRs the rate is 0 and the means are NaN.
    """
    scrs = detect_scrs(eda_us, sampling_rate, amplitude_min_us, phasic_method, max_rise_time_s)
    minutes = np.asarray(eda_us).size / sampling_rate / 60.0

    def mean(col: str) -> float:
        values = scrs[col].dropna()
        return float(values.mean()) if len(values) else float("nan")

    return {
        "n_scr": float(len(scrs)),
        "scr_rate_per_min": len(scrs) / minutes if minutes > 0 else float("nan"),
        "mean_amplitude_us": mean("amplitude_us"),
        "mean_rise_time_s": mean("rise_time_s"),
        "mean_recovery_time_s": mean("recovery_time_s"),
    }


# ======================================================================================
# Event-locked response
# ======================================================================================


@dataclass(frozen=True)
class EventLockedResponse:
    """Baseline-subtracted EDA around events (µS), averaged over events and samples.

    times: (L,) s relative to event onset; mean: (L,); per_event: (E, L), each event's curve
    averaged over samples; peak_latency_s / peak_amplitude_us: the mean curve's maximum over
    times > 0; onset_latency_s: first time ≥ 0 the mean reaches `onset_fraction` of the peak
    (comparable to an SCR-onset latency); n_events: events whose window fit in the recording.
    """

    times: np.ndarray
    mean: np.ndarray
    per_event: np.ndarray
    peak_latency_s: float
    peak_amplitude_us: float
    onset_latency_s: float
    n_events: int


def event_locked_response(
    eda_us: np.ndarray,
    sampling_rate: float,
    onsets_s: Sequence[float] | np.ndarray,
    window_s: tuple[float, float] = (-1.0, 8.0),
    baseline_s: tuple[float, float] = (-1.0, 0.0),
    onset_fraction: float = 0.1,
) -> EventLockedResponse:
    """Average EDA response to events (e.g. loud audio onsets).

    Args:
        eda_us: (T,) one trace, or (S, T) several (generated samples): averaged over samples too.
        sampling_rate: EDA rate (Hz).
        onsets_s: event onset times (s). Events whose window is not inside the trace are dropped.
        window_s: (start, end) of the window relative to onset (s).
        baseline_s: [start, end) relative to onset whose mean is subtracted from each curve.
        onset_fraction: fraction of the peak defining `onset_latency_s`.

    Onsets fall between samples, so curves are read off by linear interpolation (np.interp) on
    the window's grid of multiples of 1 / sampling_rate.
    """
    traces = np.atleast_2d(np.asarray(eda_us, dtype=np.float64))
    n = traces.shape[1]
    t_trace = np.arange(n) / sampling_rate
    times = np.arange(math.ceil(window_s[0] * sampling_rate), math.floor(window_s[1] * sampling_rate) + 1)
    times = times / sampling_rate
    in_base = (times >= baseline_s[0]) & (times < baseline_s[1])
    if not in_base.any():
        raise ValueError(f"baseline window {baseline_s} contains no sample of the window {window_s}")
    onsets = [float(o) for o in np.asarray(onsets_s, dtype=float).ravel()]
    kept = [o for o in onsets if o + times[0] >= 0 and o + times[-1] <= t_trace[-1]]
    if not kept:
        empty = np.full(times.size, np.nan)
        return EventLockedResponse(times, empty, np.zeros((0, times.size)), math.nan, math.nan, math.nan, 0)
    curves = np.stack([[np.interp(o + times, t_trace, tr) for o in kept] for tr in traces])  # (S, E, L)
    curves -= curves[..., in_base].mean(axis=-1, keepdims=True)
    return _summarize_events(times, curves.mean(axis=0), onset_fraction)


def _summarize_events(times: np.ndarray, per_event: np.ndarray, onset_fraction: float) -> EventLockedResponse:
    """Mean curve, its peak after onset and the onset latency, from per-event curves (E, L)."""
    mean = per_event.mean(axis=0)
    after = times > 0
    i_peak = int(np.flatnonzero(after)[np.argmax(mean[after])])
    peak = float(mean[i_peak])
    reached = np.flatnonzero((times >= 0) & (times <= times[i_peak]) & (mean >= onset_fraction * peak))
    onset_latency = float(times[reached[0]]) if peak > 0 and reached.size else math.nan
    return EventLockedResponse(
        times, mean, per_event, float(times[i_peak]), peak, onset_latency, len(per_event)
    )


def pool_event_locked(
    responses: Sequence[EventLockedResponse], onset_fraction: float = 0.1
) -> EventLockedResponse:
    """Pool the events of several recordings' responses (same window and rate) into one response."""
    used = [r for r in responses if r.n_events]
    if not used:
        raise ValueError("no events to pool: every response has n_events == 0")
    times = used[0].times
    if any(r.times.shape != times.shape or not np.allclose(r.times, times) for r in used):
        raise ValueError("responses to pool must share one window and sampling rate")
    return _summarize_events(times, np.concatenate([r.per_event for r in used]), onset_fraction)


# ======================================================================================
# Tables and JSON
# ======================================================================================


def metrics_table(rows: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Rows such as {"real": {...}, "model": {...}, "persistence": {...}} → DataFrame.

    One row per source (the index, in the given order); columns are the union of the metric
    names in first-seen order; missing values are NaN.
    """
    columns: list[str] = []
    for metrics in rows.values():
        columns += [k for k in metrics if k not in columns]
    table = pd.DataFrame.from_dict(
        {name: dict(m) for name, m in rows.items()}, orient="index", columns=columns
    )
    table.index.name = "source"
    return table.apply(pd.to_numeric, errors="coerce")


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(np.asarray(value).tolist())]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: metrics must be numbers, got a bool")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: metrics must be numbers, got {type(value).__name__}") from exc
    return number if math.isfinite(number) else None


def write_metrics_json(path: str | Path, metrics: Mapping[str, Any]) -> Path:
    """Write (nested) metrics as JSON: every value a float, NaN/inf → null; atomic replace.

    Nested mappings (e.g. {"model": {"cross_entropy_nats": ...}}) and lists of numbers are kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_jsonable(metrics, "metrics"), indent=2, allow_nan=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
