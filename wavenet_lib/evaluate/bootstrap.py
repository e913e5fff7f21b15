"""The bootstrap over recordings that the evaluation's intervals share.

Held-out numbers are pooled over a few dozen recordings (listeners), and which recordings were
held out moves them. An interval resamples the recordings with replacement: each resample is a
vector of how many copies of each recording it holds, and the statistic is recomputed with those
weights (no model or classifier is refitted). `event_locked.share_of_real` (the response as a
share of the real one) and `two_sample.auc_interval` (the two-sample AUC) use it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["recording_resamples", "percentile_interval"]


def recording_resamples(n_recordings: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_recordings) float64: how many copies of each recording each resample draws."""
    draws = np.random.default_rng(seed).integers(0, n_recordings, size=(n_boot, n_recordings))
    return np.stack([np.bincount(d, minlength=n_recordings) for d in draws]).astype(np.float64)


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` percentile interval of the resampled values (NaNs ignored)."""
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.nanpercentile(np.asarray(values, dtype=np.float64), [tail, 100.0 - tail])
    return float(low), float(high)
