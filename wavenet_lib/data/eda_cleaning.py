"""EDA after reading: rate check, NaN gaps, physiological limits and resampling, in µS.

`prepare_eda` checks the file's rate against the manifest, fills short NaN gaps (runs up to
`max_gap_s` seconds, linearly inside the trace and with the first valid value at its start;
trailing NaNs are trimmed, as in wide CSVs they only mark where a shorter recording stopped),
rejects longer gaps and flat or non-positive traces, and resamples anti-aliased to the model's
rate. `check_eda_limits` rejects values outside physiological skin conductance and one-sample
jumps (artifacts), naming the row. Every problem is a `DataError` naming the file.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from wavenet_lib.data.eda import RATE_TOLERANCE, EdaSignal
from wavenet_lib.errors import DataError

__all__ = [
    "fill_nan_gaps",
    "check_eda_values",
    "check_eda_limits",
    "clean_eda",
    "resample_eda",
    "prepare_eda",
]


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


def check_eda_limits(
    values: np.ndarray,
    signal: EdaSignal,
    min_us: float = 0.01,
    max_us: float = 100.0,
    max_jump_us: float | None = 5.0,
    start: int = 0,
) -> None:
    """Reject values that are not physiological skin conductance, naming the file row.

    Args:
        values: float64 (n,) µS at the file's rate, row-aligned with `signal.values` (NaN gaps
            filled, trailing NaNs trimmed), already cut to the span that will be used.
        signal: the trace as read (its path and first row name the offending line).
        min_us, max_us: the plausible range (data.eda_min_us, data.eda_max_us).
        max_jump_us: largest change between two consecutive samples (data.max_eda_jump_us);
            a larger one is an artifact (an electrode losing contact). None: not checked.
        start: index in `signal.values` of `values[0]`.

    Raises:
        DataError: the first value outside [min_us, max_us] or the first jump above
            `max_jump_us`, with its row and value.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return
    out = np.flatnonzero((values < min_us) | (values > max_us))
    if out.size:
        i = int(out[0])
        v = float(values[i])
        side = f"below data.eda_min_us = {min_us:g}" if v < min_us else f"above data.eda_max_us = {max_us:g}"
        hint = (
            "a sensor without skin contact reads about 0"
            if v < min_us
            else "wrong units, or header rows read as values?"
        )
        raise DataError(
            signal.path,
            f"row {signal.row(start + i)}: EDA {v:.6g} µS is {side} µS (skin conductance lies in about "
            f"0.01-100 µS; {hint}); {len(out)} value(s) out of range",
        )
    if max_jump_us is not None and values.size > 1:
        jumps = np.abs(np.diff(values))
        big = np.flatnonzero(jumps > max_jump_us)
        if big.size:
            i = int(big[0]) + 1
            raise DataError(
                signal.path,
                f"row {signal.row(start + i)}: EDA jumps from {values[i - 1]:.6g} to {values[i]:.6g} µS "
                f"in one sample, more than data.max_eda_jump_us = {max_jump_us:g} µS: an artifact "
                f"(electrode contact lost?); {big.size} such jump(s)",
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
    limits: tuple[float, float, float | None] | None = None,
) -> np.ndarray:
    """Check, clean and resample one trace; returns float64 (n,) µS at `target_rate`.

    Args:
        signal: as read.
        expected_rate: the manifest's `eda_sample_rate`; must agree with the file's within 1 %.
        target_rate: the model's `eda_sample_rate`.
        max_gap_s: longest inner NaN run interpolated.
        min_range_us: flat-trace threshold.
        limits: (min_us, max_us, max_jump_us) for `check_eda_limits` over the whole trace;
            None: not checked (`prepare_recording` checks the span it uses instead).

    Raises:
        DataError: rate mismatch, long NaN gaps, flat or non-positive trace, values out of limits.
    """
    values = clean_eda(signal, expected_rate, max_gap_s)
    if limits is not None:
        check_eda_limits(values, signal, *limits)
    check_eda_values(values, signal.path, min_range_us)
    return resample_eda(values, expected_rate, target_rate)


def clean_eda(signal: EdaSignal, expected_rate: float, max_gap_s: float = 1.0) -> np.ndarray:
    """Rate check and NaN-gap filling; float64 (n,) µS at the file's rate, row-aligned with the file.

    Raises:
        DataError: the file's rate and `expected_rate` differ by more than 1 %, or a long NaN gap.
    """
    if abs(signal.sample_rate - expected_rate) > RATE_TOLERANCE * expected_rate:
        raise DataError(
            signal.path,
            f"sample-rate mismatch: the file says {signal.sample_rate:g} Hz, the manifest says "
            f"{expected_rate:g} Hz",
        )
    return fill_nan_gaps(signal.values, expected_rate, max_gap_s, signal.path)
