"""Screening and attribution checked where the truth is known (datasets that ship their events).

A recording whose audio `<stem>.wav` has a `<stem>_events.csv` beside it (the synthetic dataset
writes one) gives the true loud onsets (`onset_s`, audio time) and a strength per event: the
`strength` column when present, else `loudness`, else `amplitude_us`. Two checks:

- **attribution near onsets**: the share of the attribution mass (positive part: the moments
  that raise the predicted EDA) that falls within `window_s` of a true onset, next to the share
  of the time those windows cover (what a uniform attribution would score);
- **where the attribution lies around the onsets** (`onset_profile`): the attribution averaged
  over onsets at every lag from a few seconds before to a few seconds after, like an
  event-related average; its peak lag and width say whether the mass misses the ±0.5 s
  windows by being late, early or spread;
- **screening vs the truth**: Spearman's ρ between the screening statistic of each recording and
  the number × mean strength of its true events (the summed strength), beside the ranking's
  split-half reliability (how much of its order new samples would keep).

`add_metrics_section` adds the numbers under one top-level key of an existing `metrics.json`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wavenet_lib.atomic_write import atomic_write_text
from wavenet_lib.data.normalization import MinMaxNormalizer

__all__ = [
    "STRENGTH_COLUMNS",
    "events_file",
    "true_events",
    "onset_windows",
    "onset_mass_fraction",
    "OnsetProfile",
    "onset_profile",
    "screening_correlation",
    "add_metrics_section",
]

STRENGTH_COLUMNS = ("strength", "loudness", "amplitude_us")


def events_file(audio_path: str | Path) -> Path:
    """`<stem>_events.csv` beside the audio file (may not exist)."""
    audio_path = Path(audio_path)
    return audio_path.with_name(f"{audio_path.stem}_events.csv")


def true_events(audio_path: str | Path) -> pd.DataFrame | None:
    """The known events of an audio file: columns onset_s (audio time, s) and strength.

    Strength is the first of `STRENGTH_COLUMNS` present. Returns None when no events file exists.

    Raises:
        ValueError: the events file has no `onset_s` column or no strength column.
    """
    path = events_file(audio_path)
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    if "onset_s" not in table.columns:
        raise ValueError(f"{path}: no onset_s column; columns are {list(table.columns)}")
    column = next((c for c in STRENGTH_COLUMNS if c in table.columns), None)
    if column is None:
        raise ValueError(
            f"{path}: no strength column (one of {STRENGTH_COLUMNS}); columns are {list(table.columns)}"
        )
    return pd.DataFrame(
        {"onset_s": table["onset_s"].to_numpy(float), "strength": table[column].to_numpy(float)}
    )


def onset_windows(times_s: np.ndarray, onsets_s: np.ndarray, window_s: float = 0.5) -> np.ndarray:
    """Boolean mask (len(times_s),): times within `window_s` of any onset (both sides)."""
    times = np.asarray(times_s, dtype=float)
    onsets = np.asarray(onsets_s, dtype=float)
    if onsets.size == 0:
        return np.zeros(times.shape, dtype=bool)
    return (np.abs(times[:, None] - onsets[None, :]) <= window_s).any(axis=1)


def onset_mass_fraction(
    attributions: Sequence[np.ndarray],
    times_s: Sequence[np.ndarray],
    onsets_s: Sequence[np.ndarray],
    window_s: float = 0.5,
) -> dict[str, float]:
    """Share of positive attribution mass near true onsets, pooled over recordings.

    Args:
        attributions: per recording, (F,) attribution per frame (or step).
        times_s: per recording, (F,) the centre time of each frame in the same clock as the onsets.
        onsets_s: per recording, the true onset times.
        window_s: half-width of the window around each onset.

    Returns:
        {"mass_fraction": positive mass within the windows / all positive mass,
         "abs_mass_fraction": the same for |attribution|,
         "window_coverage": fraction of frames inside the windows,
         "n_recordings", "n_onsets"}.
    """
    pos_in = pos_all = abs_in = abs_all = 0.0
    covered = total = 0
    n_onsets = 0
    for a, t, o in zip(attributions, times_s, onsets_s, strict=True):
        a = np.asarray(a, dtype=float)
        near = onset_windows(t, o, window_s)
        pos = np.clip(a, 0.0, None)
        pos_in, pos_all = pos_in + pos[near].sum(), pos_all + pos.sum()
        abs_in, abs_all = abs_in + np.abs(a[near]).sum(), abs_all + np.abs(a).sum()
        covered, total = covered + int(near.sum()), total + near.size
        n_onsets += len(o)
    return {
        "mass_fraction": pos_in / pos_all if pos_all > 0 else float("nan"),
        "abs_mass_fraction": abs_in / abs_all if abs_all > 0 else float("nan"),
        "window_coverage": covered / total if total else float("nan"),
        "n_recordings": float(len(attributions)),
        "n_onsets": float(n_onsets),
    }


@dataclass(frozen=True)
class OnsetProfile:
    """Attribution averaged around onsets (`onset_profile`).

    lags_s: (L,) lag of each point from the onset (s; negative = before it); positive / signed:
    (L,) mean over onsets of the positive part of the attribution / of the attribution itself at
    that lag (per step or frame, as given); peak_lag_s: the lag of the largest mean positive part;
    half_width_s: the span of lags where that mean stays at or above half its peak, contiguous
    around the peak (s); n_onsets: onsets whose whole lag range lay inside their recording.
    """

    lags_s: np.ndarray
    positive: np.ndarray
    signed: np.ndarray
    peak_lag_s: float
    half_width_s: float
    n_onsets: int


def onset_profile(
    attributions: Sequence[np.ndarray],
    times_s: Sequence[np.ndarray],
    onsets_s: Sequence[np.ndarray],
    span_s: tuple[float, float] = (-3.0, 3.0),
) -> OnsetProfile:
    """Event-locked average of attribution: where, relative to the onsets, the mass lies.

    Args:
        attributions: per recording, (F,) attribution per frame or step, on a regular clock.
        times_s: per recording, (F,) the centre time of each value, in the onsets' clock.
        onsets_s: per recording, the onset times.
        span_s: the lags averaged (s), from before to after the onset.

    Each onset reads the values at the nearest time and the following ones at the clock's own
    interval, so the lags are whole steps of that interval. Onsets too near an end of their
    recording for the whole span are left out.

    Raises:
        ValueError: span_s does not go from before to after the onset, or a recording has fewer
            than two values (no clock).
    """
    before, after = float(span_s[0]), float(span_s[1])
    if not before <= 0.0 <= after or before == after:
        raise ValueError(f"span_s must run from <= 0 to >= 0 s around the onset, got {span_s}")
    step = None
    total_pos = total_signed = None
    n = 0
    for a, t, o in zip(attributions, times_s, onsets_s, strict=True):
        a, t = np.asarray(a, dtype=float), np.asarray(t, dtype=float)
        if a.size < 2 or t.size != a.size:
            raise ValueError(f"each recording needs >= 2 values with a time each, got {a.size} and {t.size}")
        dt = float(np.median(np.diff(t)))
        if step is None:
            step = dt
            offsets = np.arange(int(np.floor(before / step + 1e-9)), int(np.ceil(after / step - 1e-9)) + 1)
            total_pos, total_signed = np.zeros(offsets.size), np.zeros(offsets.size)
        elif not np.isclose(dt, step):
            raise ValueError(f"recordings must share one clock: steps of {step} s and {dt} s")
        for onset in np.asarray(o, dtype=float):
            i = int(np.argmin(np.abs(t - onset)))
            idx = i + offsets
            if idx[0] < 0 or idx[-1] >= a.size:
                continue
            total_pos += np.clip(a[idx], 0.0, None)
            total_signed += a[idx]
            n += 1
    if step is None or total_pos is None or total_signed is None:
        raise ValueError("no recordings given")
    lags = offsets * step
    if n == 0:
        nan = np.full(lags.size, np.nan)
        return OnsetProfile(lags, nan, nan.copy(), float("nan"), float("nan"), 0)
    positive, signed = total_pos / n, total_signed / n
    peak = int(np.argmax(positive))
    above = positive >= 0.5 * positive[peak]
    lo = hi = peak
    while lo > 0 and above[lo - 1]:
        lo -= 1
    while hi < lags.size - 1 and above[hi + 1]:
        hi += 1
    return OnsetProfile(lags, positive, signed, float(lags[peak]), float((hi - lo + 1) * step), n)


def screening_correlation(ranking: pd.DataFrame, statistic: str = "scr_per_min") -> dict[str, float]:
    """Spearman's ρ between a screening statistic and the files' true summed event strength.

    Args:
        ranking: `ScreeningResult.ranking` (needs `file` and `statistic`); files without an
            events file are left out.
        statistic: the ranking column to correlate.

    Returns:
        {"spearman_rho", "p_value", "n_files"}.
    """
    from scipy.stats import spearmanr

    score, truth = [], []
    for file, value in zip(ranking["file"], ranking[statistic], strict=True):
        events = true_events(file)
        if events is None or not np.isfinite(value):
            continue
        score.append(float(value))
        truth.append(float(events["strength"].sum()))  # number × mean strength
    if len(score) < 3 or np.ptp(score) == 0 or np.ptp(truth) == 0:
        return {"spearman_rho": float("nan"), "p_value": float("nan"), "n_files": float(len(score))}
    rho, p = spearmanr(score, truth)
    return {"spearman_rho": float(rho), "p_value": float(p), "n_files": float(len(score))}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def add_metrics_section(path: str | Path, key: str, section: Mapping[str, Any]) -> Path:
    """Add (or replace) one top-level key of a metrics JSON file, keeping every other key.

    The file is created when missing; non-finite numbers are written as null; the write is
    atomic, so a reader never sees a half-written file.

    Raises:
        ValueError: the existing file is not a JSON object.
    """
    path = Path(path)
    metrics: dict[str, Any] = {}
    if path.is_file():
        metrics = json.loads(path.read_text())
        if not isinstance(metrics, dict):
            raise ValueError(f"{path}: expected a JSON object, found {type(metrics).__name__}")
    metrics[key] = _jsonable(section)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(metrics, indent=2, sort_keys=False) + "\n")


def validate_stimuli(
    model,
    experiment,
    bundle,
    samples: int = 16,
    seed: int = 0,
    screen_splits: Sequence[str] = ("val", "test"),
    attribution_split: str = "test",
    window_s: float = 0.5,
    rank_by: str | None = None,
    normalizer: MinMaxNormalizer | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Screen and attribute held-out recordings and score both against their true events.

    Screening runs on the recordings of `screen_splits` (never trained on; more files make a
    steadier rank correlation), attribution on `attribution_split`, scored at EDA-step
    resolution (the sum of each step's frames: the EDA's own time base, and per-frame values
    carry gradient noise that partly cancels within a step), each recording's real EDA
    held fixed as the history (`attribute_audio`, its default "recent_past" baseline). The
    screening's evoked rise compares each file with its own mean sound (`screen_stimuli`'s
    default reference, "clip_mean").

    Returns:
        (section for metrics.json, the ScreeningResult, recording_id → AudioAttribution).
    """
    from tqdm.auto import tqdm

    from wavenet_lib.attribution import attribute_audio
    from wavenet_lib.screening import screen_stimuli

    experiment = bundle.feature_config(experiment)  # new audio's features scaled as the bundle's
    ids = [r for split in screen_splits for r in bundle.splits[split]]
    files = [bundle.recordings[r].row.audio_path for r in ids]
    if normalizer is None and bundle.normalizer is not None:
        normalizer = bundle.normalizer
    if normalizer is None:  # per-recording normalization: the typical held-out range
        lows = [bundle.normalizers[r].lo for r in ids]
        highs = [bundle.normalizers[r].hi for r in ids]
        margin = bundle.normalizers[ids[0]].margin
        normalizer = MinMaxNormalizer(float(np.median(lows)), float(np.median(highs)), margin)
    screening = screen_stimuli(
        model, files, samples=samples, seed=seed, config=experiment, normalizer=normalizer,
        rank_by=rank_by, progress=progress,
    )  # fmt: skip
    attributions, attr_values, attr_times, attr_onsets = {}, [], [], []
    for rid in tqdm(bundle.splits[attribution_split], desc="attributing", unit="rec", disable=not progress):
        rec = bundle.load(rid, experiment)
        prepared = bundle.recordings[rid]
        events = true_events(prepared.row.audio_path)
        att = attribute_audio(model, rec.mfcc, rec.eda, normalizer=bundle.normalizers[rid], seed=seed)
        attributions[rid] = att
        if events is not None:
            attr_values.append(att.step_attribution)
            attr_times.append(prepared.audio_start_s + att.step_times_s + 0.5 / att.eda_sample_rate)
            attr_onsets.append(events["onset_s"].to_numpy(float))
    mass = onset_mass_fraction(attr_values, attr_times, attr_onsets, window_s)
    rank_by = screening.rank_by
    corr = screening_correlation(screening.ranking, rank_by)
    section = {
        "attribution_method": "integrated_gradients",
        "attribution_baseline": next((a.baseline for a in attributions.values()), "recent_past"),
        "attribution_split": attribution_split,
        "attribution_resolution": "eda_step",
        "attribution_onset_window_s": window_s,
        "attribution_onset_mass_fraction": mass["mass_fraction"],
        "attribution_onset_abs_mass_fraction": mass["abs_mass_fraction"],
        "attribution_onset_window_coverage": mass["window_coverage"],
        "attribution_n_recordings": mass["n_recordings"],
        "attribution_n_onsets": mass["n_onsets"],
        "screening_splits": list(screen_splits),
        "screening_samples": samples,
        "screening_statistic": rank_by,
        "screening_reference": screening.reference,
        "screening_spearman_rho": corr["spearman_rho"],
        "screening_spearman_p": corr["p_value"],
        "screening_n_files": corr["n_files"],
        "screening_ranking_reliability": screening.reliability,
    }
    profile = onset_profile(attr_values, attr_times, attr_onsets) if attr_values else None
    if profile is not None:  # where the mass lies around the onsets (notebook 04 plots it)
        section["attribution_profile_peak_lag_s"] = profile.peak_lag_s
        section["attribution_profile_half_width_s"] = profile.half_width_s
        section["attribution_profile_lags_s"] = profile.lags_s.tolist()
        section["attribution_profile_positive"] = profile.positive.tolist()
        section["attribution_profile_signed"] = profile.signed.tolist()
    for wider in (1.0, 2.0):  # context: how far from the onsets the rest of the mass lies
        around = onset_mass_fraction(attr_values, attr_times, attr_onsets, wider)
        section[f"attribution_mass_fraction_within_{wider:g}s"] = around["mass_fraction"]
        section[f"attribution_window_coverage_within_{wider:g}s"] = around["window_coverage"]
    for other in ("evoked_rise_us_per_min", "scr_per_min", "response_us_per_min", "eda_rise_us"):
        if other != rank_by:
            section[f"screening_spearman_rho_{other}"] = screening_correlation(screening.ranking, other)[
                "spearman_rho"
            ]
    return section, screening, attributions
