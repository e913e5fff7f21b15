"""EDA readers: Empatica E4, PMEmo2019, HKU956 and generic CSV files → `EdaSignal` (µS).

Every reader returns an `EdaSignal` in µS at the rate the file states (or the one given), and
raises `DataError` naming the file (and the row, where one row is at fault) for anything
unusable: a non-numeric cell, a time column that goes backwards or jumps, E4 header rows in a
headerless HKU956 file, decimal commas in a one-number-per-row file. Files saved with a
European locale (`;` separator, decimal comma) are read as such. What happens next (rate
check, NaN gaps, physiological limits, resampling) is `wavenet_lib.data.eda_cleaning`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from wavenet_lib.errors import DataError

__all__ = [
    "EDA_FORMATS",
    "EdaSignal",
    "read_e4_eda",
    "read_pmemo_eda",
    "read_hku956_eda",
    "read_generic_eda",
    "read_eda",
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
        first_row: the file's line number (1-based) holding `values[0]`, for messages.
    """

    values: np.ndarray
    sample_rate: float
    path: Path
    start_time: float | None = None
    first_row: int = 1

    def row(self, index: int) -> int:
        """The file line (1-based) of `values[index]`."""
        return self.first_row + int(index)

    @property
    def duration_s(self) -> float:
        return len(self.values) / self.sample_rate


def _need_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(path, "EDA file not found")


def _as_float(values, path: Path, what: str, first_row: int | None = None) -> np.ndarray:
    """Numbers from a column; a non-numeric cell is a DataError naming its row (when known)."""
    series = pd.Series(values).reset_index(drop=True)
    numeric = pd.to_numeric(series, errors="coerce")
    bad = numeric.isna() & series.notna() & (series.astype(str).str.strip() != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        where = f"row {first_row + i} " if first_row is not None else ""
        raise DataError(path, f"{what} holds non-numeric values: {where}is {str(series[i]).strip()!r}")
    out = numeric.to_numpy(dtype=np.float64)
    if out.size == 0:
        raise DataError(path, f"{what} is empty")
    return out


def _rate_from_times(
    times: np.ndarray,
    path: Path,
    first_row: int = 2,
    column: str = "time",
    even_within: float | None = None,
) -> float:
    """Rate from a time column (s), which must increase at a regular step.

    `even_within`: when given, every step must lie within this fraction of the usual (median)
    step, not only below twice it (a prime must be at one fixed rate).

    Raises:
        DataError: a time that does not increase (names the row and both times), a jump of more
            than twice the usual step (a gap in the recording), an uneven step (`even_within`),
            or fewer than two times.
    """
    finite = np.flatnonzero(np.isfinite(times))
    if finite.size < 2:
        raise DataError(path, f"time column {column!r} needs at least two times to give the sample rate")
    t = times[finite]
    dt = np.diff(t)
    back = np.flatnonzero(dt <= 0)
    if back.size:
        i = int(back[0])
        raise DataError(
            path,
            f"time column {column!r} goes backwards at row {first_row + int(finite[i + 1])}: "
            f"{t[i + 1]:g} s after {t[i]:g} s (rows must be in time order, without repeats)",
        )
    step = float(np.median(dt))
    jump = np.flatnonzero(dt > 2.0 * step)
    if jump.size:
        i = int(jump[0])
        raise DataError(
            path,
            f"time column {column!r} jumps from {t[i]:g} s to {t[i + 1]:g} s at row "
            f"{first_row + int(finite[i + 1])} (the usual step is {step:g} s): a gap in the recording",
        )
    if even_within is not None:
        i = int(np.argmax(np.abs(dt - step)))
        if abs(dt[i] - step) > even_within * step:
            raise DataError(
                path,
                f"time column {column!r} is not evenly spaced: step {dt[i]:.4g} s at row "
                f"{first_row + int(finite[i + 1])} vs the usual {step:.4g} s; give it at one fixed rate",
            )
    return 1.0 / step


_DECIMAL_COMMA = re.compile(r"^\s*-?\d+,\d+\s*$")


def _head_lines(path: Path, n: int = 20) -> list[str]:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\r\n") for _, line in zip(range(n), fh, strict=False)]
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc})") from exc


def _read_table(path: Path, what: str, **kw) -> pd.DataFrame:
    """`pd.read_csv`, reading European-locale files (`;` separator, decimal comma) as such."""
    head = [line for line in _head_lines(path) if line.strip()]
    if len(head) >= 2 and all(";" in line for line in head):
        cells = [c.strip() for line in head[1:] for c in line.split(";")]
        kw = {"sep": ";", **({"decimal": ","} if any(_DECIMAL_COMMA.match(c) for c in cells) else {}), **kw}
    sep = kw.get("sep", ",")
    extra = len(head) >= 2 and head[1].count(sep) > head[0].count(sep)
    if extra and not head[1].rstrip().endswith(sep):  # pandas would make an index of the first field
        hint = (
            "decimal commas? Use '.' decimals, or ';' between columns" if sep == "," else "a stray separator?"
        )
        raise DataError(
            path, f"row 2 ({head[1].strip()!r}) has more fields than the header ({head[0].strip()!r}): {hint}"
        )
    try:
        return pd.read_csv(path, **kw)
    except Exception as exc:
        raise DataError(path, f"not a readable {what} ({exc})") from exc


def _refuse_decimal_commas(path: Path, first_value_line: int) -> None:
    """One-number-per-row files (E4, HKU956): `4,79` rows are decimal commas, not two columns."""
    lines = _head_lines(path, first_value_line + 20)[first_value_line - 1 :]
    lines = [line for line in lines if line.strip()]
    if lines and all(_DECIMAL_COMMA.match(line) for line in lines):
        raise DataError(
            path,
            f"row {first_value_line} is {lines[0].strip()!r}: decimal commas? This format holds one "
            "number per row with '.' decimals; re-save the file with '.' as the decimal separator",
        )


def read_e4_eda(path: str | Path) -> EdaSignal:
    """Empatica E4 `EDA.csv`: no header; row 1 start unix time, row 2 sample rate (Hz), then µS values."""
    path = Path(path)
    _need_file(path)
    _refuse_decimal_commas(path, 3)
    try:
        raw = pd.read_csv(path, header=None, usecols=[0], skip_blank_lines=False).iloc[:, 0]
    except Exception as exc:
        raise DataError(path, f"not a readable E4 EDA.csv ({exc})") from exc
    if len(raw) < 3:
        raise DataError(path, "E4 EDA.csv needs a start-time row, a sample-rate row and values")
    start, rate = _as_float(raw.iloc[:2], path, "E4 header (start time, sample rate)", 1)
    if not (np.isfinite(rate) and rate > 0):
        raise DataError(path, f"row 2 (the E4 sample rate) must be a rate > 0 Hz, got {rate:g}")
    values = _as_float(raw.iloc[2:], path, "EDA values", 3)
    return EdaSignal(values, float(rate), path, float(start), first_row=3)


def read_pmemo_eda(path: str | Path, subject: str, time_column: str | None = None) -> EdaSignal:
    """PMEmo2019 wide CSV: a time column (s) then one column of µS per subject; pick `subject`.

    The rate comes from the time column. Shorter subjects' columns end in empty cells (NaN),
    trimmed later by `fill_nan_gaps`.
    """
    path = Path(path)
    _need_file(path)
    df = _read_table(path, "PMEmo2019 EDA csv")
    df.columns = [str(c).strip() for c in df.columns]
    tcol = time_column or _find_time_column(df, path)
    if str(subject) not in df.columns:
        subjects = [c for c in df.columns if c != tcol]
        raise DataError(path, f"no subject column {subject!r}; columns are {subjects[:20]}")
    times = _as_float(df[tcol], path, f"time column {tcol!r}", 2)
    return EdaSignal(
        _as_float(df[str(subject)], path, f"column {subject!r}", 2),
        _rate_from_times(times, path, 2, tcol),
        path,
        first_row=2,
    )


def read_hku956_eda(path: str | Path, sample_rate: float = 4.0) -> EdaSignal:
    """HKU956 single-column EDA csv (4 Hz E4 data per song, no header rows).

    A non-numeric first row (a column name) is skipped. E4 header rows (a unix start time and
    a sample rate, as at the top of an E4 `EDA.csv`) are refused, naming the rows: read as EDA
    they would give a trace spanning 4 to 1.6e9 µS.
    """
    path = Path(path)
    _need_file(path)
    _refuse_decimal_commas(path, 1)
    try:
        raw = pd.read_csv(path, header=None).iloc[:, -1]
    except Exception as exc:
        raise DataError(path, f"not a readable HKU956 EDA csv ({exc})") from exc
    first_row = 1
    if len(raw) and pd.isna(pd.to_numeric(pd.Series([raw.iloc[0]]), errors="coerce")).all():
        raw, first_row = raw.iloc[1:], 2
    values = _as_float(raw, path, "EDA values", first_row)
    if len(values) >= 2 and values[0] > 1e8 and 0 < values[1] <= 1000 and values[1] == round(values[1]):
        raise DataError(
            path,
            f"rows {first_row}-{first_row + 1} ({values[0]:.6f}, {values[1]:g}) look like an E4 header "
            "(start unix time, sample rate); HKU956 EDA files hold only values: remove those rows, or "
            "list the file with eda_format e4",
        )
    return EdaSignal(values, float(sample_rate), path, first_row=first_row)


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
    even_within: float | None = None,
) -> EdaSignal:
    """Generic CSV with a header: an EDA column in µS, and a time column (s) or a given rate.

    Args:
        path: the csv.
        column: EDA column name; default: `eda`, `eda_us`, `EDA` or the only non-time column.
        sample_rate: used when the file has no time column.
        time_column: name of the time column (default: auto-detected, e.g. `time`, `time_s`).
        even_within: require every time step within this fraction of the usual step
            (default: only gaps of more than twice the step are refused).
    """
    path = Path(path)
    _need_file(path)
    df = _read_table(path, "CSV")
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
    values = _as_float(df[column], path, f"column {column!r}", 2)
    if tcol is not None:
        times = _as_float(df[tcol], path, f"time column {tcol!r}", 2)
        rate = _rate_from_times(times, path, 2, tcol, even_within)
    elif sample_rate is not None:
        rate = float(sample_rate)
    else:
        raise DataError(path, "no time column and no sample rate given")
    return EdaSignal(values, rate, path, first_row=2)


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


def __getattr__(name: str):
    """The cleaning functions now live in `eda_cleaning`; old imports from here still work."""
    from wavenet_lib.data import eda_cleaning

    if name in eda_cleaning.__all__:
        return getattr(eda_cleaning, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
