"""Realism metrics on traces with known answers: SCRs, cliff drops, spectra, the two-sample test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wavenet_lib.evaluate.realism import (
    REALISM_METRICS,
    classifier_two_sample_test,
    drift_us_per_min,
    log_spectral_distance_db,
    realism_by_recording,
    realism_metrics,
    scr_summary,
    step_change_percentiles,
    window_features,
)
from wavenet_lib.evaluate.scrs import detect_scrs

TAU_RISE, TAU_DECAY = 0.75, 2.5
# Bi-exponential exp(-s/TAU_DECAY) - exp(-s/TAU_RISE): onset → peak delay and peak → half amplitude.
PEAK_DELAY_S = math.log(TAU_DECAY / TAU_RISE) * TAU_RISE * TAU_DECAY / (TAU_DECAY - TAU_RISE)
_s = np.linspace(PEAK_DELAY_S, 30, 300_001)
_shape = np.exp(-_s / TAU_DECAY) - np.exp(-_s / TAU_RISE)
HALF_RECOVERY_S = float(_s[np.argmax(_shape <= _shape[0] / 2)] - PEAK_DELAY_S)  # ≈ 2.55 s


def scr(t: np.ndarray, onset: float, amplitude: float) -> np.ndarray:
    s = np.clip(t - onset, 0.0, None)
    shape = np.exp(-s / TAU_DECAY) - np.exp(-s / TAU_RISE)
    peak = math.exp(-PEAK_DELAY_S / TAU_DECAY) - math.exp(-PEAK_DELAY_S / TAU_RISE)
    return amplitude * shape / peak


def eda_trace(rate: float, onsets, amplitudes, duration_s: float, noise_us: float = 0.003, seed: int = 0):
    t = np.arange(int(duration_s * rate)) / rate
    rng = np.random.default_rng(seed)
    x = 5.0 + 0.3 * np.sin(2 * np.pi * t / 200 + rng.uniform(0, 6.3))
    for onset, amplitude in zip(onsets, amplitudes, strict=True):
        x += scr(t, onset, amplitude)
    return x + rng.normal(0, noise_us, t.size)


def random_eda(seed: int, rate: float = 4.0, duration_s: float = 150.0) -> np.ndarray:
    """A 'real' recording: Poisson SCRs (about 4/min, at least 6 s apart), random amplitudes."""
    rng = np.random.default_rng(seed)
    onsets = np.cumsum(rng.exponential(9.0, 40) + 6.0)
    onsets = onsets[onsets < duration_s - 5]
    return eda_trace(rate, onsets, rng.uniform(0.15, 0.9, onsets.size), duration_s, seed=seed + 1000)


@pytest.mark.parametrize("rate", [4, 50])
def test_known_scrs_give_count_amplitude_rise_and_half_recovery(rate):
    onsets = [5, 19, 33, 47, 61, 75, 89, 103]
    amplitudes = [0.6, 0.3, 0.9, 0.4, 0.5, 0.8, 0.4, 0.7]
    stats = scr_summary(eda_trace(rate, onsets, amplitudes, 120.0), rate)
    assert stats["n_scr"] == len(onsets)
    assert stats["scr_rate_per_min"] == pytest.approx(len(onsets) / 2.0)
    assert stats["scr_amplitude_us"] == pytest.approx(np.mean(amplitudes), rel=0.1)
    assert stats["scr_rise_time_s"] == pytest.approx(PEAK_DELAY_S, abs=0.3)
    assert stats["scr_half_recovery_s"] == pytest.approx(HALF_RECOVERY_S, abs=0.35)
    # Several traces pool their SCRs: two copies of the same trace, same means, rate unchanged.
    trace = eda_trace(rate, onsets, amplitudes, 120.0)
    two = scr_summary(np.stack([trace, trace]), rate)
    assert two["n_scr"] == 2 * len(onsets) and two["scr_rate_per_min"] == pytest.approx(len(onsets) / 2.0)


def test_slower_scrs_have_longer_rise_and_recovery():
    rate, onsets = 4, [5, 25, 45, 65, 85]
    fast = scr_summary(eda_trace(rate, onsets, [0.5] * 5, 110.0), rate)
    t = np.arange(440) / rate
    slow_trace = 5.0 + sum(0.5 * (scr(t / 2, o / 2, 1.0)) for o in onsets)  # time-stretched ×2
    slow = scr_summary(slow_trace, rate)
    assert slow["scr_rise_time_s"] > 1.5 * fast["scr_rise_time_s"]
    assert slow["scr_half_recovery_s"] > 1.5 * fast["scr_half_recovery_s"]


def test_flat_trace_has_no_scrs():
    stats = scr_summary(np.full(600, 5.0), 4)
    assert stats["n_scr"] == 0 and stats["scr_rate_per_min"] == 0
    assert math.isnan(stats["scr_amplitude_us"]) and math.isnan(stats["scr_half_recovery_s"])


def test_drift_is_the_mean_slope_in_microsiemens_per_minute():
    rate = 4.0
    minutes = np.arange(600) / rate / 60.0  # 2.5 min
    falling = 8.0 - 0.15 * minutes  # the tonic level at rest: -0.15 µS/min
    assert drift_us_per_min(falling, rate) == pytest.approx(-0.15)
    # SCRs on top of a flat level that fully recover barely move it; a climb of 0.2 µS/min does
    events = random_eda(0)
    flat = events - (events[-1] - events[0]) * np.arange(events.size) / (events.size - 1)
    climbing = flat + 0.2 * np.arange(flat.size) / rate / 60.0
    assert abs(drift_us_per_min(flat, rate)) < 0.1
    assert drift_us_per_min(np.stack([climbing, climbing + 1.0]), rate) == pytest.approx(
        drift_us_per_min(flat, rate) + 0.2
    )
    assert math.isnan(drift_us_per_min([np.zeros(1)], rate))


def test_cliff_drop_is_flagged_by_the_step_decrease_percentile():
    smooth = np.stack([random_eda(s) for s in range(3)])  # 3 × 599 steps
    cliff = smooth.copy()
    for row, step in [(0, 100), (0, 400), (1, 250), (2, 50), (2, 500)]:
        cliff[row, step:] -= 0.5  # 5 one-step falls of 0.5 µS: 0.28 % of the steps
    before, after = step_change_percentiles(smooth), step_change_percentiles(cliff)
    assert before["step_decrease_p999_us"] < 0.1
    assert after["step_decrease_p999_us"] == pytest.approx(0.5, abs=0.05)
    assert after["step_increase_p999_us"] == pytest.approx(before["step_increase_p999_us"])
    # Known answer: a staircase rising 0.1 µS per step and falling 1 µS every 10th step.
    stairs = np.cumsum(np.tile([0.1] * 9 + [-0.9], 200))
    known = step_change_percentiles(stairs, percentile=50)
    assert known["step_increase_p999_us"] == pytest.approx(0.1) and known["step_decrease_p999_us"] == 0


def test_log_spectral_distance_zero_for_identical_positive_for_different():
    real = np.stack([random_eda(s) for s in range(3)])
    assert log_spectral_distance_db(real, real, 4) == pytest.approx(0.0, abs=1e-9)
    noisy = real + np.random.default_rng(1).normal(0, 0.05, real.shape)
    sawtooth = real + 0.2 * ((np.arange(real.shape[1]) % 4) / 3 - 0.5)
    assert log_spectral_distance_db(real, noisy, 4) > 3.0
    assert log_spectral_distance_db(real, sawtooth, 4) > 3.0
    # Another draw of the same process is much closer than either.
    other = np.stack([random_eda(s) for s in range(10, 13)])
    assert log_spectral_distance_db(real, other, 4) < 0.5 * log_spectral_distance_db(real, noisy, 4)


def test_window_features_are_level_free():
    x = random_eda(3)
    a, b = window_features(x, 4), window_features(x + 7.0, 4)
    assert len(a) == 9  # 150 s, 30 s windows every 15 s
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-9, equal_nan=True)
    assert len(window_features(x[:100], 4)) == 0  # shorter than one window


def test_each_row_of_window_features_is_its_window_alone():
    """All windows are measured in one pass; row i must be window i measured on its own (the
    step statistics on its samples, the SCRs whose peak lies in it), nothing of its neighbours."""
    rate, size, hop = 4, 120, 60
    x = random_eda(5)
    scrs = detect_scrs(x, rate)
    together = window_features(x, rate, resolution_us=0.0, scrs=scrs)
    assert len(together) == 9
    for i in range(len(together)):
        start = i * hop
        mine = scrs[(scrs["peak_s"] >= start / rate) & (scrs["peak_s"] < (start + size) / rate)]
        alone = window_features(
            x[start : start + size],
            rate,
            resolution_us=0.0,
            scrs=mine.assign(peak_s=mine["peak_s"] - start / rate),
        )
        assert len(alone) == 1
        np.testing.assert_allclose(
            together.iloc[i].to_numpy(), alone.iloc[0].to_numpy(), rtol=1e-12, atol=1e-12
        )
    assert together["scr_per_min"].sum() > 0 and together["scr_amplitude_us"].notna().any()
    flat = window_features(np.full(240, 5.0), rate, resolution_us=0.0)  # no steps: moments are 0, no NaN
    assert flat[["skew_diff", "kurtosis_diff"]].eq(0.0).all().all()


def test_weighted_auc_is_scikit_learns():
    from sklearn.metrics import roc_auc_score

    from wavenet_lib.evaluate.two_sample import weighted_auc

    rng = np.random.default_rng(0)
    for decimals in (0, 1, 6):  # many ties, some, none
        y = rng.integers(0, 2, 300)
        scores = np.round(rng.normal(size=300) + y, decimals)
        weights = rng.integers(0, 4, 300).astype(float)  # bootstrap counts, zeros included
        expected = roc_auc_score(y, scores, sample_weight=weights)
        assert weighted_auc(y, scores, weights) == pytest.approx(expected, abs=1e-12)
    assert weighted_auc(np.array([0, 1]), np.array([0.2, 0.9]), np.ones(2)) == 1.0
    assert weighted_auc(np.array([0, 1, 0, 1]), np.full(4, 0.5), np.ones(4)) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        weighted_auc(np.array([0, 1]), np.array([0.2, 0.9]), np.array([1.0, 0.0]))


def recordings(seeds, transform=lambda x, rng: x) -> dict[str, np.ndarray]:
    out = {}
    for s in seeds:
        rng = np.random.default_rng(10_000 + s)
        out[f"rec{s}"] = np.stack([transform(random_eda(100 * s + k), rng) for k in range(2)])
    return out


def quantized(x: np.ndarray, levels: int = 256) -> np.ndarray:
    """x on `levels` evenly spaced values between its min and max (as the model's output is)."""
    lo, hi = x.min(), x.max()
    return lo + np.round((x - lo) / (hi - lo) * (levels - 1)) / (levels - 1) * (hi - lo)


@pytest.mark.parametrize("quantize", [False, True])
def test_two_sample_auc_near_half_for_real_vs_real(quantize):
    real = {k: v[0] for k, v in recordings(range(12)).items()}
    other = {k: v[1] for k, v in recordings(range(12)).items()}  # same process, other draws
    if quantize:  # 256 levels over a ~2 µS range: ~0.01 µS steps, finer than the classifier looks
        other = {k: quantized(v) for k, v in other.items()}
    test = classifier_two_sample_test(real, other, 4)
    assert test.n_folds == 5 and test.n_real == 12 * 9 and test.n_other == 12 * 9
    assert 0.35 <= test.auc <= 0.65
    low, high = test.auc_ci95
    assert low < 0.5 < high  # indistinguishable: the interval holds chance
    assert low <= test.auc + 0.03 and test.auc - 0.03 <= high


@pytest.mark.parametrize(
    "name, transform",
    [
        ("sawtooth", lambda x, rng: x + 0.15 * ((np.arange(x.size) % 3) / 2 - 0.5)),
        ("white noise", lambda x, rng: x + rng.normal(0, 0.03, x.size)),
    ],
)
def test_two_sample_auc_high_for_obviously_different(name, transform):
    real = {k: v[0] for k, v in recordings(range(8)).items()}
    other = recordings(range(8), transform)
    test = classifier_two_sample_test(real, other, 4)
    assert test.auc > 0.9, name
    assert np.nanmean(list(test.auc_by_recording.values())) > 0.9
    assert 0.85 < test.auc_ci95[0] <= test.auc_ci95[1] <= 1.0  # told apart whoever is held out
    # One recording only: no grouped cross-validation is possible, the AUC is NaN.
    single = classifier_two_sample_test({"rec0": real["rec0"]}, {"rec0": other["rec0"]}, 4)
    assert single.n_folds == 0 and math.isnan(single.auc) and all(map(math.isnan, single.auc_ci95))
    # Too few windows to train on (60 s: 3 windows a trace): NaN, not a constant classifier's 0.5.
    few = classifier_two_sample_test(
        {r: real[r][:240] for r in ("rec0", "rec1")}, {r: other[r][:, :240] for r in ("rec0", "rec1")}, 4
    )
    assert few.n_folds == 2 and math.isnan(few.auc)


def test_the_auc_interval_resamples_recordings_and_narrows_with_more_of_them():
    from sklearn.metrics import roc_auc_score

    from wavenet_lib.evaluate.two_sample import auc_interval

    rng = np.random.default_rng(0)

    def scored(n_recordings: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # per recording 10 real and 10 other windows; real scores sit 1 sd higher (AUC ~0.76)
        # and each recording shifts both of its sources alike (listeners differ)
        y = np.tile(np.r_[np.ones(10), np.zeros(10)], n_recordings).astype(int)
        shift = np.repeat(rng.normal(0, 1.0, n_recordings), 20)
        s = y * 1.0 + shift + rng.normal(0, 1.0, y.size)
        return y, s, np.repeat(np.arange(n_recordings), 20)

    y, s, g = scored(12)
    low, high = auc_interval(y, s, g, n_boot=500)
    assert low < roc_auc_score(y, s) < high
    y4, s4, g4 = scored(48)
    low4, high4 = auc_interval(y4, s4, g4, n_boot=500)
    assert high4 - low4 < high - low  # four times the recordings: a narrower interval
    # unscored windows are left out; one recording gives no interval
    s_nan = s.copy()
    s_nan[g == 0] = np.nan
    assert auc_interval(y, s_nan, g, n_boot=200) != (low, high)
    assert all(map(math.isnan, auc_interval(y[g == 1], s[g == 1], g[g == 1])))


def test_realism_by_recording_structure():
    real = {k: v[0] for k, v in recordings(range(3)).items()}
    generated = recordings(range(3), lambda x, rng: x + rng.normal(0, 0.03, x.size))
    pooled, per = realism_by_recording(real, {"generated": generated}, 4, two_sample=True)
    assert list(pooled) == ["real", "generated"] and list(per) == list(real)
    assert set(pooled["generated"]) == set(REALISM_METRICS)
    assert "two_sample_auc" not in pooled["real"] and "diff_log_spectral_distance_db" not in pooled["real"]
    assert per["rec1"]["real"] == realism_metrics(real["rec1"], 4)
    assert per["rec1"]["generated"]["diff_log_spectral_distance_db"] > 3.0
    # Pooled SCR rate: all SCRs over all minutes; the generated row pools both samples.
    minutes = 3 * 150 / 60
    assert pooled["real"]["scr_rate_per_min"] == pytest.approx(
        sum(per[r]["real"]["n_scr"] for r in real) / minutes
    )
    with pytest.raises(ValueError, match="rec2"):
        realism_by_recording(real, {"generated": {r: generated[r] for r in ("rec0", "rec1")}}, 4)


def test_half_recovery_is_not_cut_short_by_a_small_wiggle_on_the_decay():
    rate, onsets = 50, [5, 25, 45, 65, 85]
    t = np.arange(110 * rate) / rate
    clean = eda_trace(rate, onsets, [0.6] * 5, 110.0)
    wiggly = clean + sum(0.03 * np.exp(-0.5 * ((t - o - PEAK_DELAY_S - 1.0) / 0.05) ** 2) for o in onsets)
    scrs = detect_scrs(wiggly, rate)
    assert len(scrs) == 5  # the 0.03 µS wiggles are below the 0.05 µS threshold
    # Every SCR recovers to half amplitude (a search that stopped at the wiggle would give NaN).
    np.testing.assert_allclose(scrs["recovery_time_s"], HALF_RECOVERY_S, atol=0.35)
