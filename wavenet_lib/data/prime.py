"""A listener's own EDA before a stimulus (the "prime"), read at any rate and resampled to the model's.

    prime_us = read_prime("baseline/EDA.csv", target_rate=4.0)      # E4 export, 4 Hz → 4 Hz
    prime_us = read_prime("rest.csv", target_rate=4.0)              # time_s,eda_us at any rate
    prime_us = read_prime("values.csv", 4.0, sample_rate=32.0)      # one value per row, no time

Accepted files: an Empatica E4 `EDA.csv` (row 1 start time, row 2 rate, then µS values; told
apart by its first row holding a number), or a CSV with a header: an EDA column (`eda`,
`eda_us`, `scl`, `gsr` or the only non-time column) and either a time column in seconds or a
rate given by the caller. The trace is resampled anti-aliased (`resample_eda`) to the model's
rate. Unlike recordings for training, a prime is never patched: any NaN, a rate that is not a
positive number, a time column that is not evenly spaced, or a rate that disagrees with the
one the caller states raise `DataError` naming the file and the problem.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from wavenet_lib.data.eda import RATE_TOLERANCE, read_e4_eda, read_generic_eda
from wavenet_lib.data.eda_cleaning import resample_eda
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.errors import DataError

__all__ = ["read_prime", "check_prime", "prime_normalizer"]


def _first_cell_is_number(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline().split(",")[0].strip()
    except OSError as exc:
        raise DataError(path, f"cannot read the prime ({exc.strerror})") from None
    try:
        float(first)
    except ValueError:
        return False
    return True


def check_prime(
    values: np.ndarray, sample_rate: float, path: str | Path | None = None, label: str = "prime"
) -> None:
    """Reject a prime with non-finite values, a bad rate, or non-positive µS.

    `label` names the trace in the messages (a recorded EDA read the same way is "EDA").

    Raises:
        DataError: naming `path` (or `label`) and the first offending value or the rate.
    """
    where = path if path is not None else label
    values = np.asarray(values, dtype=np.float64)
    if not (isinstance(sample_rate, (int, float)) and math.isfinite(sample_rate) and sample_rate > 0):
        raise DataError(where, f"{label} sample rate must be a positive number of Hz, got {sample_rate!r}")
    if values.size == 0:
        raise DataError(where, f"{label} holds no values")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(
            where,
            f"{label} has {bad.size} NaN/inf value(s), the first at sample {bad[0]} "
            f"(t = {bad[0] / sample_rate:.2f} s); a {label} must be complete",
        )
    if np.any(values <= 0):
        first = int(np.flatnonzero(values <= 0)[0])
        raise DataError(
            where, f"{label} value {values[first]:.4g} at sample {first} is not a positive µS value"
        )


def read_prime(
    path: str | Path,
    target_rate: float,
    sample_rate: float | None = None,
    column: str | None = None,
    label: str = "prime",
) -> np.ndarray:
    """Read a prime file and resample it to `target_rate`.

    Args:
        path: an E4 `EDA.csv`, or a CSV with a header (see the module docstring).
        target_rate: the model's EDA rate (Hz).
        sample_rate: the prime's rate (Hz). Needed for a CSV without a time column; for files
            that state their rate (E4 header, time column) it must agree within 1 %.
        column: the EDA column of a CSV (default: found by name, or the only value column).
        label: what the messages call the trace ("EDA" for a recording read the same way).

    Returns:
        float64 (n,) µS at `target_rate`, n >= 1.

    Raises:
        DataError: missing or unreadable file, NaN values, a bad or disagreeing rate, uneven
            time steps, or a prime shorter than one model step.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{label} file not found")
    if sample_rate is not None and not (math.isfinite(sample_rate) and sample_rate > 0):
        raise DataError(path, f"{label} sample rate must be a positive number of Hz, got {sample_rate}")
    if _first_cell_is_number(path):
        signal = read_e4_eda(path)
    else:
        signal = read_generic_eda(path, column=column, sample_rate=sample_rate, even_within=RATE_TOLERANCE)
    rate = float(signal.sample_rate)
    if sample_rate is not None and abs(rate - sample_rate) > RATE_TOLERANCE * sample_rate:
        raise DataError(
            path, f"{label} sample-rate mismatch: the file says {rate:g} Hz, expected {sample_rate:g} Hz"
        )
    check_prime(signal.values, rate, path, label)
    out = resample_eda(signal.values, rate, float(target_rate))
    if out.size < 1 or signal.duration_s < 1.0 / target_rate:
        raise DataError(
            path,
            f"{label} lasts {signal.duration_s:.3g} s, shorter than one model step (1/{target_rate:g} s)",
        )
    return out


def prime_normalizer(
    prime_us: np.ndarray, stored: MinMaxNormalizer, per_recording: bool = True
) -> MinMaxNormalizer:
    """The µS ↔ units map for samples primed with `prime_us`.

    With per-recording normalization (the default), a model knows EDA only relative to a
    recording's own range, so the stored normalization (the typical training recording's range)
    gives the scale and the prime gives the level: the range keeps the stored width (widened to
    the prime's own span if that is larger) and is centred on the middle of the prime's span,
    where an unprimed sample starts (model unit 0). With per-dataset normalization, units are
    absolute µS already and the stored map is used as it is.

    Args:
        prime_us: (n,) or (C, n) the prime in µS.
        stored: the checkpoint's normalization.
        per_recording: whether the model was trained with per-recording normalization.
    """
    norm = stored
    if not per_recording:
        return norm
    values = np.asarray(prime_us, dtype=np.float64)
    lo_p, hi_p = float(values.min()), float(values.max())
    width = max(norm.hi - norm.lo, hi_p - lo_p)
    centre = (lo_p + hi_p) / 2.0
    return MinMaxNormalizer(centre - width / 2.0, centre + width / 2.0, norm.margin)
