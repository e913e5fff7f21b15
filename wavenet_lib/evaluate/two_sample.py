"""Classifier two-sample test: can a classifier tell real EDA windows from another source's?

A gradient-boosting classifier (scikit-learn) learns to tell real 30 s windows from windows of
another source (generated, audio-blind), from level-free window features (`window_features`:
statistics of the first difference, its autocorrelation and spectral band powers, SCR counts
and shapes); cross-validated grouped by recording (GroupKFold), so a recording's windows are
never both trained on and scored. ROC AUC 0.5: indistinguishable; 1.0: always told apart.
Part of the realism metrics (`wavenet_lib.evaluate.realism`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import signal, stats

from wavenet_lib.evaluate.bootstrap import percentile_interval, recording_resamples
from wavenet_lib.evaluate.scrs import detect_scrs
from wavenet_lib.evaluate.traces import as_traces

__all__ = [
    "MIN_WINDOWS_PER_LEAF",
    "DEFAULT_RESOLUTION_US",
    "BAND_EDGES_HZ",
    "TwoSampleTest",
    "auc_interval",
    "weighted_auc",
    "window_features",
    "source_window_features",
    "trace_window_features",
    "stacked_window_features",
    "classifier_two_sample_test",
    "two_sample_test_on_features",
]

# The two-sample classifier's smallest leaf; a fold whose training windows hold fewer than twice
# this of either source is not scored (a classifier that cannot split would read as AUC 0.5).
MIN_WINDOWS_PER_LEAF = 5

# The resolution (µS) at which the two-sample classifier sees the traces (see `window_features`):
# well below the 0.05 µS SCR threshold, about one quantization step of a few µS range in 256 levels.
DEFAULT_RESOLUTION_US = 0.01

# Spectral band edges (Hz) of the window features; bands above Nyquist are NaN.
BAND_EDGES_HZ = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
_TINY = 1e-12


def _windows(n: int, size: int, hop: int) -> list[slice]:
    return [slice(s, s + size) for s in range(0, n - size + 1, hop)]


def window_features(
    trace_us: np.ndarray,
    sampling_rate: float,
    window_s: float = 30.0,
    hop_s: float = 15.0,
    scrs: pd.DataFrame | None = None,
    resolution_us: float = DEFAULT_RESOLUTION_US,
) -> pd.DataFrame:
    """Level-free features of the windows of one trace, for the two-sample classifier.

    Windows of `window_s` seconds every `hop_s` seconds (a trace shorter than one window gives
    none). Per window, with d = Δx (µS/step): log10 std and mean |d|; skewness, kurtosis and
    quantiles of d / std(d); log10 of the largest rise and fall; the fraction of rising steps;
    autocorrelation of d at lags 1, 2, 4; log10 std(Δd) / std(d) (roughness); the detrended
    range; relative log band powers of d (Welch, `BAND_EDGES_HZ`); and the SCRs (from one
    detection over the whole trace) whose peak lies in the window: count per minute, mean
    amplitude, rise and half-recovery (NaN without SCRs). `scrs`: the trace's `detect_scrs`
    table if already computed. The step statistics are computed on the trace plus Gaussian
    dither of std `resolution_us` (µS), the same for every source: realism is judged at that
    resolution, so a 256-level quantization of the output (steps of ~0.01 µS) is not by itself
    what tells the sources apart. SCRs are detected on the trace itself.

    Returns:
        DataFrame (n_windows, n_features).
    """
    x = np.asarray(trace_us, dtype=np.float64).ravel()
    size = int(round(window_s * sampling_rate))
    hop = max(1, int(round(hop_s * sampling_rate)))
    spans = _windows(x.size, size, hop)
    if not spans:
        return pd.DataFrame()
    if scrs is None:
        scrs = detect_scrs(x, sampling_rate)
    # The same dither for every trace of a length: neutral between sources, it hides structure
    # finer than `resolution_us` (such as the model's quantization levels) from the step statistics.
    dithered = x + np.random.default_rng(0).normal(0.0, resolution_us, x.size) if resolution_us > 0 else x
    # All windows at once (one row each): the per-window library calls cost more than their work.
    w = np.stack([dithered[span] for span in spans])
    d = np.diff(w, axis=1)
    sd = d.std(axis=1) + _TINY
    z = d / sd[:, None]
    varies = sd > 1e-9
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a constant window: its moments are set to 0
        skew = np.where(varies, stats.skew(d, axis=1), 0.0)
        kurtosis = np.where(varies, stats.kurtosis(d, axis=1), 0.0)
    columns: dict[str, np.ndarray] = {
        "log_std_diff": np.log10(sd),
        "log_mean_abs_diff": np.log10(np.abs(d).mean(axis=1) + _TINY),
        "skew_diff": skew,
        "kurtosis_diff": kurtosis,
        "log_max_rise": np.log10(np.maximum(d.max(axis=1), 0.0) + 1e-6),
        "log_max_fall": np.log10(np.maximum(-d.min(axis=1), 0.0) + 1e-6),
        "rising_fraction": (d > 0).mean(axis=1),
        "log_roughness": np.log10(np.diff(d, axis=1).std(axis=1) / sd + _TINY),
        "log_detrended_range": np.log10(np.ptp(signal.detrend(w, axis=1), axis=1) + 1e-6),
    }
    quantiles = (1, 5, 25, 50, 75, 95, 99)
    for q, values in zip(quantiles, np.percentile(z, quantiles, axis=1), strict=True):
        columns[f"diff_q{q:02d}"] = values
    centred = d - d.mean(axis=1, keepdims=True)
    for lag in (1, 2, 4):
        columns[f"diff_autocorr_{lag}"] = (centred[:, :-lag] * centred[:, lag:]).mean(axis=1) / (
            d.var(axis=1) + _TINY
        )
    nperseg = min(d.shape[1], int(round(8 * sampling_rate)))
    freqs, psd = signal.welch(d, fs=sampling_rate, nperseg=nperseg, axis=1)
    total = psd[:, 1:].sum(axis=1) + _TINY
    for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], strict=True):
        band = (freqs > lo) & (freqs <= hi)
        columns[f"band_{lo:g}_{hi:g}_hz"] = (
            np.log10(psd[:, band].sum(axis=1) / total + _TINY)
            if band.any()
            else np.full(len(spans), math.nan)
        )
    peaks = scrs["peak_s"].to_numpy(float)
    measures = {c: scrs[c].to_numpy(float) for c in ("amplitude_us", "rise_time_s", "recovery_time_s")}
    starts = np.array([span.start for span in spans]) / sampling_rate
    inside = (peaks[None, :] >= starts[:, None]) & (peaks[None, :] < starts[:, None] + size / sampling_rate)
    columns["scr_per_min"] = inside.sum(axis=1) / (window_s / 60.0)
    for column, values in measures.items():
        counted = inside & np.isfinite(values)[None, :]
        n = counted.sum(axis=1)
        total_values = np.where(counted, values[None, :], 0.0).sum(axis=1)
        columns[f"scr_{column}"] = np.where(n > 0, total_values / np.maximum(n, 1), math.nan)
    return pd.DataFrame(columns)


@dataclass(frozen=True)
class TwoSampleTest:
    """Result of `classifier_two_sample_test`.

    auc: ROC AUC of "real" vs "other" on held-out recordings, mean over the scored folds (NaN
    when none could be scored: fewer than two recordings, or too few windows to train on, see
    `MIN_WINDOWS_PER_LEAF`); auc_by_recording: the AUC among each recording's own windows
    (out-of-fold scores; NaN where a recording has windows of one source only or was not
    scored); n_real / n_other: windows of each source; n_folds: GroupKFold folds (0 when fewer
    than two recordings have windows); auc_ci95: a 95 % bootstrap interval over recordings
    (`auc_interval`: the recordings resampled with replacement, each with both its sources'
    windows and their out-of-fold scores; the classifier is not refitted), how far the AUC
    could move with other listeners held out. It is the interval of the AUC of the pooled
    out-of-fold scores, which lies within about 0.01 of the fold mean; (NaN, NaN) without
    scores or with fewer than two recordings.
    """

    auc: float
    auc_by_recording: dict[str, float]
    n_real: int
    n_other: int
    n_folds: int
    auc_ci95: tuple[float, float] = (math.nan, math.nan)


def weighted_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    """ROC AUC with sample weights: `sklearn.metrics.roc_auc_score(labels, scores,
    sample_weight=weights)`, computed from the weighted ranks.

    The chance that a positive (label 1) outscores a negative, each drawn by weight, ties
    counting half: Σ over distinct scores v of P(v)·(N(< v) + N(v)/2) / (P·N), with P(v), N(v)
    the positive and negative weight at v. That is the area under the weighted ROC curve that
    scikit-learn integrates (a test checks both agree). Written out because the bootstrap of
    `auc_interval` calls it a thousand times per source and scikit-learn's input validation
    cost 7 ms a call, 14 s of each evaluation report.

    Raises:
        ValueError: the weighted labels hold one class only.
    """
    y = np.asarray(labels).astype(bool)
    w = np.asarray(weights, dtype=np.float64)
    values, index = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
    positive = np.bincount(index, weights=w * y, minlength=values.size)
    negative = np.bincount(index, weights=w * ~y, minlength=values.size)
    total_pos, total_neg = positive.sum(), negative.sum()
    if total_pos <= 0 or total_neg <= 0:
        raise ValueError("the AUC needs weight on both classes")
    below = np.cumsum(negative) - negative  # negative weight at lower scores
    return float((positive * (below + 0.5 * negative)).sum() / (total_pos * total_neg))


def auc_interval(
    labels: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a ROC AUC, resampling groups (recordings) with replacement.

    Args:
        labels: (N,) 1 = real, 0 = other; scores: (N,) the classifier's out-of-fold scores (NaN:
            not scored, left out); groups: (N,) the recording of each window.
        n_boot: resamples; a resample that lacks one of the classes is skipped.
        level: the interval's coverage.
        seed: the resampling's random stream.

    Returns:
        (low, high), or (NaN, NaN) with fewer than two scored recordings.
    """
    scored = np.isfinite(scores)
    y, s, g = labels[scored], scores[scored], groups[scored]
    names, index = np.unique(g.astype(str), return_inverse=True)
    if len(names) < 2 or len(set(y.tolist())) < 2:
        return (math.nan, math.nan)
    values = []
    for counts in recording_resamples(len(names), n_boot, seed):
        weight = counts[index]  # each window counted as often as its recording was drawn
        keep = weight > 0
        if len(set(y[keep].tolist())) < 2:
            continue
        values.append(weighted_auc(y[keep], s[keep], weight[keep]))
    if not values:
        return (math.nan, math.nan)
    return percentile_interval(np.asarray(values), level)


def classifier_two_sample_test(
    real_us: Mapping[str, np.ndarray | Sequence[np.ndarray]],
    other_us: Mapping[str, np.ndarray | Sequence[np.ndarray]],
    sampling_rate: float,
    window_s: float = 30.0,
    hop_s: float = 15.0,
    n_splits: int = 5,
    seed: int = 0,
) -> TwoSampleTest:
    """Can a classifier tell real windows from the other source's, on recordings it never saw?

    Args:
        real_us: {recording_id: real trace(s)} in µS, (T,), (S, T) or a sequence.
        other_us: {recording_id: trace(s)} of the other source (e.g. generated samples (S, T));
            recordings may differ from `real_us`'s; a recording's windows of both sources form
            one group of GroupKFold.
        sampling_rate: EDA rate (Hz).
        window_s, hop_s: window length and hop (s), see `window_features`.
        n_splits: GroupKFold folds (at most the number of recordings).
        seed: the classifier's random state.

    A HistGradientBoostingClassifier (scikit-learn) is trained on `window_features` (NaN → a
    constant); the AUC of each held-out fold is averaged. Classes are not re-weighted: the AUC
    is a ranking measure, indifferent to how many windows each source has (and scikit-learn's
    weighted feature binning is slow).
    """

    return two_sample_test_on_features(
        source_window_features(real_us, sampling_rate, window_s, hop_s),
        source_window_features(other_us, sampling_rate, window_s, hop_s),
        n_splits,
        seed,
    )


def source_window_features(
    source: Mapping[str, np.ndarray | Sequence[np.ndarray]],
    sampling_rate: float,
    window_s: float = 30.0,
    hop_s: float = 15.0,
) -> dict[str, pd.DataFrame]:
    """{recording_id: the `window_features` of all its traces, stacked} for one source."""
    return stacked_window_features(trace_window_features(source, sampling_rate, window_s, hop_s))


def stacked_window_features(per_trace: Mapping[str, Sequence[pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """{recording_id: one table} from `trace_window_features`' {recording_id: [a table per trace]}."""
    return {rid: pd.concat(tables) for rid, tables in per_trace.items()}


def trace_window_features(
    source: Mapping[str, np.ndarray | Sequence[np.ndarray]],
    sampling_rate: float,
    window_s: float = 30.0,
    hop_s: float = 15.0,
) -> dict[str, list[pd.DataFrame]]:
    """{recording_id: [the `window_features` of each of its traces]} for one source."""
    return {
        rid: [window_features(t, sampling_rate, window_s, hop_s) for t in as_traces(traces)]
        for rid, traces in source.items()
    }


def two_sample_test_on_features(
    real: Mapping[str, pd.DataFrame], other: Mapping[str, pd.DataFrame], n_splits: int = 5, seed: int = 0
) -> TwoSampleTest:
    """`classifier_two_sample_test` on precomputed `window_features`, {recording_id: (n_windows, F)}."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    frames, labels, groups = [], [], []
    for label, source in ((1, real), (0, other)):
        for rid, f in source.items():
            frames.append(f)
            labels += [label] * len(f)
            groups += [rid] * len(f)
    used = [f for f in frames if len(f)]
    x = pd.concat(used, ignore_index=True).to_numpy(np.float64) if used else np.zeros((0, 0))
    # NaN features (no SCR in a window, a band above Nyquist) → a constant outside every range.
    x = np.nan_to_num(x, nan=-99.0)
    y, g = np.asarray(labels, dtype=int), np.asarray(groups, dtype=object)
    n_real, n_other = int((y == 1).sum()), int((y == 0).sum())
    recordings = sorted(set(g.tolist()))
    folds = min(n_splits, len(recordings))
    if folds < 2 or n_real == 0 or n_other == 0:
        return TwoSampleTest(math.nan, {r: math.nan for r in recordings}, n_real, n_other, 0)
    scores = np.full(len(y), np.nan)
    fold_aucs = []
    for train, test in GroupKFold(n_splits=folds).split(x, y, g):
        if min((y[train] == 1).sum(), (y[train] == 0).sum()) < 2 * MIN_WINDOWS_PER_LEAF:
            continue  # too few windows to split on: the classifier would be a constant
        clf = HistGradientBoostingClassifier(
            max_iter=150,
            learning_rate=0.05,
            max_leaf_nodes=8,
            min_samples_leaf=MIN_WINDOWS_PER_LEAF,
            random_state=seed,
        )
        clf.fit(x[train], y[train])
        scores[test] = clf.predict_proba(x[test])[:, 1]
        if len(set(y[test].tolist())) == 2:
            fold_aucs.append(float(roc_auc_score(y[test], scores[test])))
    by_recording = {}
    for rid in recordings:
        mine = (g == rid) & np.isfinite(scores)
        ok = len(set(y[mine].tolist())) == 2
        by_recording[rid] = float(roc_auc_score(y[mine], scores[mine])) if ok else math.nan
    auc = float(np.mean(fold_aucs)) if fold_aucs else math.nan
    interval = auc_interval(y, scores, g, seed=seed) if fold_aucs else (math.nan, math.nan)
    return TwoSampleTest(auc, by_recording, n_real, n_other, folds, interval)
