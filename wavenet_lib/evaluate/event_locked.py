"""Event-locked response: baseline-subtracted EDA averaged after audio events, and its latency."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
    steps = np.arange(math.ceil(window_s[0] * sampling_rate), math.floor(window_s[1] * sampling_rate) + 1)
    times = steps / sampling_rate
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
