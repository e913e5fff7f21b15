"""EDA readers, NaN handling, value checks and anti-aliased resampling."""

from __future__ import annotations

import numpy as np
import pytest

from wavenet_lib.data.eda import (
    read_e4_eda,
    read_eda,
    read_generic_eda,
    read_hku956_eda,
    read_pmemo_eda,
)
from wavenet_lib.data.eda_cleaning import fill_nan_gaps, prepare_eda, resample_eda
from wavenet_lib.errors import DataError

from .conftest import eda_trace, write_generic_eda


def write_e4(path, values, rate=4.0, start=1600000000.0):
    path.write_text(f"{start:.6f}\n{rate:.6f}\n" + "".join(f"{v:.6f}\n" for v in values))
    return path


def test_e4_reader(tmp_path):
    sig = read_e4_eda(write_e4(tmp_path / "EDA.csv", [0.5, 0.6, 0.7]))
    assert sig.sample_rate == 4.0 and sig.start_time == 1600000000.0
    np.testing.assert_allclose(sig.values, [0.5, 0.6, 0.7])


def test_pmemo_reader_selects_subject(tmp_path):
    path = tmp_path / "1_EDA.csv"
    t = np.arange(100) / 50.0
    lines = ["time,100177,200378"] + [f"{a:.2f},{1 + a:.4f},{2 + a:.4f}" for a in t[:80]]
    lines += [f"{a:.2f},,{2 + a:.4f}" for a in t[80:]]  # subject 100177 stopped earlier
    path.write_text("\n".join(lines) + "\n")
    sig = read_pmemo_eda(path, "200378")
    assert sig.sample_rate == pytest.approx(50.0)
    np.testing.assert_allclose(sig.values, 2 + t, atol=1e-4)
    short = read_eda(path, "pmemo2019", 50.0, "100177")
    assert len(fill_nan_gaps(short.values, 50.0, 1.0, path)) == 80  # trailing NaNs trimmed
    with pytest.raises(DataError, match="no subject column '999'"):
        read_pmemo_eda(path, "999")


@pytest.mark.parametrize("header", ["", "EDA\n"])
def test_hku956_reader(tmp_path, header):
    path = tmp_path / "1_123.csv"
    path.write_text(header + "0.1\n0.2\n0.3\n")
    sig = read_hku956_eda(path)
    assert sig.sample_rate == 4.0
    np.testing.assert_allclose(sig.values, [0.1, 0.2, 0.3])


def test_generic_reader_time_column_or_rate(tmp_path):
    values = eda_trace(10.0, rate=8.0)
    sig = read_generic_eda(write_generic_eda(tmp_path / "a.csv", values, rate=8.0))
    assert sig.sample_rate == pytest.approx(8.0)
    np.testing.assert_allclose(sig.values, values, atol=1e-5)
    (tmp_path / "b.csv").write_text("gsr_left,skin_conductance\n1,2\n1.1,2.1\n")
    sig = read_generic_eda(tmp_path / "b.csv", column="skin_conductance", sample_rate=32.0)
    assert sig.sample_rate == 32.0 and sig.values.tolist() == [2.0, 2.1]
    with pytest.raises(DataError, match="name the EDA one"):
        read_generic_eda(tmp_path / "b.csv", sample_rate=32.0)
    with pytest.raises(DataError, match="no time column and no sample rate"):
        read_generic_eda(tmp_path / "b.csv", column="gsr_left")


def test_resampling_is_antialiased_and_keeps_level():
    rate_in, rate_out = 50.0, 4.0
    t = np.arange(int(60 * rate_in)) / rate_in
    slow = 5.0 + 0.5 * np.sin(2 * np.pi * 0.1 * t)
    fast = 0.3 * np.sin(2 * np.pi * 10.0 * t)  # above the 2 Hz output Nyquist: must be removed
    out = resample_eda(slow + fast, rate_in, rate_out)
    assert len(out) == 240
    t_out = np.arange(240) / rate_out
    expected = 5.0 + 0.5 * np.sin(2 * np.pi * 0.1 * t_out)
    np.testing.assert_allclose(out[5:-5], expected[5:-5], atol=0.02)
    assert abs(out[0] - expected[0]) < 0.1 and abs(out[-1] - expected[-1]) < 0.1  # no edge droop


def test_short_nan_gap_interpolated():
    x = np.linspace(1.0, 2.0, 40)
    y = x.copy()
    y[10:13] = np.nan  # 0.75 s at 4 Hz
    y[:2] = np.nan
    out = fill_nan_gaps(y, 4.0, 1.0, "f.csv")
    np.testing.assert_allclose(out[2:], x[2:])
    assert out[0] == out[1] == x[2] and len(out) == 40


def test_long_nan_gap_is_a_data_error():
    y = np.linspace(1.0, 2.0, 40)
    y[10:20] = np.nan  # 2.5 s
    with pytest.raises(DataError, match=r"f\.csv: EDA has a NaN gap of 2\.50 s at 2\.50 s"):
        fill_nan_gaps(y, 4.0, 1.0, "f.csv")


def test_all_nan_is_a_data_error():
    with pytest.raises(DataError, match="all NaN"):
        fill_nan_gaps(np.full(10, np.nan), 4.0, 1.0, "f.csv")


def test_flat_trace_is_a_data_error(tmp_path):
    sig = read_generic_eda(write_generic_eda(tmp_path / "flat.csv", np.full(80, 3.0)))
    with pytest.raises(DataError, match="flat.csv: EDA is flat"):
        prepare_eda(sig, 4.0, 4.0)


def test_negative_only_trace_is_a_data_error(tmp_path):
    sig = read_generic_eda(write_generic_eda(tmp_path / "neg.csv", -eda_trace(20.0)))
    with pytest.raises(DataError, match="neg.csv: EDA is never positive"):
        prepare_eda(sig, 4.0, 4.0)


def test_sample_rate_mismatch_is_a_data_error(tmp_path):
    sig = read_e4_eda(write_e4(tmp_path / "EDA.csv", eda_trace(20.0), rate=4.0))
    with pytest.raises(
        DataError, match="EDA.csv: sample-rate mismatch: the file says 4 Hz, the manifest says 50"
    ):
        prepare_eda(sig, expected_rate=50.0, target_rate=4.0)


def test_non_numeric_values_are_a_data_error(tmp_path):
    path = tmp_path / "EDA.csv"
    path.write_text("1600000000\n4\n0.5\nbanana\n")
    with pytest.raises(DataError, match="non-numeric"):
        read_e4_eda(path)


def test_cleaning_functions_still_import_from_the_readers_module():
    from wavenet_lib.data import eda, eda_cleaning
    from wavenet_lib.data.eda import prepare_eda as old_home

    assert old_home is eda_cleaning.prepare_eda and eda.resample_eda is eda_cleaning.resample_eda
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = eda.nothing_here
