"""The simulated listener: causal features with known answers, SCR shape, habituation, subjects."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from wavenet_lib.configs import SyntheticDataConfig
from wavenet_lib.data.listener import (
    RULES,
    TAU_DECAY_S,
    TAU_RISE_S,
    Subject,
    draw_subject,
    event_drive,
    feature_events,
    listener_feature,
    scr_shape,
    simulate_listener,
)

SR = 4000
EDA_SR = 4.0
NOISE = np.random.default_rng(0).standard_normal(200 * SR)


def noise(seconds: float, rms: float, start: float = 0.0) -> np.ndarray:
    return rms * NOISE[int(start * SR) : int((start + seconds) * SR)]


def tone(seconds: float, rms: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 6))
    return rms * x / np.sqrt(np.mean(x**2))


SUBJECT = Subject(
    index=0, gain_us=1.0, threshold_factor=1.0, latency_mean_s=1.75, tau_rise_s=0.6, tau_decay_s=3.0,
    habituation=0.3, spontaneous_per_min=0.0, scl_us=6.0, noise_us=0.003,
)  # fmt: skip


def listen(audio: np.ndarray, subject: Subject = SUBJECT, seed: int = 0, **cfg):
    settings = {"evoked_probability": 1.0, "spontaneous_per_min": (0.0, 0.0)} | cfg
    return simulate_listener(
        audio, SR, EDA_SR, subject, SyntheticDataConfig(**settings), np.random.default_rng(seed)
    )


# --- features ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(RULES))
def test_features_are_causal(name):
    audio = noise(20.0, 0.05)
    changed = audio.copy()
    changed[12 * SR :] = tone(8.0, 0.3)
    a, times = listener_feature(name, audio, SR)
    b, _ = listener_feature(name, changed, SR)
    past = times <= 12.0
    np.testing.assert_array_equal(a[past], b[past])
    assert np.abs(a[~past] - b[~past]).max() > 1.0


def test_loudness_rise_known_answer_for_a_20_db_step():
    """EMA_0.2s - EMA_3s of a 20 dB step peaks 0.58 s later at 20 (e^-0.19 - e^-2.9) = 15.4 dB."""
    up = np.concatenate([noise(10.0, 0.01), noise(10.0, 0.1, start=10.0)])
    values, times = listener_feature("loudness_rise", up, SR)
    when, strength = feature_events(values, times, RULES["loudness_rise"].threshold, 5.0)
    assert len(when) == 1 and 10.4 <= when[0] <= 10.9
    assert strength[0] == pytest.approx(15.4, abs=1.0)
    down, _ = listener_feature("loudness_rise", up[::-1].copy(), SR)
    assert down[times > 2.0].max() < 2.0  # a drop in level is no event


def test_spectral_novelty_hears_timbre_not_level():
    level_step = np.concatenate([noise(10.0, 0.01), noise(10.0, 0.1, start=10.0)])
    timbre_change = np.concatenate([noise(10.0, 0.05), tone(10.0, 0.05)])
    novelty_threshold = RULES["spectral_novelty"].threshold
    loud_threshold = RULES["loudness_rise"].threshold
    for audio, novel, loud in ((level_step, False, True), (timbre_change, True, False)):
        n, times = listener_feature("spectral_novelty", audio, SR)
        r, _ = listener_feature("loudness_rise", audio, SR)
        assert (n[times > 2.0].max() > novelty_threshold) == novel
        assert (r[times > 2.0].max() > loud_threshold) == loud


def test_strongest_event_selection_keeps_the_higher_of_close_peaks():
    times = np.arange(0, 30, 0.025)
    values = np.zeros_like(times)
    for at, height in ((5.0, 8.0), (7.0, 9.0), (15.0, 4.0), (20.0, 7.0)):
        values += height * np.exp(-(((times - at) / 0.2) ** 2))
    when, strength = feature_events(values, times, threshold=6.0, min_gap_s=5.0, selection="strongest")
    np.testing.assert_allclose(when, [7.0, 20.0])  # 5 s loses to the higher 7 s; 15 s is below threshold
    np.testing.assert_allclose(strength, [9.0, 7.0], atol=1e-6)


def test_first_event_selection_is_causal_with_a_refractory_period():
    times = np.arange(0, 30, 0.025)
    values = np.zeros_like(times)
    for at, height in ((5.0, 8.0), (5.6, 10.0), (7.0, 12.0), (15.0, 4.0), (20.0, 7.0)):
        values += height * np.exp(-(((times - at) / 0.1) ** 2))
    when, strength = feature_events(values, times, threshold=6.0, min_gap_s=5.0, selection="first")
    # 5.0 s fires; its strength is the maximum over the next second (5.6 s: 10); 7.0 s falls in
    # the refractory period however high it is; 15 s is below threshold
    np.testing.assert_allclose(when, [5.0, 20.0])
    np.testing.assert_allclose(strength, [10.0, 7.0], atol=1e-3)
    # causal: what comes later than an event's integration second cannot move or drop it
    for cut in (6.7, 12.0, 21.5):
        later = values.copy()
        later[times > cut] = 30.0 * np.random.default_rng(0).random(int((times > cut).sum()))
        w2, s2 = feature_events(later, times, threshold=6.0, min_gap_s=5.0, selection="first")
        keep = when + 1.0 <= cut
        np.testing.assert_allclose(w2[: keep.sum()], when[keep])
        np.testing.assert_allclose(s2[: keep.sum()], strength[keep], atol=1e-3)
    with pytest.raises(ValueError, match="selection"):
        feature_events(values, times, 6.0, 5.0, selection="latest")


# --- physiology -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tau_rise,tau_decay", [(TAU_RISE_S[0], TAU_DECAY_S[0]), (TAU_RISE_S[1], TAU_DECAY_S[1])]
)
def test_scr_shape_rise_and_half_recovery_are_physiological(tau_rise, tau_decay):
    t = np.arange(-2.0, 30.0, 0.001)
    s = scr_shape(t, tau_rise, tau_decay, smooth_s=0.2)
    peak = int(np.argmax(s))
    assert s[peak] == pytest.approx(1.0, abs=1e-6) and (s[t <= 0] == 0).all()
    onset = int(np.argmax(s > 0.01))
    half = peak + int(np.argmax(s[peak:] < 0.5))
    assert 1.0 <= t[peak] - t[onset] <= 2.1
    assert 2.0 <= t[half] - t[peak] <= 4.0
    assert np.diff(s[:onset]).max() < 1e-3  # rounded onset: no jump
    plain = scr_shape(t, tau_rise, tau_decay)  # bi-exponential without the burst
    assert plain.max() == pytest.approx(1.0, abs=1e-6) and t[np.argmax(plain)] < t[peak]


def test_no_event_no_evoked_scr():
    quiet = noise(60.0, 0.0005)  # the noise floor alone
    eda, events, spontaneous = listen(quiet)
    assert events == [] and spontaneous == []
    assert np.abs(np.diff(eda)).max() < 0.03  # tonic drift and sensor noise only
    loud = quiet.copy()
    loud[30 * SR : 34 * SR] += noise(4.0, 0.1)
    eda, events, _ = listen(loud)
    assert len(events) == 1 and events[0]["evoked"] and 30.0 < events[0]["onset_s"] < 31.0
    onset = events[0]["scr_onset_s"]
    lo, hi = RULES["loudness_rise"].latency_s
    assert lo <= events[0]["latency_s"] <= hi
    step = int(round(onset * EDA_SR))
    rise = eda[step + 4 : step + 10].max() - eda[step]
    assert rise == pytest.approx(events[0]["amplitude_us"], rel=0.35)


def repeated_bursts(n: int, every_s: float = 10.0, rest_s: float = 0.0) -> np.ndarray:
    cycle = np.concatenate([noise(every_s - 2.0, 0.0005, start=2.0), noise(2.0, 0.1)])  # quiet, then a burst
    rest = noise(rest_s, 0.0005, start=20.0)
    return np.concatenate([np.tile(cycle, n), rest, cycle])


def test_habituation_shrinks_repeated_responses_and_recovers_with_rest():
    eda, events, _ = listen(repeated_bursts(8, rest_s=180.0))
    factors = np.array([e["habituation"] for e in events])
    amps = np.array([e["amplitude_us"] for e in events])
    assert len(events) == 9 and factors[0] == 1.0
    assert (np.diff(factors[:8]) < 0).all() and factors[7] < 0.5
    assert amps[:3].mean() > 1.5 * amps[5:8].mean()
    assert factors[8] > 0.9  # three minutes of rest: the response is back
    # habituation is the only reason identical bursts differ: amplitude / factor is the same drive
    drive = amps / factors
    assert drive.max() / drive.min() < 2.0  # only the lognormal(0, 0.15) jitter is left
    unhabituated = listen(repeated_bursts(8, rest_s=180.0), replace(SUBJECT, habituation=0.0))[1]
    assert all(e["habituation"] == 1.0 for e in unhabituated)


def test_event_drive_known_answers_and_the_amplitudes_it_scales():
    assert event_drive(6.0, 6.0, 10.0) == pytest.approx(0.3)  # at the threshold
    assert event_drive(16.0, 6.0, 10.0) == pytest.approx(0.3 + 0.7 * (1 - np.exp(-1)))  # one scale above
    assert event_drive(1e3, 6.0, 10.0) == pytest.approx(1.0)  # saturated
    np.testing.assert_allclose(
        event_drive(np.array([6.0, 16.0]), 6.0, 10.0), [0.3, 0.3 + 0.7 * (1 - np.exp(-1))]
    )
    # every evoked amplitude is gain x drive x habituation x a lognormal(0, 0.15) jitter
    _, events, _ = listen(repeated_bursts(6))
    rule = RULES["loudness_rise"]
    jitter = [
        e["amplitude_us"]
        / (
            SUBJECT.gain_us
            * event_drive(e["strength"], e["threshold"], rule.strength_scale)
            * e["habituation"]
        )
        for e in events
    ]
    assert len(jitter) == 7 and np.all(np.abs(np.log(jitter)) < 4 * 0.15)


def test_subjects_differ_and_their_parameters_change_the_response():
    cfg = SyntheticDataConfig()
    subjects = [draw_subject(np.random.default_rng(i), i, cfg) for i in range(12)]
    for field in ("gain_us", "threshold_factor", "latency_mean_s", "tau_decay_s", "habituation", "scl_us"):
        assert np.std([getattr(s, field) for s in subjects]) > 0
    assert draw_subject(np.random.default_rng(3), 3, cfg) == subjects[3]
    lo, hi = RULES["loudness_rise"].latency_s
    assert all(lo < s.latency_mean_s < hi for s in subjects)

    audio = repeated_bursts(5)
    base = listen(audio)[1]
    double_gain = listen(audio, replace(SUBJECT, gain_us=2.0))[1]
    np.testing.assert_allclose(
        [e["amplitude_us"] for e in double_gain], [2 * e["amplitude_us"] for e in base]
    )
    slow = listen(audio, replace(SUBJECT, latency_mean_s=2.3))[1]
    assert np.mean([e["latency_s"] for e in slow]) > np.mean([e["latency_s"] for e in base]) + 0.3
    deaf = listen(audio, replace(SUBJECT, threshold_factor=10.0))[1]  # 60 dB: no burst rises that far
    assert len(base) == 6 and deaf == []


def test_spontaneous_scrs_follow_the_subject_rate():
    quiet = noise(180.0, 0.0005)
    counts = [
        len(listen(quiet, replace(SUBJECT, spontaneous_per_min=3.0), seed=s, spontaneous_per_min=(1, 3))[2])
        for s in range(5)
    ]
    assert 6.0 <= np.mean(counts) <= 12.0  # 3 per minute over 3 minutes
