"""Figures for stimulus screening and attribution (notebook 04, `wavenet-eda screen --plots`).

Like `wavenet_lib.evaluate.plots`, each function returns a `matplotlib.figure.Figure` (no GUI
backend needed; `display(fig)` in a notebook, `fig.savefig(...)` in scripts).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from wavenet_lib.configs import ExperimentConfig

__all__ = ["plot_ranking", "plot_screened_file", "plot_stimulus_attribution", "plot_onset_profile"]


def _bands(ax, times: np.ndarray, traces: np.ndarray, color: str = "C0", label: str = "generated") -> None:
    """Median and 10–90 % / 25–75 % bands of (S, T) traces."""
    q = np.percentile(traces, [10, 25, 50, 75, 90], axis=0)
    ax.fill_between(times, q[0], q[4], color=color, alpha=0.18, lw=0, label=f"{label} 10–90 %")
    ax.fill_between(times, q[1], q[3], color=color, alpha=0.35, lw=0, label=f"{label} 25–75 %")
    ax.plot(times, q[2], color=color, lw=1.2, label=f"{label} median")


def _events(ax, events_s: Sequence[float] | None) -> None:
    for i, t in enumerate(events_s if events_s is not None else []):
        ax.axvline(t, color="crimson", ls="--", lw=0.8, alpha=0.6, label="true onsets" if i == 0 else None)


def plot_ranking(ranking: pd.DataFrame, statistic: str = "scr_per_min", top: int = 20) -> Figure:
    """Horizontal bars of `statistic` ± its standard error for the `top` ranked files."""
    rows = ranking.head(top).iloc[::-1]
    fig = Figure(figsize=(7, 0.35 * len(rows) + 1.2))
    ax = fig.subplots()
    err = rows.get(f"{statistic}_se")
    ax.barh(
        [Path(f).name for f in rows["file"]], rows[statistic], xerr=None if err is None else err.fillna(0)
    )
    ax.set_xlabel(f"{statistic} (mean ± s.e. over samples)")
    ax.set_title(f"screening: top {len(rows)} of {len(ranking)} files")
    fig.tight_layout()
    return fig


def plot_screened_file(
    eda_us: np.ndarray,
    sample_rate: float,
    audio_path: str | Path,
    config: ExperimentConfig,
    title: str = "",
    events_s: Sequence[float] | None = None,
) -> Figure:
    """Generated quantile bands (µS) over the audio's loudness (dB, right axis).

    Args:
        eda_us: (S, T) generated traces of one file.
        sample_rate: EDA steps per second.
        audio_path: the file, for its loudness envelope.
        config: the experiment config (audio rate and hop).
        title: figure title.
        events_s: optional event times to mark (s).
    """
    from wavenet_lib.evaluate.assessment import loudness_envelope

    traces = np.atleast_2d(eda_us)
    times = np.arange(traces.shape[-1]) / sample_rate
    m = config.model
    loud, rate = loudness_envelope(
        Path(audio_path), m.audio_sample_rate, m.mfcc_hop_size, 0.0, times[-1] + 1 / sample_rate
    )
    fig = Figure(figsize=(10, 3.2))
    ax = fig.subplots()
    right = ax.twinx()
    right.fill_between(np.arange(loud.size) / rate, loud.min(), loud, color="0.6", alpha=0.35, lw=0)
    right.set_ylabel("loudness (dB)")
    _bands(ax, times, traces)
    _events(ax, events_s)
    ax.set_zorder(right.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("EDA (µS)")
    ax.set_title(title or Path(audio_path).name)
    ax.legend(loc="upper left", fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_stimulus_attribution(
    audio_path: str | Path,
    config: ExperimentConfig,
    attribution,
    eda_us: np.ndarray | None = None,
    sample_rate: float | None = None,
    events_s: Sequence[float] | None = None,
    title: str = "",
) -> Figure:
    """Waveform, mel spectrogram, attribution and generated EDA bands on one time axis.

    Args:
        audio_path: the audio file.
        config: the experiment config (audio rate, hop).
        attribution: an `AudioAttribution` of the file (plotted per EDA step).
        eda_us: optional (S, T) generated traces (µS) drawn as quantile bands.
        sample_rate: their EDA rate (default: the attribution's).
        events_s: optional true event times to mark.
        title: figure title.
    """
    import librosa
    import librosa.display

    m = config.model
    duration = attribution.step_attribution.size / attribution.eda_sample_rate
    y, sr = librosa.load(Path(audio_path), sr=m.audio_sample_rate, mono=True, duration=duration)
    rows = 4 if eda_us is not None else 3
    fig = Figure(figsize=(11, 2.0 * rows + 0.5))
    axes = fig.subplots(rows, 1, sharex=True)
    axes[0].plot(np.arange(y.size) / sr, y, color="0.3", lw=0.4)
    axes[0].set_ylabel("waveform")
    mel = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=sr, n_fft=m.mfcc_window_size, hop_length=m.mfcc_hop_size),
        ref=np.max,
    )
    librosa.display.specshow(mel, sr=sr, hop_length=m.mfcc_hop_size, x_axis="time", y_axis="mel", ax=axes[1])
    axes[1].set_ylabel("mel (Hz)")
    axes[1].set_xlabel("")
    a = attribution.step_attribution
    t = attribution.step_times_s
    axes[2].bar(
        t,
        np.clip(a, 0, None),
        width=1 / attribution.eda_sample_rate,
        align="edge",
        color="C3",
        label="raises",
    )
    axes[2].bar(
        t,
        np.clip(a, None, 0),
        width=1 / attribution.eda_sample_rate,
        align="edge",
        color="C0",
        label="lowers",
    )
    unit = "µS" if attribution.unit == "us" else "units"
    axes[2].set_ylabel(f"attribution ({unit})")
    axes[2].legend(loc="upper right", fontsize=7)
    if eda_us is not None:
        traces = np.atleast_2d(eda_us)
        rate = sample_rate or attribution.eda_sample_rate
        _bands(axes[3], np.arange(traces.shape[-1]) / rate, traces)
        axes[3].set_ylabel("EDA (µS)")
        axes[3].legend(loc="upper left", fontsize=7, ncol=3)
    for ax in axes:
        _events(ax, events_s)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0, duration)
    fig.suptitle(title or Path(audio_path).name)
    fig.tight_layout()
    return fig


def plot_onset_profile(
    lags_s: Sequence[float],
    positive: Sequence[float],
    signed: Sequence[float],
    window_s: float = 0.5,
    unit: str = "µS",
) -> Figure:
    """Attribution averaged around the true onsets (`stimulus_validation.onset_profile`).

    Bars: the mean positive part at each lag (what the onset-window share counts); line: the
    mean signed attribution; shaded: the ±`window_s` window that share is scored in.
    """
    lags = np.asarray(lags_s, dtype=float)
    step = float(np.median(np.diff(lags))) if lags.size > 1 else 1.0
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    ax.axvspan(-window_s, window_s, color="crimson", alpha=0.08, lw=0, label=f"±{window_s:g} s of the onset")
    ax.bar(lags, positive, width=0.8 * step, color="C3", alpha=0.75, label="positive part (raises)")
    ax.plot(lags, signed, color="k", lw=1.2, marker=".", label="signed mean")
    ax.axhline(0.0, color="0.5", lw=0.6)
    ax.axvline(0.0, color="crimson", ls="--", lw=0.8)
    ax.set_xlabel("time from the true onset (s)")
    ax.set_ylabel(f"mean attribution ({unit} per step)")
    ax.set_title("attribution around the true onsets")
    ax.legend(fontsize=7, loc="upper left")
    return fig
