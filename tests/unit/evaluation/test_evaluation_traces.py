"""Free-running, SCR and event-locked metrics on traces in µS; the table and the JSON file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from wavenet_lib.evaluate.event_locked import (
    above_chance,
    chance_response,
    event_locked_response,
    share_of_real,
)
from wavenet_lib.evaluate.scrs import detect_scrs, phasic_peaks, scr_statistics
from wavenet_lib.evaluate.tables import metrics_table, write_metrics_json
from wavenet_lib.evaluate.traces import free_running_metrics

TAU_RISE, TAU_DECAY = 0.75, 2.5
PEAK_DELAY = math.log(TAU_DECAY / TAU_RISE) * TAU_RISE * TAU_DECAY / (TAU_DECAY - TAU_RISE)  # onset → peak, s


def scr(t: np.ndarray, onset: float, amplitude: float) -> np.ndarray:
    """Bi-exponential SCR starting at `onset` whose peak is `amplitude` µS."""
    s = np.clip(t - onset, 0.0, None)
    shape = np.exp(-s / TAU_DECAY) - np.exp(-s / TAU_RISE)
    peak = math.exp(-PEAK_DELAY / TAU_DECAY) - math.exp(-PEAK_DELAY / TAU_RISE)
    return amplitude * shape / peak


def synthetic_eda(rate: float, onsets, amplitudes, duration: float = 120.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(duration * rate)) / rate
    x = 5.0 + 0.3 * np.sin(2 * np.pi * t / 200)  # slow tonic drift
    for onset, amp in zip(onsets, amplitudes, strict=True):
        x += scr(t, onset, amp)
    return x + np.random.default_rng(seed).normal(0, 0.003, t.size)


def test_free_running_metrics_on_identical_traces():
    x = np.sin(np.linspace(0, 20, 300)) + 5
    m = free_running_metrics(x, x)
    assert m["rmse_us"] == 0 and m["pearson_r"] == pytest.approx(1.0) and m["dtw_us"] == 0


def test_shifted_trace_has_small_dtw_but_large_rmse():
    t = np.arange(400) / 4
    real = 5 + np.sin(2 * np.pi * t / 20)
    shifted = 5 + np.sin(2 * np.pi * (t - 3) / 20)
    m = free_running_metrics(real, shifted)
    assert m["rmse_us"] > 0.5 and m["dtw_us"] < 0.1 * m["rmse_us"]
    banded = free_running_metrics(real, shifted, band_rad=0.005)  # band of 2 samples: no room to warp 12
    assert banded["dtw_us"] > 5 * m["dtw_us"]
    assert math.isnan(free_running_metrics(real, np.full(400, 5.0))["pearson_r"])


def test_long_traces_are_block_averaged_for_dtw():
    x = np.random.default_rng(0).normal(size=900)
    assert free_running_metrics(x, x[::-1], dtw_max_samples=300)["dtw_factor"] == 3


@pytest.mark.parametrize("rate", [4, 50])
def test_scr_count_and_absolute_threshold(rate):
    onsets = [5, 17, 30, 41, 55, 70, 84, 99]
    amplitudes = [0.6, 0.3, 0.9, 0.2, 0.5, 0.8, 0.4, 0.7]
    tiny = [11, 62, 92]  # 0.02 µS: below the 0.05 µS threshold
    eda = synthetic_eda(rate, onsets + tiny, amplitudes + [0.02] * 3)
    scrs = detect_scrs(eda, rate, amplitude_min_us=0.05)
    assert abs(len(scrs) - len(onsets)) <= 1
    assert (scrs["amplitude_us"] >= 0.05).all()
    stats = scr_statistics(eda, rate, amplitude_min_us=0.05)
    assert stats["scr_rate_per_min"] == pytest.approx(stats["n_scr"] / 2)
    assert stats["mean_rise_time_s"] == pytest.approx(PEAK_DELAY, abs=0.5)
    assert 0.5 < stats["mean_recovery_time_s"] < 5
    # The threshold is absolute: raising it above the small SCRs drops exactly those.
    assert len(detect_scrs(eda, rate, amplitude_min_us=0.45)) == sum(a >= 0.45 for a in amplitudes)
    # Small SCRs alone stay below it (a relative threshold would keep the largest of them).
    assert len(detect_scrs(synthetic_eda(rate, tiny, [0.02] * 3), rate, amplitude_min_us=0.05)) == 0


def _phasic_traces():
    """Phasic-like signals with known awkward spots: noise, SCRs, a leading peak, plateaus, a ramp."""
    rng = np.random.default_rng(3)
    walks = [np.cumsum(rng.normal(0, 0.01, n)) for n in (40, 600, 6000)]
    listener = [synthetic_eda(rate, [5, 17, 30, 41], [0.6, 0.3, 0.9, 0.2], seed=rate) for rate in (4, 50)]
    leading_peak = np.array([0.0, 1.0, 0.5, 0.2, 0.4, 0.1, 0.3, 0.0])  # no trough before the first peak
    plateaus = np.round(rng.normal(0, 1, 400).cumsum() / 3)  # flat runs: scipy's plateau peaks
    quantized = np.round(listener[0] / 0.009) * 0.009  # a model's level grid
    return [*walks, *listener, leading_peak, plateaus, quantized, np.linspace(0, 1, 50), np.zeros(10)]


@pytest.mark.parametrize("index", range(len(_phasic_traces())))
def test_phasic_peaks_are_neurokit2s(index):
    """The sorted search finds neurokit2's peaks and onsets (NaN where neurokit2 finds no trough)."""
    import warnings

    import neurokit2 as nk

    x = _phasic_traces()[index]
    peaks, onsets = phasic_peaks(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = nk.eda_findpeaks(x, sampling_rate=4, method="neurokit", amplitude_min=None)
    np.testing.assert_array_equal(peaks, np.asarray(found["SCR_Peaks"], dtype=float))
    np.testing.assert_array_equal(onsets, np.asarray(found["SCR_Onsets"], dtype=float).ravel())


def test_phasic_peaks_without_a_trough_before():
    peaks, onsets = phasic_peaks(np.array([0.0, 1.0, 0.5, 0.2, 0.4, 0.1, 0.3, 0.0]))
    np.testing.assert_array_equal(peaks, [1, 4, 6])
    np.testing.assert_array_equal(onsets, [np.nan, 3, 5])
    assert phasic_peaks(np.linspace(0, 1, 9))[0].size == 0  # a ramp has no peak


def test_scr_statistics_without_scrs():
    stats = scr_statistics(np.full(480, 5.0), 4)
    assert stats["n_scr"] == 0 and stats["scr_rate_per_min"] == 0
    assert all(
        math.isnan(stats[k]) for k in ("mean_amplitude_us", "mean_rise_time_s", "mean_recovery_time_s")
    )
    with pytest.raises(ValueError, match="NaN"):
        scr_statistics(np.array([1.0, np.nan] * 100), 4)


def test_event_locked_response_recovers_the_latency():
    rate, latency = 4, 2.0  # SCR onset 2 s after each event, peak PEAK_DELAY later
    events = np.arange(5.3, 110, 12.0)  # between samples on purpose
    eda = synthetic_eda(rate, events + latency, [0.5] * len(events))
    r = event_locked_response(eda, rate, events, window_s=(-1, 8))
    assert r.n_events == len(events) and r.per_event.shape == (len(events), r.times.size)
    assert r.times[0] == -1 and r.times[-1] == 8
    assert r.peak_latency_s == pytest.approx(latency + PEAK_DELAY, abs=0.5)
    assert r.onset_latency_s == pytest.approx(latency, abs=0.5)
    assert r.peak_amplitude_us == pytest.approx(0.5, abs=0.1)
    # Several generated samples: averaged over samples too; events too close to the end are dropped.
    samples = np.stack([eda, eda + 0.01])
    r2 = event_locked_response(samples, rate, list(events) + [118.0])
    assert r2.n_events == len(events)
    np.testing.assert_allclose(r2.mean, r.mean, atol=1e-12)


def test_a_drift_is_a_response_only_until_chance_is_subtracted():
    rate, slope = 4, 0.005  # µS per second: 0.3 µS per minute, no SCR at all
    t = np.arange(600) / rate
    drifting = 5.0 + slope * t
    events = np.arange(10.3, 140, 13.0)
    raw = event_locked_response(drifting, rate, events)
    # The drift from the baseline's middle (-0.625 s: samples at -1, -0.75, -0.5, -0.25 s) to 8 s:
    assert raw.peak_amplitude_us == pytest.approx(slope * 8.625, rel=1e-6)
    assert raw.peak_latency_s == 8.0  # at the window's end: no peak, a drift
    chance = chance_response(drifting, rate, hop_s=0.5)
    np.testing.assert_allclose(chance.mean, slope * (chance.times + 0.625), atol=1e-9)
    above = above_chance(raw, chance)
    assert abs(above.peak_amplitude_us) < 1e-9
    # SCRs 2 s after each event on the same drift: above chance, their amplitude is left.
    scrs = synthetic_eda(rate, events + 2.0, [0.5] * len(events), duration=150.0)
    both = drifting + scrs - scrs[0]
    r = above_chance(event_locked_response(both, rate, events), chance_response(both, rate))
    assert r.peak_amplitude_us == pytest.approx(0.5, abs=0.1)
    assert r.peak_latency_s == pytest.approx(2.0 + PEAK_DELAY, abs=0.5)
    grid = np.arange(20.0, (t.size - 1) / rate - 8.0 + 1e-9, 0.5)  # every window that fits, from 20 s
    assert chance_response(both, rate, start_s=20.0).n_events == grid.size
    with pytest.raises(ValueError, match="hop_s"):
        chance_response(both, rate, hop_s=0)


def test_metrics_table_and_json(tmp_path):
    rows = {"model": {"cross_entropy_nats": 1.5, "accuracy": 0.3}, "persistence": {"cross_entropy_nats": 2.0}}
    table = metrics_table(rows)
    assert list(table.index) == ["model", "persistence"] and list(table.columns) == [
        "cross_entropy_nats",
        "accuracy",
    ]
    assert math.isnan(table.loc["persistence", "accuracy"])
    path = write_metrics_json(
        tmp_path / "out" / "metrics.json", rows | {"scr": {"mean_rise_time_s": np.float32(np.nan)}}
    )
    data = json.loads(path.read_text())
    assert data["model"]["accuracy"] == 0.3 and data["scr"]["mean_rise_time_s"] is None
    assert list(path.parent.iterdir()) == [path]  # no temporary file left
    with pytest.raises(TypeError, match="metrics.model.name"):
        write_metrics_json(path, {"model": {"name": "x"}})


def test_share_of_real_gives_the_fraction_and_an_interval_that_narrows_with_recordings():
    """Generated responses at half the real amplitude read as 0.5 of real; with the same
    recordings' events the point is exact, and the bootstrap interval over recordings holds it
    and narrows as recordings are added; fewer than two recordings give no interval."""
    rate = 4

    def responses(n: int, scale: float):
        rng = np.random.default_rng(0)  # the same recordings (amplitudes and noise) at every scale
        out = []
        for _ in range(n):
            events = np.arange(5.3, 100, 12.0)
            amplitudes = rng.uniform(0.2, 0.8, events.size)  # the recordings differ
            eda = synthetic_eda(rate, events + 2.0, amplitudes * scale, duration=110.0)
            out.append(event_locked_response(eda + rng.normal(0, 0.01, eda.size), rate, events))
        return out

    real8, half8 = responses(8, 1.0), responses(8, 0.5)
    share, low, high = share_of_real(half8, real8)
    assert share == pytest.approx(0.5, abs=0.03) and low <= share <= high and high - low < 0.2
    _, low32, high32 = share_of_real(responses(32, 0.5), responses(32, 1.0))
    assert high32 - low32 < high - low
    one = share_of_real(half8[:1], real8[:1])
    assert one[0] == pytest.approx(0.5, abs=0.05) and math.isnan(one[1]) and math.isnan(one[2])
    assert all(
        math.isnan(v) for v in share_of_real([half8[0]], [event_locked_response(np.zeros(400), rate, [])])
    )
    with pytest.raises(ValueError, match="same recordings"):
        share_of_real(half8, real8[:3])
