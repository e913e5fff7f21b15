"""Realism of EDA traces: would a physiologist take generated skin conductance for real?

Every statistic here takes traces in µS at the EDA rate and is computed by the same code for
every source (real, generated, audio-blind), so the rows of a table differ only by their input:

* **SCR statistics** (`scr_summary`): rate (per min), amplitude (µS), rise time (s) and
  half-recovery time (s) of the skin conductance responses found by `scrs.detect_scrs`
  (neurokit2, absolute 0.05 µS threshold), pooled over all SCRs of all traces.
* **One-step changes** (`step_change_percentiles`): the 99.9th percentile of the one-step
  decreases (−Δx clipped at 0) and of the one-step increases (Δx clipped at 0), µS per EDA step.
  Skin conductance recovers over seconds, so a cliff drop of a large fraction of an SCR in one
  step shows up here.
* **Drift** (`drift_us_per_min`): the slope of a least-squares line through each trace, µS per
  minute, averaged over traces. At rest the tonic level mostly declines; a generator whose
  samples climb over a session (SCRs that do not fully recover) shows it here first.
* **Log-spectral distance of the first difference** (`log_spectral_distance_db`): the Welch
  power spectra of Δx of the two sources (averaged over traces, zero frequency excluded),
  compared as the root-mean-square difference of 10·log10 power over frequencies, in dB.
  0 dB for identical spectra; a sawtooth or white noise adds power at high frequencies.
* **Classifier two-sample test** (`two_sample.classifier_two_sample_test`): a gradient-boosting classifier
  (scikit-learn) learns to tell real 30 s windows from windows of another source, from
  level-free window features (`window_features`: statistics of Δx, its autocorrelation and
  spectral band powers, SCR counts); cross-validated grouped by recording (GroupKFold), so a
  recording's windows are never both trained on and scored. ROC AUC 0.5: indistinguishable;
  1.0: always told apart.

`realism_metrics` gives all of them for one source and `realism_by_recording` for several
sources over several recordings, per recording and pooled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import signal

from wavenet_lib.evaluate.scrs import detect_scrs
from wavenet_lib.evaluate.traces import as_traces
from wavenet_lib.evaluate.two_sample import (
    TwoSampleTest,
    classifier_two_sample_test,
    two_sample_test_on_features,
    window_features,
)

__all__ = [
    "REALISM_METRICS",
    "TwoSampleTest",
    "as_traces",
    "scr_summary",
    "step_change_percentiles",
    "drift_us_per_min",
    "difference_spectrum",
    "log_spectral_distance_db",
    "window_features",
    "classifier_two_sample_test",
    "two_sample_test_on_features",
    "realism_metrics",
    "realism_by_recording",
]

# Metric names (units in the names) that `realism_metrics` returns, in table order.
REALISM_METRICS = (
    "n_scr",
    "scr_rate_per_min",
    "scr_amplitude_us",
    "scr_rise_time_s",
    "scr_half_recovery_s",
    "step_decrease_p999_us",
    "step_increase_p999_us",
    "drift_us_per_min",
    "diff_log_spectral_distance_db",
    "two_sample_auc",
    "two_sample_ci95_low_auc",
    "two_sample_ci95_high_auc",
)

_TINY = 1e-12


# ======================================================================================
# SCR statistics
# ======================================================================================


def scr_summary(
    traces_us: np.ndarray | Sequence[np.ndarray],
    sampling_rate: float,
    amplitude_min_us: float = 0.05,
    scr_tables: Sequence[pd.DataFrame] | None = None,
) -> dict[str, float]:
    """SCR statistics pooled over every SCR of every trace (one detector for all sources).

    Args:
        traces_us: (T,), (S, T) or a sequence of traces in µS at `sampling_rate` (Hz).
        amplitude_min_us: absolute SCR amplitude threshold (see `scrs.detect_scrs`).
        scr_tables: `detect_scrs` of each trace if already computed (the threshold is then theirs).

    Returns:
        {"n_scr", "scr_rate_per_min" (SCRs / total minutes), "scr_amplitude_us",
        "scr_rise_time_s" (onset → peak), "scr_half_recovery_s" (peak → half amplitude)};
        means over SCRs, NaN when there is none (half-recovery: over the SCRs that recover to
        half amplitude before the next one).
    """
    traces = as_traces(traces_us)
    if scr_tables is None:
        found = [detect_scrs(t, sampling_rate, amplitude_min_us=amplitude_min_us) for t in traces]
    elif len(scr_tables) != len(traces):
        raise ValueError(f"got {len(scr_tables)} SCR tables for {len(traces)} traces")
    else:
        found = list(scr_tables)
    table = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
    minutes = sum(t.size for t in traces) / sampling_rate / 60.0

    def mean(column: str) -> float:
        values = table[column].dropna() if len(table) else pd.Series(dtype=float)
        return float(values.mean()) if len(values) else math.nan

    return {
        "n_scr": float(len(table)),
        "scr_rate_per_min": len(table) / minutes if minutes > 0 else math.nan,
        "scr_amplitude_us": mean("amplitude_us"),
        "scr_rise_time_s": mean("rise_time_s"),
        "scr_half_recovery_s": mean("recovery_time_s"),
    }


# ======================================================================================
# One-step changes
# ======================================================================================


def step_change_percentiles(
    traces_us: np.ndarray | Sequence[np.ndarray], percentile: float = 99.9
) -> dict[str, float]:
    """Percentile of the one-step decreases and increases, pooled over the traces' steps.

    Args:
        traces_us: (T,), (S, T) or a sequence of traces in µS.
        percentile: in [0, 100]; the default 99.9 reads the largest 0.1 % of steps.

    Returns:
        {"step_decrease_p999_us": percentile of max(−Δx, 0), "step_increase_p999_us":
        percentile of max(Δx, 0)}, µS per EDA step (names keep "p999" whatever `percentile`).
    """
    diffs = [np.diff(t) for t in as_traces(traces_us) if t.size > 1]
    if not diffs:
        return {"step_decrease_p999_us": math.nan, "step_increase_p999_us": math.nan}
    d = np.concatenate(diffs)
    return {
        "step_decrease_p999_us": float(np.percentile(np.clip(-d, 0, None), percentile)),
        "step_increase_p999_us": float(np.percentile(np.clip(d, 0, None), percentile)),
    }


def drift_us_per_min(traces_us: np.ndarray | Sequence[np.ndarray], sampling_rate: float) -> float:
    """Mean over traces of the least-squares slope, µS per minute (NaN without a trace of 2+ steps).

    Args:
        traces_us: (T,), (S, T) or a sequence of traces in µS.
        sampling_rate: EDA rate (Hz).
    """
    slopes = []
    for t in as_traces(traces_us):
        if t.size > 1:
            x = np.arange(t.size) - (t.size - 1) / 2.0
            slopes.append(float(np.dot(x, t - t.mean()) / np.dot(x, x)) * sampling_rate * 60.0)
    return float(np.mean(slopes)) if slopes else math.nan


# ======================================================================================
# Spectrum of the first difference
# ======================================================================================


def difference_spectrum(
    traces_us: np.ndarray | Sequence[np.ndarray], sampling_rate: float, segment_s: float = 16.0
) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density of the first difference, averaged over traces.

    Args:
        traces_us: (T,), (S, T) or a sequence of traces in µS at `sampling_rate` (Hz).
        segment_s: Welch segment length (s); shorter traces use their whole length.

    Returns:
        (freqs_hz (F,), psd (F,)) in (µS/step)²/Hz, zero frequency excluded; each trace's
        spectrum weighted by its number of steps.
    """
    traces = [t for t in as_traces(traces_us) if t.size > 2]
    if not traces:
        raise ValueError("need a trace of at least 3 steps for a spectrum")
    nperseg = max(2, min(int(round(segment_s * sampling_rate)), min(t.size - 1 for t in traces)))
    total, weight = 0.0, 0
    freqs = np.zeros(0)
    for t in traces:
        freqs, psd = signal.welch(np.diff(t), fs=sampling_rate, nperseg=nperseg)
        total = total + psd * t.size
        weight += t.size
    return freqs[1:], np.asarray(total, dtype=np.float64)[1:] / weight


def log_spectral_distance_db(
    reference_us: np.ndarray | Sequence[np.ndarray],
    traces_us: np.ndarray | Sequence[np.ndarray],
    sampling_rate: float,
    segment_s: float = 16.0,
) -> float:
    """Log-spectral distance (dB) between the first-difference spectra of two sets of traces.

    sqrt(mean_f (10·log10 P_ref(f) − 10·log10 P(f))²) over the Welch frequencies except 0, each
    P from `difference_spectrum` (one segment length for both). 0 for identical spectra.
    """
    traces_ref, traces_other = as_traces(reference_us), as_traces(traces_us)
    shortest = min(t.size for t in traces_ref + traces_other) - 1
    seg = min(segment_s, shortest / sampling_rate)
    _, p_ref = difference_spectrum(traces_ref, sampling_rate, seg)
    _, p = difference_spectrum(traces_other, sampling_rate, seg)
    diff_db = 10 * np.log10(p_ref + _TINY) - 10 * np.log10(p + _TINY)
    return float(np.sqrt(np.mean(diff_db**2)))


# ======================================================================================
# Classifier two-sample test
# ======================================================================================


# ======================================================================================
# All of them, per source and per recording
# ======================================================================================


def realism_metrics(
    traces_us: np.ndarray | Sequence[np.ndarray],
    sampling_rate: float,
    reference_us: np.ndarray | Sequence[np.ndarray] | None = None,
    scr_tables: Sequence[pd.DataFrame] | None = None,
) -> dict[str, float]:
    """SCR statistics, one-step change percentiles and (with a reference) the log-spectral distance.

    Args:
        traces_us: one source's traces in µS: (T,), (S, T) or a sequence.
        sampling_rate: EDA rate (Hz).
        reference_us: the real trace(s) to compare spectra with; None → no
            "diff_log_spectral_distance_db" (use None for the real traces themselves).
        scr_tables: `detect_scrs` of each trace if already computed.

    Returns:
        {metric: value} with the names of `REALISM_METRICS` except the two-sample AUC and its
        interval (which need several recordings: `classifier_two_sample_test`).
    """
    out = scr_summary(traces_us, sampling_rate, scr_tables=scr_tables) | step_change_percentiles(traces_us)
    out["drift_us_per_min"] = drift_us_per_min(traces_us, sampling_rate)
    if reference_us is not None:
        lsd = log_spectral_distance_db(reference_us, traces_us, sampling_rate)
        out["diff_log_spectral_distance_db"] = lsd
    return out


def realism_by_recording(
    real_us: Mapping[str, np.ndarray],
    sources_us: Mapping[str, Mapping[str, np.ndarray | Sequence[np.ndarray]]],
    sampling_rate: float,
    two_sample: bool = True,
    seed: int = 0,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, float]]]]:
    """Realism metrics of real EDA and of other sources, pooled and per recording.

    Args:
        real_us: {recording_id: (T,) real trace in µS}.
        sources_us: {source: {recording_id: (S, T) traces}} such as {"generated": ...,
            "audio_blind": ...}; every recording of `real_us` must be present.
        sampling_rate: EDA rate (Hz).
        two_sample: run `classifier_two_sample_test` for each source (the slowest part).
        seed: the two-sample classifier's random state.

    Returns:
        (pooled {source: {metric: value}}, per_recording {recording_id: {source: {metric:
        value}}}); "real" is the first source. Pooled statistics pool the traces (SCRs, steps,
        spectra) of all recordings; "two_sample_auc" pooled is the cross-validated AUC, with
        its 95 % bootstrap interval over recordings ("two_sample_ci95_low_auc",
        "two_sample_ci95_high_auc"), per recording the AUC among that recording's out-of-fold
        scores.
    """
    ids = list(real_us)
    for source, traces in sources_us.items():
        missing = [r for r in ids if r not in traces]
        if missing:
            raise ValueError(f"source {source!r} has no traces for recordings {missing}")
    # Each trace's SCRs are detected once and shared by the statistics and the window features.
    everything = {"real": {r: as_traces(real_us[r]) for r in ids}}
    everything |= {source: {r: as_traces(traces[r]) for r in ids} for source, traces in sources_us.items()}
    tables = {
        source: {r: [detect_scrs(t, sampling_rate) for t in traces[r]] for r in ids}
        for source, traces in everything.items()
    }

    def features(source: str, r: str) -> pd.DataFrame:
        pairs = zip(everything[source][r], tables[source][r], strict=True)
        return pd.concat([window_features(t, sampling_rate, scrs=tab) for t, tab in pairs])

    real_features = {r: features("real", r) for r in ids} if two_sample else {}
    all_real = [t for r in ids for t in everything["real"][r]]
    pooled: dict[str, dict[str, float]] = {}
    per: dict[str, dict[str, dict[str, float]]] = {r: {} for r in ids}
    for source, traces in everything.items():
        reference = None if source == "real" else all_real
        every = [t for r in ids for t in traces[r]]
        every_table = [tab for r in ids for tab in tables[source][r]]
        pooled[source] = realism_metrics(every, sampling_rate, reference, every_table)
        for r in ids:
            ref = None if source == "real" else everything["real"][r]
            per[r][source] = realism_metrics(traces[r], sampling_rate, ref, tables[source][r])
        if two_sample and source != "real":
            other = {r: features(source, r) for r in ids}
            test = two_sample_test_on_features(real_features, other, seed=seed)
            pooled[source]["two_sample_auc"] = test.auc
            low, high = test.auc_ci95
            pooled[source] |= {"two_sample_ci95_low_auc": low, "two_sample_ci95_high_auc": high}
            for r in ids:
                per[r][source]["two_sample_auc"] = test.auc_by_recording.get(r, math.nan)
    return pooled, per
