"""Event-locked response: baseline-subtracted EDA averaged after audio events, and its latency.

`event_locked_response` averages the EDA around events, each curve minus its pre-event
baseline. A trace that merely drifts, or holds SCRs unrelated to the events, also gives a
curve: `chance_response` is the same average around times on a regular grid (events that know
nothing of the EDA), and `above_chance` subtracts it, so what remains is the response to the
events. A trace drifting by r µS/s has a chance curve r·t; for the audio-blind baseline the
curve above chance is about zero, while the raw curve shows the drift as a "response".
`share_of_real` gives a source's pooled peak as a fraction of the real one, with a bootstrap
interval over recordings: how far one evaluation's number can be trusted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wavenet_lib.evaluate.bootstrap import percentile_interval, recording_resamples


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


def chance_response(
    eda_us: np.ndarray,
    sampling_rate: float,
    window_s: tuple[float, float] = (-1.0, 8.0),
    baseline_s: tuple[float, float] = (-1.0, 0.0),
    hop_s: float = 0.5,
    start_s: float = 0.0,
) -> EventLockedResponse:
    """`event_locked_response` around times every `hop_s` seconds: the response to chance events.

    Args:
        eda_us: (T,) or (S, T), as for `event_locked_response`.
        sampling_rate: EDA rate (Hz).
        window_s, baseline_s: as for `event_locked_response` (use the same).
        hop_s: grid spacing (s).
        start_s: the first grid time is the first at or after `start_s` whose window fits.

    Every window inside the trace is used, so the curve is the trace's average behaviour over
    `window_s` (drift, spontaneous SCRs), whatever the events.
    """
    if hop_s <= 0:
        raise ValueError(f"hop_s must be > 0, got {hop_s}")
    n = np.atleast_2d(np.asarray(eda_us)).shape[1]
    last = (n - 1) / sampling_rate - window_s[1]
    onsets = np.arange(max(start_s, -window_s[0]), last + 1e-9, hop_s)
    return event_locked_response(eda_us, sampling_rate, onsets, window_s, baseline_s)


def above_chance(
    response: EventLockedResponse, chance: EventLockedResponse, onset_fraction: float = 0.1
) -> EventLockedResponse:
    """`response` with `chance.mean` subtracted from every event's curve (same window and rate).

    Peak, latencies and pooling then describe the response beyond what the trace does anyway.
    With no events (or no chance windows) the response is returned unchanged.
    """
    if response.n_events == 0 or chance.n_events == 0:
        return response
    if chance.times.shape != response.times.shape or not np.allclose(chance.times, response.times):
        raise ValueError("the chance response must share the event response's window and sampling rate")
    return _summarize_events(response.times, response.per_event - chance.mean, onset_fraction)


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


def share_of_real(
    other: Sequence[EventLockedResponse],
    real: Sequence[EventLockedResponse],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """The pooled peak of `other` as a fraction of the pooled real peak, with a bootstrap
    interval over recordings.

    Args:
        other, real: per-recording responses of one source and of the real EDA, in the same
            recording order (with the same events; raw or above chance).
        n_boot: bootstrap resamples: recordings are drawn with replacement, and each draw pools
            the drawn recordings' events of both sources, as `pool_event_locked` pools them.
        level: the interval's coverage (percentile interval).
        seed: the resampling's random stream.

    Returns:
        (fraction, low, high): the fraction on all recordings and the interval's ends; the ends
        are NaN with fewer than two recordings with events, and every value is NaN where the real
        peak is not positive. With a few dozen recordings of a few events each, evaluations of
        one model differ by this much: read a target against the interval, not the point.
    """
    if len(other) != len(real):
        raise ValueError(f"other and real must list the same recordings, got {len(other)} and {len(real)}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    used = [i for i, r in enumerate(real) if r.n_events and other[i].n_events]
    if not used:
        return math.nan, math.nan, math.nan
    times = real[used[0]].times
    after = times > 0
    # Per recording: the sum of its event curves and their number; a pool is a weighted sum of these.
    sums = {
        name: np.stack([src[i].per_event.sum(axis=0) for i in used])
        for name, src in (("other", other), ("real", real))
    }
    counts = np.array([real[i].n_events for i in used], dtype=np.float64)
    other_counts = np.array([other[i].n_events for i in used], dtype=np.float64)

    def fractions(weights: np.ndarray) -> np.ndarray:  # weights (B, n): copies of each recording
        peak_real = ((weights @ sums["real"]) / (weights @ counts)[:, None])[:, after].max(axis=1)
        peak_other = ((weights @ sums["other"]) / (weights @ other_counts)[:, None])[:, after].max(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(peak_real > 0, peak_other / peak_real, np.nan)

    point = float(fractions(np.ones((1, len(used))))[0])
    if len(used) < 2 or not math.isfinite(point):
        return point, math.nan, math.nan
    low, high = percentile_interval(fractions(recording_resamples(len(used), n_boot, seed)), level)
    return point, low, high
