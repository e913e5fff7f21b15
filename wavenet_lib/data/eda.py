"""EDA readers (Empatica E4, PMEmo2019, HKU956, generic CSV), cleaning and resampling.

Every reader returns an `EdaSignal` in µS at the rate the file states (or the one given), and
raises `DataError` naming the file for anything unusable. `prepare_eda` then checks the rate
against the manifest, fills short NaN gaps (runs up to `max_gap_s` seconds, linearly inside the
trace and with the first valid value at its start; trailing NaNs are trimmed, as in wide CSVs
they only mark where a shorter recording stopped), rejects longer gaps and flat or
non-positive traces, and resamples anti-aliased to the model's rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import resample_poly

from wavenet_lib.errors import DataError

__all__ = [
    "EDA_FORMATS",
    "EdaSignal",
    "read_e4_eda",
    "read_pmemo_eda",
    "read_hku956_eda",
    "read_generic_eda",
    "read_eda",
    "fill_nan_gaps",
    "check_eda_values",
    "resample_eda",
    "prepare_eda",
]

EDA_FORMATS = ("e4", "pmemo2019", "hku956", "generic")
TIME_COLUMNS = ("time", "time_s", "timestamp", "t", "seconds", "time(s)")
RATE_TOLERANCE = 0.01  # relative disagreement allowed between a file's rate and the manifest's


@dataclass(frozen=True)
class EdaSignal:
    """One EDA trace as read from disk.

    Attributes:
        values: float64 (n,) skin conductance in µS (may hold NaNs until cleaned).
        sample_rate: Hz, as the file states it (or as given for formats without one).
        path: the file it came from.
        start_time: unix time (s) of the first sample when the file records it (E4), else None.
    """

    values: np.ndarray
    sample_rate: float
    path: Path
    start_time: float | None = None

    @property
    def duration_s(self) -> float:
        return len(self.values) / self.sample_rate


def _need_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(path, "EDA file not found")


def _as_float(values, path: Path, what: str) -> np.ndarray:
    try:
        out = pd.to_numeric(pd.Series(values), errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise DataError(path, f"{what} holds non-numeric values ({exc})") from exc
    if out.size == 0:
        raise DataError(path, f"{what} is empty")
    return out


def _rate_from_times(times: np.ndarray, path: Path) -> float:
    dt = np.diff(times[np.isfinite(times)])
    if dt.size == 0 or np.median(dt) <= 0:
        raise DataError(path, "time column must increase; cannot infer the sample rate")
    return float(1.0 / np.median(dt))


def read_e4_eda(path: str | Path) -> EdaSignal:
    """Empatica E4 `EDA.csv`: no header; row 1 start unix time, row 2 sample rate (Hz), then µS values."""
    path = Path(path)
    _need_file(path)
    try:
        raw = pd.read_csv(path, header=None, usecols=[0]).iloc[:, 0]
    except Exception as exc:
        raise DataError(path, f"not a readable E4 EDA.csv ({exc})") from exc
    if len(raw) < 3:
        raise DataError(path, "E4 EDA.csv needs a start-time row, a sample-rate row and values")
    start, rate = _as_float(raw.iloc[:2], path, "E4 header (start time, sample rate)")
    if not rate > 0:
        raise DataError(path, f"E4 header sample rate must be > 0, got {rate}")
    return EdaSignal(_as_float(raw.iloc[2:], path, "EDA values"), float(rate), path, float(start))


def read_pmemo_eda(path: str | Path, subject: str, time_column: str | None = None) -> EdaSignal:
    """PMEmo2019 wide CSV: a time column (s) then one column of µS per subject; pick `subject`.

    The rate comes from the time column. Shorter subjects' columns end in empty cells (NaN),
    trimmed later by `fill_nan_gaps`.
    """
    path = Path(path)
    _need_file(path)
    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise DataError(path, f"not a readable PMEmo2019 EDA csv ({exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    tcol = time_column or _find_time_column(df, path)
    if str(subject) not in df.columns:
        subjects = [c for c in df.columns if c != tcol]
        raise DataError(path, f"no subject column {subject!r}; columns are {subjects[:20]}")
    times = _as_float(df[tcol], path, f"time column {tcol!r}")
    return EdaSignal(
        _as_float(df[str(subject)], path, f"column {subject!r}"), _rate_from_times(times, path), path
    )


def read_hku956_eda(path: str | Path, sample_rate: float = 4.0) -> EdaSignal:
    """HKU956 single-column EDA csv (4 Hz E4 data per song); a non-numeric first row is a header."""
    path = Path(path)
    _need_file(path)
    try:
        raw = pd.read_csv(path, header=None).iloc[:, -1]
    except Exception as exc:
        raise DataError(path, f"not a readable HKU956 EDA csv ({exc})") from exc
    if len(raw) and pd.isna(pd.to_numeric(pd.Series([raw.iloc[0]]), errors="coerce")).all():
        raw = raw.iloc[1:]
    return EdaSignal(_as_float(raw, path, "EDA values"), float(sample_rate), path)


def _find_time_column(df: pd.DataFrame, path: Path) -> str:
    for c in df.columns:
        if c.lower() in TIME_COLUMNS:
            return c
    raise DataError(path, f"no time column (one of {TIME_COLUMNS}); columns are {list(df.columns)[:20]}")


def read_generic_eda(
    path: str | Path,
    column: str | None = None,
    sample_rate: float | None = None,
    time_column: str | None = None,
) -> EdaSignal:
    """Generic CSV with a header: an EDA column in µS, and a time column (s) or a given rate.

    Args:
        path: the csv.
        column: EDA column name; default: `eda`, `eda_us`, `EDA` or the only non-time column.
        sample_rate: used when the file has no time column.
        time_column: name of the time column (default: auto-detected, e.g. `time`, `time_s`).
    """
    path = Path(path)
    _need_file(path)
    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise DataError(path, f"not a readable CSV ({exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    tcol = time_column or next((c for c in df.columns if c.lower() in TIME_COLUMNS), None)
    if column is None:
        others = [c for c in df.columns if c != tcol]
        named = [c for c in others if c.lower() in ("eda", "eda_us", "scl", "gsr")]
        if named:
            column = named[0]
        elif len(others) == 1:
            column = others[0]
        else:
            raise DataError(path, f"several columns {others[:20]}; name the EDA one (manifest eda_column)")
    if column not in df.columns:
        raise DataError(path, f"no column {column!r}; columns are {list(df.columns)[:20]}")
    values = _as_float(df[column], path, f"column {column!r}")
    if tcol is not None:
        rate = _rate_from_times(_as_float(df[tcol], path, f"time column {tcol!r}"), path)
    elif sample_rate is not None:
        rate = float(sample_rate)
    else:
        raise DataError(path, "no time column and no sample rate given")
    return EdaSignal(values, rate, path)


def read_eda(path: str | Path, fmt: str, sample_rate: float, column: str | None = None) -> EdaSignal:
    """Read an EDA file in one of `EDA_FORMATS` (`column` = subject for pmemo2019, name for generic)."""
    path = Path(path)
    if fmt == "e4":
        return read_e4_eda(path)
    if fmt == "pmemo2019":
        if column is None:
            raise DataError(path, "pmemo2019 EDA needs a subject column (manifest eda_column)")
        return read_pmemo_eda(path, column)
    if fmt == "hku956":
        return read_hku956_eda(path, sample_rate)
    if fmt == "generic":
        return read_generic_eda(path, column, sample_rate)
    raise DataError(path, f"unknown eda_format {fmt!r}; expected one of {EDA_FORMATS}")


def fill_nan_gaps(values: np.ndarray, sample_rate: float, max_gap_s: float, path: str | Path) -> np.ndarray:
    """Fill NaN runs up to `max_gap_s` seconds; trim trailing NaNs.

    Inner runs are interpolated linearly, a leading run takes the first valid value (the trace
    is not shifted, so its alignment with the audio is kept). Trailing NaNs are dropped.

    Raises:
        DataError: all NaN, or a leading/inner NaN run longer than `max_gap_s` (gives its time and length).
    """
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.all():
        raise DataError(path, "EDA has no finite values (all NaN)")
    last = np.flatnonzero(~bad)[-1]
    values, bad = values[: last + 1].copy(), bad[: last + 1]
    if not bad.any():
        return values
    edges = np.diff(np.concatenate([[0], bad.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int(np.argmax(ends - starts))
    run = (ends - starts)[longest] / sample_rate
    if run > max_gap_s:
        raise DataError(
            path,
            f"EDA has a NaN gap of {run:.2f} s at {starts[longest] / sample_rate:.2f} s; gaps up to "
            f"data.max_nan_gap_s = {max_gap_s} s are interpolated, longer ones are rejected",
        )
    idx = np.arange(len(values))
    values[bad] = np.interp(idx[bad], idx[~bad], values[~bad])  # constant before the first valid value
    return values


def check_eda_values(values: np.ndarray, path: str | Path, min_range_us: float = 1e-3) -> None:
    """Reject traces that are not skin conductance in µS: non-positive only, or flat.

    Raises:
        DataError: every value <= 0 (wrong units or a disconnected sensor), or max - min < min_range_us.
    """
    if np.all(values <= 0):
        raise DataError(path, f"EDA is never positive (max {values.max():.4g}); expected µS > 0")
    span = float(values.max() - values.min())
    if span < min_range_us:
        raise DataError(
            path, f"EDA is flat (max - min = {span:.3g} µS < data.min_eda_range_us = {min_range_us})"
        )


def resample_eda(values: np.ndarray, from_rate: float, to_rate: float) -> np.ndarray:
    """Anti-aliased rational resampling (scipy `resample_poly`, up/down from exact fractions).

    The signal is padded by extending its end lines (`padtype="line"`), not zeros, so the few-µS
    level does not droop at the edges. Output length is `ceil(n * to_rate / from_rate)`.
    """
    ratio = (Fraction(str(to_rate)) / Fraction(str(from_rate))).limit_denominator(10_000)
    if ratio == 1:
        return np.asarray(values, dtype=np.float64)
    return resample_poly(
        np.asarray(values, dtype=np.float64), ratio.numerator, ratio.denominator, padtype="line"
    )


def prepare_eda(
    signal: EdaSignal,
    expected_rate: float,
    target_rate: float,
    max_gap_s: float = 1.0,
    min_range_us: float = 1e-3,
) -> np.ndarray:
    """Check, clean and resample one trace; returns float64 (n,) µS at `target_rate`.

    Args:
        signal: as read.
        expected_rate: the manifest's `eda_sample_rate`; must agree with the file's within 1 %.
        target_rate: the model's `eda_sample_rate`.
        max_gap_s: longest inner NaN run interpolated.
        min_range_us: flat-trace threshold.

    Raises:
        DataError: rate mismatch, long NaN gaps, flat or non-positive trace.
    """
    if abs(signal.sample_rate - expected_rate) > RATE_TOLERANCE * expected_rate:
        raise DataError(
            signal.path,
            f"sample-rate mismatch: the file says {signal.sample_rate:g} Hz, the manifest says "
            f"{expected_rate:g} Hz",
        )
    values = fill_nan_gaps(signal.values, expected_rate, max_gap_s, signal.path)
    check_eda_values(values, signal.path, min_range_us)
    return resample_eda(values, expected_rate, target_rate)
