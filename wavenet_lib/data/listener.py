"""A simulated listener: the skin conductance of someone hearing a listening session.

The listener turns audio into EDA (µS) by a documented rule, so the dataset's audio → EDA link
is known exactly and can be checked from the written files alone.

**Audio features** (computed causally from the audio file: frame `f` ends at
`(f * hop + n_fft) / sample_rate` seconds and uses nothing later; 25 ms hop, 64 ms window,
40-band mel power spectrum from librosa; exponential moving averages, EMA, run forward only):

- `loudness_rise` (dB): loudness relative to the recent past, the classic orienting
  stimulus. Loudness `L` is the mel power in dB; the feature is `EMA_0.2s(L) - EMA_3s(L)`,
  how far the last ~0.2 s stands above the last ~3 s. Sudden loud entries, accents, a piece
  starting after a pause, the volume turned up.
- `spectral_novelty` (dB): change of timbre regardless of level. The log-mel spectrum with
  its mean over bands removed (spectral shape) is averaged over ~0.5 s and over ~5 s; the
  feature is the RMS over bands of their difference. New instruments, sections, pieces.

**Rule**: a feature event is a peak of the feature above the subject's threshold (the rule's
threshold, 6 dB for loudness_rise and 5.4 dB for spectral_novelty, times a per-subject factor
0.85-1.15), at least `min_event_gap_s` apart. `event_selection` says which of the peaks
closer than that gap count: `first` (the default) keeps the first peak and ignores the gap
after it (a refractory period), a causal rule; its strength is the feature's maximum over the
second from the peak on. `strongest` (the rule of the datasets written before this option)
keeps the highest (`scipy.signal.find_peaks` with `height` and `distance`), with the feature
value at the peak as its strength; it may wait up to the gap for a later, higher peak, so an
event can depend on audio the listener has not heard yet, which no causal model can learn.
Each event evokes an SCR with probability `evoked_probability`; no SCR is evoked
without an event. The SCR starts `latency` after the event: loudness rises act fast
(1.0-2.5 s, the latency of orienting SCRs), timbral novelty slower (2.5-4.0 s, as for
stimuli that must be appraised); each subject has a mean latency in the middle 60 % of the
range, each event adds Gaussian jitter (sd 20 % of the range), clipped to the range.

**Amplitude** of an evoked SCR (µS): `gain * (0.3 + 0.7 * (1 - exp(-(strength - threshold) /
scale))) * exp(-habituation * h) * lognormal(0, 0.15)`: grows with the strength of the event
and saturates (scale 10 dB for loudness_rise, 2 dB for spectral_novelty); `h` counts the
earlier evoked SCRs, each fading with a 60 s time constant (habituation to repeated stimuli,
recovering with rest); per-subject `habituation` 0.1-0.35.

**Physiology** (Boucsein, *Electrodermal Activity*, 2nd ed., 2012; Dawson, Schell & Filion,
"The electrodermal system", *Handbook of Psychophysiology*, 2017; Benedek & Kaernbach, 2010,
for the bi-exponential SCR):

- SCR shape: a sudomotor burst (Gaussian, 0.2 s sd) through the bi-exponential skin
  response `exp(-t/tau_decay) - exp(-t/tau_rise)`; per subject tau_rise 0.4-0.75 s and
  tau_decay 2.4-4.0 s, i.e. rise time (onset to peak) ~1.3-1.9 s and half-recovery ~2.1-3.6 s.
- Evoked amplitudes ~0.1-1 µS (per-subject `gain` 0.4-1.2 µS).
- Spontaneous (non-specific) SCRs: Poisson at a per-subject 1-3 per minute (configurable),
  amplitude lognormal around 0.08 µS, independent of the audio.
- Tonic level (SCL): per subject 3-14 µS, per session ±15 %, a slow linear trend (-12 % to
  +4 % of the level over the session: mostly downward, as during rest) and a smooth random
  drift (white noise through two 20 s EMAs, 0.2-0.6 µS sd); kept within 2-20 µS.
- Sensor: white noise of 2-6 nS sd, then quantized to 0.9 nS steps (the resolution of an
  Empatica E4).

Subject differences: gain, threshold factor, mean latency, SCR time constants, habituation
rate, spontaneous rate, tonic level and noise are drawn once per subject.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import find_peaks, lfilter
from scipy.stats import exponnorm

from wavenet_lib.configs import SyntheticDataConfig

__all__ = [
    "ListenerRule",
    "RULES",
    "Subject",
    "draw_subject",
    "latency_range",
    "base_threshold",
    "rule_threshold",
    "mel_frames",
    "causal_ema",
    "listener_feature",
    "feature_events",
    "event_drive",
    "scr_shape",
    "tonic_level",
    "simulate_listener",
]

FRAME_HOP_S = 0.025
FRAME_WINDOW_S = 0.064
N_MELS = 40
HABITUATION_RECOVERY_S = 60.0
SCR_ONSET_SMOOTH_S = 0.2
EVENT_INTEGRATION_S = 1.0  # "first" events: strength = the feature's maximum over this long
E4_RESOLUTION_US = 0.0009
TAU_RISE_S = (0.4, 0.75)  # per-subject ranges of the SCR time constants
TAU_DECAY_S = (2.4, 4.0)


@dataclass(frozen=True)
class ListenerRule:
    """One audio → SCR rule (see the module docstring).

    Attributes:
        name: the config value (`data.synthetic.listener`).
        unit: unit of the feature.
        threshold: events are feature peaks above `threshold * subject.threshold_factor`.
        strength_scale: feature units above threshold over which the amplitude saturates.
        latency_s: default (low, high) range of event → SCR-onset latencies (s).
    """

    name: str
    unit: str
    threshold: float
    strength_scale: float
    latency_s: tuple[float, float]


RULES: dict[str, ListenerRule] = {
    "loudness_rise": ListenerRule("loudness_rise", "dB", 6.0, 10.0, (1.0, 2.5)),
    "spectral_novelty": ListenerRule("spectral_novelty", "dB", 5.4, 2.0, (2.5, 4.0)),
}


@dataclass(frozen=True)
class Subject:
    """A listener's own parameters (drawn once per subject by `draw_subject`)."""

    index: int
    gain_us: float
    threshold_factor: float
    latency_mean_s: float
    tau_rise_s: float
    tau_decay_s: float
    habituation: float
    spontaneous_per_min: float
    scl_us: float
    noise_us: float

    def as_dict(self) -> dict:
        return asdict(self)


def draw_subject(rng: np.random.Generator, index: int, cfg: SyntheticDataConfig) -> Subject:
    """Draw subject `index`'s parameters; the latency mean lies in the middle 60 % of the range."""
    lo, hi = latency_range(cfg)
    return Subject(
        index=index,
        gain_us=float(rng.uniform(0.4, 1.2)),
        threshold_factor=float(rng.uniform(0.85, 1.15)),
        latency_mean_s=float(rng.uniform(lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo))),
        tau_rise_s=float(rng.uniform(TAU_RISE_S[0], TAU_RISE_S[1])),
        tau_decay_s=float(rng.uniform(TAU_DECAY_S[0], TAU_DECAY_S[1])),
        habituation=float(rng.uniform(0.1, 0.35)),
        spontaneous_per_min=float(rng.uniform(*cfg.spontaneous_per_min)),
        scl_us=float(rng.uniform(3.0, 14.0)),
        noise_us=float(rng.uniform(0.002, 0.006)),
    )


def latency_range(cfg: SyntheticDataConfig) -> tuple[float, float]:
    """The config's latency range, or its rule's default."""
    if cfg.latency_s is not None:
        low, high = cfg.latency_s
        return (float(low), float(high))
    return RULES[cfg.listener].latency_s


def base_threshold(cfg: SyntheticDataConfig) -> float:
    """The config's event threshold before subject differences, or its rule's default."""
    return float(cfg.threshold) if cfg.threshold is not None else RULES[cfg.listener].threshold


def rule_threshold(cfg: SyntheticDataConfig, subject: Subject) -> float:
    """The subject's event threshold (feature units)."""
    return base_threshold(cfg) * subject.threshold_factor


# --- audio features ---------------------------------------------------------------------------
def causal_ema(x: np.ndarray, tau_s: float, rate: float) -> np.ndarray:
    """Causal exponential moving average (time constant `tau_s`) along the last axis, started at the
    first value; `rate` is samples per second. Same shape as `x`."""
    a = np.exp(-1.0 / (tau_s * rate))
    first = x[..., :1]
    return lfilter([1.0 - a], [1.0, -a], x - first, axis=-1) + first


def mel_frames(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Causal mel power spectrogram in dB.

    Args:
        audio: (samples,) mono audio.
        sample_rate: its rate (Hz).

    Returns:
        mel_db: (N_MELS, frames) power in dB (floor -100 dB).
        times: (frames,) end time (s) of each frame's window: the frame uses no later audio.
        frame_rate: frames per second.
    """
    import librosa

    hop = max(1, int(round(FRAME_HOP_S * sample_rate)))
    n_fft = int(2 ** np.ceil(np.log2(FRAME_WINDOW_S * sample_rate)))
    mel = librosa.feature.melspectrogram(
        y=np.asarray(audio, dtype=np.float32), sr=sample_rate, n_fft=n_fft, hop_length=hop,
        center=False, n_mels=N_MELS, power=2.0, fmin=0.0, fmax=sample_rate / 2,
    )  # fmt: skip
    times = (np.arange(mel.shape[1]) * hop + n_fft) / sample_rate
    return 10.0 * np.log10(np.maximum(mel, 1e-10)), times, sample_rate / hop


def listener_feature(name: str, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The feature `name` ("loudness_rise" or "spectral_novelty") of `audio`, per frame.

    Returns:
        values: (frames,) feature in dB.
        times: (frames,) time (s) up to which each value has heard the audio.
    """
    if name not in RULES:
        raise ValueError(f"unknown listener rule {name!r}; expected one of {', '.join(RULES)}")
    mel_db, times, rate = mel_frames(audio, sample_rate)
    if name == "loudness_rise":
        loud = 10.0 * np.log10(np.maximum(np.mean(10.0 ** (mel_db / 10.0), axis=0), 1e-10))
        return causal_ema(loud, 0.2, rate) - causal_ema(loud, 3.0, rate), times
    shape = mel_db - mel_db.mean(axis=0, keepdims=True)
    diff = causal_ema(shape, 0.5, rate) - causal_ema(shape, 5.0, rate)
    return np.sqrt(np.mean(diff**2, axis=0)), times


def feature_events(
    values: np.ndarray,
    times: np.ndarray,
    threshold: float,
    min_gap_s: float,
    selection: str = "first",
) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of a feature above `threshold`, at least `min_gap_s` apart.

    selection:
        "first" (the default): in time order, the first peak above threshold is an event, and
            peaks within `min_gap_s` after it are not (a refractory period). Its strength is the
            feature's maximum over the `EVENT_INTEGRATION_S` from the peak on. Nothing depends on
            audio more than that after the event, less than the shortest latency.
        "strongest": of peaks closer than the gap, the higher wins, whichever comes first
            (`scipy.signal.find_peaks` with `distance`). An early peak can lose to a later one:
            the choice looks up to `min_gap_s` into the future.

    Returns:
        event_times: (E,) seconds; strengths: (E,) each event's strength (see `selection`).
    """
    if selection not in ("strongest", "first"):
        raise ValueError(f"selection must be 'strongest' or 'first', got {selection!r}")
    values = np.asarray(values, dtype=float)
    times = np.asarray(times, dtype=float)
    rate = 1.0 / float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    if selection == "strongest":
        peaks, _ = find_peaks(values, height=threshold, distance=max(1, int(round(min_gap_s * rate))))
        return times[peaks], values[peaks]
    candidates, _ = find_peaks(values, height=threshold)
    chosen: list[int] = []
    for p in candidates:
        if not chosen or times[p] - times[chosen[-1]] >= min_gap_s:
            chosen.append(int(p))
    idx = np.asarray(chosen, dtype=int)
    ends = np.searchsorted(times, times[idx] + EVENT_INTEGRATION_S, side="right")
    strengths = np.array([values[i:end].max() for i, end in zip(idx, ends, strict=True)], dtype=float)
    return times[idx], strengths


def event_drive(strength, threshold: float, scale: float):
    """How strongly an event drives its SCR: 0.3 at the threshold, saturating towards 1 over
    `scale` feature units above it (the amplitude before gain, habituation and jitter).
    `strength` may be a number or an array of them."""
    return 0.3 + 0.7 * (1.0 - np.exp(-(np.asarray(strength) - threshold) / scale))


# --- physiology -------------------------------------------------------------------------------
@lru_cache(maxsize=256)
def _shape_peak(tau_rise: float, tau_decay: float, smooth_s: float) -> float:
    t = np.arange(0.0, 40.0, 0.001)
    return float(_raw_shape(t, tau_rise, tau_decay, smooth_s).max())


def _raw_shape(t: np.ndarray, tau_rise: float, tau_decay: float, smooth_s: float) -> np.ndarray:
    if smooth_s <= 0:
        tp = np.clip(t, 0.0, None)
        return np.where(t > 0, np.exp(-tp / tau_decay) - np.exp(-tp / tau_rise), 0.0)
    # exp(-t/tau) (t > 0) convolved with a Gaussian burst centred 3 sd after onset
    loc = 3.0 * smooth_s
    decay = tau_decay * exponnorm.pdf(t, tau_decay / smooth_s, loc=loc, scale=smooth_s)
    rise = tau_rise * exponnorm.pdf(t, tau_rise / smooth_s, loc=loc, scale=smooth_s)
    return np.where(t > 0, decay - rise, 0.0)


def scr_shape(
    t: np.ndarray, tau_rise: float = 0.7, tau_decay: float = 3.0, smooth_s: float = 0.0
) -> np.ndarray:
    """SCR of unit peak, `t` seconds after its onset (0 for t <= 0); same shape as `t`.

    The bi-exponential `exp(-t/tau_decay) - exp(-t/tau_rise)`; with `smooth_s > 0` the
    sudomotor burst is a Gaussian of that width (centred 3 widths after onset) instead of an
    impulse, which rounds the onset as in recorded SCRs.
    """
    t = np.asarray(t, dtype=np.float64)
    return _raw_shape(t, tau_rise, tau_decay, smooth_s) / _shape_peak(tau_rise, tau_decay, smooth_s)


def tonic_level(rng: np.random.Generator, n_steps: int, rate: float, subject: Subject) -> np.ndarray:
    """Skin conductance level (µS), (n_steps,): session level, trend and smooth drift, in [2, 20]."""
    duration = n_steps / rate
    t = np.arange(n_steps) / rate
    base = subject.scl_us * rng.uniform(0.85, 1.15)
    trend = base * rng.uniform(-0.12, 0.04) * t / max(duration, 1.0)
    warm = int(60 * rate)  # start the drift filters in their stationary regime
    noise = rng.standard_normal(n_steps + warm)
    drift = causal_ema(causal_ema(noise, 20.0, rate), 20.0, rate)[warm:]
    drift = drift / (np.std(drift) + 1e-12) * rng.uniform(0.2, 0.6)
    return np.clip(base + trend + drift, 2.0, 20.0)


def simulate_listener(
    audio: np.ndarray,
    audio_sample_rate: int,
    eda_sample_rate: float,
    subject: Subject,
    cfg: SyntheticDataConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[dict], list[dict]]:
    """The listener's EDA for one session, with the ground truth.

    Args:
        audio: (samples,) the audio exactly as written to disk (decoded back to float).
        audio_sample_rate, eda_sample_rate: rates (Hz).
        subject: the listener.
        cfg: rule, latency, evoked probability, event gap, spontaneous rate.
        rng: the session's generator for the listener.

    Returns:
        eda: (steps,) µS, sample i at i / eda_sample_rate.
        events: one dict per feature event: onset_s (event time), feature, strength,
            threshold, evoked, latency_s, scr_onset_s, amplitude_us, habituation.
        spontaneous: one dict per spontaneous SCR: onset_s, amplitude_us.
    """
    rule = RULES[cfg.listener]
    duration = len(audio) / audio_sample_rate
    n_eda = int(round(duration * eda_sample_rate))
    te = np.arange(n_eda) / eda_sample_rate
    eda = tonic_level(rng, n_eda, eda_sample_rate, subject)
    shape = dict(tau_rise=subject.tau_rise_s, tau_decay=subject.tau_decay_s, smooth_s=SCR_ONSET_SMOOTH_S)

    values, times = listener_feature(rule.name, audio, audio_sample_rate)
    threshold = rule_threshold(cfg, subject)
    event_times, strengths = feature_events(
        values, times, threshold, cfg.min_event_gap_s, cfg.event_selection
    )
    lo, hi = latency_range(cfg)
    events, h, last = [], 0.0, 0.0
    for when, strength in zip(event_times, strengths, strict=True):
        h *= np.exp(-(when - last) / HABITUATION_RECOVERY_S)
        last = when
        evoked = bool(rng.random() < cfg.evoked_probability)
        latency = float(np.clip(subject.latency_mean_s + rng.normal(0.0, 0.2 * (hi - lo)), lo, hi))
        jitter = float(rng.lognormal(0.0, 0.15))
        factor = float(np.exp(-subject.habituation * h))
        event = {
            "onset_s": float(when), "feature": rule.name, "strength": float(strength),
            "threshold": threshold, "evoked": evoked,
        }  # fmt: skip
        if evoked:
            amp = float(
                subject.gain_us * event_drive(strength, threshold, rule.strength_scale) * factor * jitter
            )
            eda = eda + amp * scr_shape(te - (when + latency), **shape)
            h += 1.0
            event |= {"latency_s": latency, "scr_onset_s": float(when + latency), "amplitude_us": amp}
        else:
            event |= {"latency_s": float("nan"), "scr_onset_s": float("nan"), "amplitude_us": 0.0}
        events.append(event | {"habituation": factor})

    n_spont = int(rng.poisson(subject.spontaneous_per_min * duration / 60.0))
    spontaneous = []
    for onset in np.sort(rng.uniform(0.0, max(duration - 2.0, 0.0), n_spont)):
        amp = float(np.clip(rng.lognormal(np.log(0.08), 0.5), 0.02, 0.5))
        eda = eda + amp * scr_shape(te - onset, **shape)
        spontaneous.append({"onset_s": float(onset), "amplitude_us": amp})

    eda = eda + rng.normal(0.0, subject.noise_us, n_eda)
    eda = np.round(eda / E4_RESOLUTION_US) * E4_RESOLUTION_US
    return eda, events, spontaneous
