"""Figures for the notebooks: each function builds and returns a matplotlib Figure (no plt.show).

EDA is plotted in µS against time in seconds; generated samples arrive as (S, T) arrays at the
EDA rate. Figures are created with `matplotlib.figure.Figure`, so they need no GUI backend and are
not kept alive by pyplot; display one in Jupyter by leaving it as a cell's value, save it with
`fig.savefig(path)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from wavenet_lib.configs import WavenetConfig
from wavenet_lib.evaluate.event_locked import EventLockedResponse

__all__ = [
    "plot_real_vs_generated",
    "plot_quantile_bands",
    "plot_event_locked",
    "plot_scr_distributions",
    "plot_training_curves",
    "plot_receptive_field",
]

SCR_STATS = {
    "scr_rate_per_min": "SCRs per minute",
    "mean_amplitude_us": "mean amplitude (µS)",
    "mean_rise_time_s": "mean rise time (s)",
    "mean_recovery_time_s": "mean half-recovery (s)",
}


def _times(n: int, rate: float) -> np.ndarray:
    return np.arange(n) / rate


def _mark_events(ax, events_s: Sequence[float] | None, label: str = "audio events") -> None:
    for i, t in enumerate(events_s if events_s is not None else []):
        ax.axvline(t, color="0.4", ls=":", lw=0.8, label=label if i == 0 else None)


def plot_real_vs_generated(
    real_us: np.ndarray,
    generated_us: np.ndarray,
    eda_sample_rate: float,
    loudness: np.ndarray | None = None,
    loudness_rate: float | None = None,
    events_s: Sequence[float] | None = None,
    title: str = "",
) -> Figure:
    """Real vs generated EDA (top) over the audio's loudness (bottom, if given).

    Args:
        real_us: (T,) real EDA, µS.
        generated_us: (T,) or (S, T) generated EDA, µS; at most the first three samples are drawn.
        eda_sample_rate: Hz.
        loudness: (N,) RMS envelope of the audio (any units), e.g. librosa.feature.rms.
        loudness_rate: its frame rate (Hz); default: N spread over the EDA's duration.
        events_s: audio event onsets (s), drawn as dotted lines on both panels.
    """
    gen = np.atleast_2d(np.asarray(generated_us))
    rows = 2 if loudness is not None else 1
    fig = Figure(figsize=(10, 2.6 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    ax.plot(_times(len(real_us), eda_sample_rate), real_us, color="k", lw=1.2, label="real")
    for i, g in enumerate(gen[:3]):
        ax.plot(_times(g.size, eda_sample_rate), g, lw=0.9, alpha=0.8, label=f"generated {i + 1}")
    _mark_events(ax, events_s)
    ax.set_ylabel("EDA (µS)")
    ax.legend(loc="upper right", fontsize="small", ncol=2)
    ax.set_title(title or "real vs generated EDA")
    if loudness is not None:
        duration = len(real_us) / eda_sample_rate
        rate = loudness_rate or len(loudness) / duration
        floor = float(np.nanmin(loudness)) if len(loudness) else 0.0  # fill up from the quietest frame
        axes[1].fill_between(_times(len(loudness), rate), loudness, floor, color="tab:gray", alpha=0.6, lw=0)
        _mark_events(axes[1], events_s)
        axes[1].set_ylabel("audio RMS")
    axes[-1].set_xlabel("time (s)")
    return fig


def plot_quantile_bands(
    generated_us: np.ndarray,
    eda_sample_rate: float,
    real_us: np.ndarray | None = None,
    events_s: Sequence[float] | None = None,
    title: str = "",
) -> Figure:
    """Spread of generated samples over time: 5–95 % and 25–75 % bands and the median.

    Args:
        generated_us: (S, T) samples for one recording, µS.
        real_us: optional (T,) real trace drawn on top.
    """
    gen = np.atleast_2d(np.asarray(generated_us, dtype=float))
    t = _times(gen.shape[1], eda_sample_rate)
    q05, q25, q50, q75, q95 = np.quantile(gen, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.fill_between(t, q05, q95, color="tab:blue", alpha=0.2, lw=0, label="5–95 %")
    ax.fill_between(t, q25, q75, color="tab:blue", alpha=0.4, lw=0, label="25–75 %")
    ax.plot(t, q50, color="tab:blue", lw=1.2, label=f"median of {gen.shape[0]} samples")
    if real_us is not None:
        ax.plot(_times(len(real_us), eda_sample_rate), real_us, color="k", lw=1.0, label="real")
    _mark_events(ax, events_s)
    ax.set(xlabel="time (s)", ylabel="EDA (µS)", title=title or "generated EDA: quantile bands")
    ax.legend(loc="upper right", fontsize="small")
    return fig


def plot_event_locked(
    responses: Mapping[str, EventLockedResponse],
    title: str = "",
    ylabel: str = "Δ EDA from baseline (µS)",
) -> Figure:
    """Event-locked mean responses (e.g. real, generated, audio-blind) with peak-latency markers."""
    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.subplots()
    for name, r in responses.items():
        (line,) = ax.plot(r.times, r.mean, lw=1.5, label=f"{name} (n={r.n_events})")
        if np.isfinite(r.peak_latency_s):
            ax.axvline(r.peak_latency_s, color=line.get_color(), ls="--", lw=0.8)
            ax.plot([r.peak_latency_s], [r.peak_amplitude_us], "v", color=line.get_color())
    ax.axvline(0.0, color="0.3", lw=0.8)
    ax.axhline(0.0, color="0.7", lw=0.6)
    ax.set(
        xlabel="time from audio event (s)",
        ylabel=ylabel,
        title=title or "event-locked response (dashed: peak latency)",
    )
    ax.legend(fontsize="small")
    return fig


def plot_scr_distributions(stats: pd.DataFrame, columns: Sequence[str] | None = None) -> Figure:
    """Box + strip plots of SCR statistics per source, one panel per statistic.

    Args:
        stats: one row per trace with a `source` column (e.g. "real", "generated", "audio_blind")
            and the columns of `evaluation.scr_statistics`.
        columns: statistics to draw (default: rate, amplitude, rise time, recovery time).
    """
    columns = list(columns or SCR_STATS)
    sources = list(dict.fromkeys(stats["source"]))
    fig = Figure(figsize=(3.0 * len(columns), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(columns)))
    rng = np.random.default_rng(0)  # jitter only
    for ax, col in zip(axes, columns, strict=True):
        data = [stats.loc[stats["source"] == s, col].dropna().to_numpy(float) for s in sources]
        ax.boxplot(data, showfliers=False, widths=0.5)
        for i, values in enumerate(data, start=1):
            ax.plot(i + rng.uniform(-0.12, 0.12, values.size), values, "o", ms=3, alpha=0.6)
        ax.set_xticks(range(1, len(sources) + 1), sources, rotation=20)
        ax.set_title(SCR_STATS.get(col, col), fontsize="medium")
    return fig


def plot_training_curves(
    history: pd.DataFrame,
    reference_lines: Mapping[str, float] | None = None,
    title: str = "",
) -> Figure:
    """Train and validation loss (nats/step) against optimizer step.

    Args:
        history: columns step, train_loss, val_loss (NaN on rows without that value).
        reference_lines: optional horizontal lines, e.g. {"persistence": 1.9}.
    """
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.subplots()
    for col, style in (("train_loss", dict(lw=1.0, alpha=0.8)), ("val_loss", dict(marker="o", ms=4))):
        if col in history:
            rows = history[["step", col]].dropna()
            ax.plot(rows["step"], rows[col], label=col.replace("_", " "), **style)
    for i, (name, value) in enumerate((reference_lines or {}).items()):
        ax.axhline(value, ls="--", lw=0.9, color=f"C{i + 2}", label=name)
    ax.set(xlabel="step", ylabel="cross-entropy (nats/step)", title=title or "training curves")
    ax.legend(fontsize="small")
    return fig


def plot_receptive_field(config: WavenetConfig, step: int | None = None) -> Figure:
    """Dilation pattern of the stacks (top) and the MFCC frames one EDA step sees (bottom).

    Top: one bar per residual layer, spanning the frames (back from the newest) that the stack
    output has seen after that layer; the bar's label is its dilation, colours mark stacks.
    Bottom: MFCC frames around EDA step `step` (default: `config.first_full_step`), the step
    boundaries every `spectral_frames_per_eda_step` frames, the receptive field
    [(step+1)*spf - receptive_field_frames, (step+1)*spf) shaded and the step's own frames
    (pooled by the attention downsampler) highlighted.
    """
    spf = config.spectral_frames_per_eda_step
    rf = config.receptive_field_frames
    fig = Figure(figsize=(10, 6), layout="constrained")
    ax_layers, ax_frames = fig.subplots(2, 1, height_ratios=[2, 1])

    reach = 0
    n_layers = config.num_layers
    for i in range(n_layers):
        stack, j = divmod(i, config.layers_per_stack)
        dilation = 2**j
        reach += dilation
        ax_layers.barh(i, reach + 1, left=-reach, color=f"C{stack}", alpha=0.7, height=0.7)
        if n_layers <= 40:
            ax_layers.text(0.5, i, f" d={dilation}", va="center", fontsize="x-small")
    ax_layers.invert_yaxis()
    ax_layers.set(
        xlabel="frames back from the newest frame",
        ylabel="layer",
        title=(
            f"{config.num_stacks} stack(s) × {config.layers_per_stack} layers, dilations 1…"
            f"{2 ** (config.layers_per_stack - 1)}: stacks reach {reach + 1} frames"
        ),
    )

    t = config.first_full_step if step is None else step
    end = (t + 1) * spf
    start = end - rf
    lo = max(0, start - spf)
    ax_frames.axvspan(start, end, color="tab:blue", alpha=0.25, label=f"receptive field: {rf} frames")
    ax_frames.axvspan(end - spf, end, color="tab:orange", alpha=0.5, label=f"step {t}'s own {spf} frames")
    for b in range(lo - lo % spf, end + spf + 1, spf):
        ax_frames.axvline(b, color="0.5", lw=0.5)
    ax_frames.set_xlim(lo, end + spf)
    ax_frames.set_yticks([])
    ax_frames.set(
        xlabel=f"MFCC frame (grey lines: EDA steps of {spf} frames)",
        title=f"EDA step {t} sees frames [{start}, {end}) = {config.receptive_field_seconds:.2f} s of audio",
    )
    ax_frames.legend(loc="upper left", fontsize="small")
    return fig
