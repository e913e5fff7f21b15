"""The two-sample test taken apart, on sources whose difference is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.unit.evaluation.test_realism import eda_trace, recordings
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.evaluate.two_sample import source_window_features, window_features
from wavenet_lib.evaluate.two_sample_diagnosis import (
    FEATURE_GROUPS,
    at_output_resolution,
    feature_group_aucs,
    feature_spread,
    group_columns,
    resolution_aucs,
)


def features(source: dict[str, np.ndarray]) -> dict[str, pd.DataFrame]:
    return source_window_features(source, 4.0)


def test_every_window_feature_is_in_exactly_one_group():
    columns = list(window_features(recordings([0])["rec0"][0], 4.0).columns)
    groups = group_columns(columns)
    assert list(groups) == list(FEATURE_GROUPS)
    placed = [c for cols in groups.values() for c in cols]
    assert sorted(placed) == sorted(columns)  # each once, none left out
    assert groups["scrs"] == ["scr_per_min", "scr_amplitude_us", "scr_rise_time_s", "scr_recovery_time_s"]
    with pytest.raises(ValueError, match="new_feature"):
        group_columns([*columns, "new_feature"])


def test_group_aucs_find_the_group_that_differs():
    real = features({k: v[0] for k, v in recordings(range(8)).items()})
    # White noise of 0.03 µS: the steps grow (scale), the SCRs stay as they were.
    noisy = features(recordings(range(8), lambda x, rng: x + rng.normal(0, 0.03, x.size)))
    table = feature_group_aucs(real, noisy)
    assert list(table.index) == ["all", *FEATURE_GROUPS]
    assert table.loc["all", "n_features"] == sum(table.loc[list(FEATURE_GROUPS), "n_features"])
    assert table.loc["all", "auc_alone"] > 0.9 and table.loc["scale", "auc_alone"] > 0.9
    # Real against real (other draws of the same process): no group tells them apart.
    same = features({k: v[1] for k, v in recordings(range(8)).items()})
    null = feature_group_aucs(real, same)
    assert null["auc_alone"].between(0.25, 0.75).all() and null["auc_without"].between(0.25, 0.75).all()


def people(n: int, per_trace_gain: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """Traces with SCRs every 10 s whose amplitudes are 0.2 or 0.8 µS: one gain per trace (a
    person), or a gain drawn anew for every SCR (a generator that forgets who it imitates)."""
    rng = np.random.default_rng(seed)
    onsets = np.arange(5.0, 295.0, 10.0)
    out = {}
    for i in range(n):
        if per_trace_gain:
            amplitudes = np.full(onsets.size, 0.2 if i % 2 else 0.8)
        else:
            amplitudes = rng.choice([0.2, 0.8], onsets.size)
        amplitudes = amplitudes * rng.uniform(0.9, 1.1, onsets.size)
        out[f"rec{i}"] = eda_trace(4.0, onsets, amplitudes, 300.0, seed=i)
    return out


def test_spread_within_and_between_traces_tells_a_person_from_a_mixture():
    real, mixed = people(8, per_trace_gain=True), people(8, per_trace_gain=False, seed=1)
    spread = feature_spread(real, mixed, 4.0)
    amplitude = spread.loc["scr_amplitude_us"]
    assert amplitude["group"] == "scrs"
    assert amplitude["within_ratio"] > 2.0  # one trace holds both sizes of SCR
    assert amplitude["between_ratio"] < 0.5  # and the traces look alike
    assert abs(amplitude["effect"]) < 0.5  # while the mean SCR is about the same
    # A source against itself: no effect, ratios of one.
    itself = feature_spread(real, real, 4.0)
    assert np.allclose(itself["effect"], 0.0) and np.allclose(itself[["within_ratio", "between_ratio"]], 1.0)
    # Features NaN in every window (bands below 1/window) are left out, not NaN rows.
    assert "band_0_0.05_hz" not in spread.index


def test_spread_needs_two_traces_per_source():
    real = people(2, per_trace_gain=True)
    with pytest.raises(ValueError, match="two other traces"):
        feature_spread(real, {"rec0": real["rec0"]}, 4.0)
    with pytest.raises(ValueError, match="two real traces"):
        feature_spread({"rec0": real["rec0"][:100]}, real, 4.0)  # 25 s: no 30 s window


def test_output_resolution_puts_a_trace_on_the_level_grid_of_its_recording():
    x = recordings([0])["rec0"][0]
    norm = MinMaxNormalizer.fit(x)
    on_grid = at_output_resolution(x, norm, 16)
    step = (norm.high - norm.low) / 15  # 16 levels over the normalized span
    offsets = (on_grid - norm.low) / step
    np.testing.assert_allclose(offsets, np.round(offsets), atol=1e-9)  # on the grid...
    assert np.abs(on_grid - x).max() <= step / 2 + 1e-12  # ...at the nearest level
    np.testing.assert_array_equal(at_output_resolution(on_grid, norm, 16), on_grid)


def test_resolution_aucs_find_a_coarse_grid_and_not_a_fine_one():
    """Real traces on a coarse grid (16 levels: steps of about 0.1 µS) are told from the raw
    traces; on a fine grid they are not; a source that is the real traces on the coarse grid
    reads as real once the real traces are put on that grid too."""
    real = {k: v[0] for k, v in recordings(range(8)).items()}
    norms = {k: MinMaxNormalizer.fit(v) for k, v in real.items()}
    coarse = {k: at_output_resolution(v, norms[k], 16) for k, v in real.items()}
    found = resolution_aucs(real, coarse, norms, 16, 4.0)
    assert found["other_vs_real"] > 0.9 and found["real_on_grid_vs_real"] > 0.9
    assert found["other_vs_real_on_grid"] == pytest.approx(0.5, abs=0.1)  # the same windows
    fine = resolution_aucs(real, {k: v[1] for k, v in recordings(range(8)).items()}, norms, 1 << 16, 4.0)
    assert 0.25 <= fine["real_on_grid_vs_real"] <= 0.75
