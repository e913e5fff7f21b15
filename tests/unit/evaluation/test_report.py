"""The held-out report: {source: {metric: value}} pooled and per recording, its JSON and its tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from wavenet_lib.evaluate.event_locked import above_chance, chance_response, event_locked_response
from wavenet_lib.evaluate.report import SOURCES, EvaluationReport, RecordingAssessment, build_report

from .test_realism import random_eda

RATE = 4.0
PRIME = 8


def assessment(
    rid: str, seed: int, ce: tuple[float, float, float], n_steps: float, events
) -> RecordingAssessment:
    """A recording whose model / audio-blind / persistence cross-entropies are `ce`."""
    real = random_eda(seed)
    rng = np.random.default_rng(seed)
    generated = np.stack([random_eda(seed + 100 + k) for k in range(2)])
    blind = real + rng.normal(0, 0.05, (2, real.size))  # white noise: unrealistic on purpose
    events = np.asarray(events, dtype=float)
    tf = {
        name: {"cross_entropy_nats": value, "accuracy": 0.1 * (i + 1), "n_steps": n_steps}
        for i, (name, value) in enumerate(zip(("model", "audio_blind", "persistence"), ce, strict=True))
    }
    free = {
        s: {"rmse_us": 0.5 + seed, "pearson_r": 0.1, "dtw_us": 0.2, "dtw_factor": 1.0}
        for s in ("generated", "audio_blind")
    }
    sources = (("real", real), ("generated", generated), ("audio_blind", blind))
    locked = {name: event_locked_response(traces, RATE, events) for name, traces in sources}
    above = {name: above_chance(locked[name], chance_response(traces, RATE)) for name, traces in sources}
    return RecordingAssessment(
        rid, RATE, real, generated, blind, events, np.array([2.0, 2.5]), np.zeros(3), 40.0,
        tf, free, pd.DataFrame(), locked, PRIME, above,
    )  # fmt: skip


@pytest.fixture(scope="module")
def report() -> EvaluationReport:
    assessments = [
        assessment("a", 0, (2.0, 2.5, 3.0), n_steps=100, events=[20, 50, 80]),
        assessment("b", 1, (1.0, 1.2, 2.0), n_steps=300, events=[30, 60]),
        assessment("c", 2, (1.5, 1.4, 2.5), n_steps=100, events=[]),  # no event in this one
    ]
    return build_report(assessments, two_sample=True)


def test_sources_and_units_in_every_metric_name(report):
    assert list(report.pooled) == list(SOURCES)
    assert list(report.per_recording) == ["a", "b", "c"]
    units = (
        "_nats",
        "_us",
        "_s",
        "_per_min",
        "_db",
        "_auc",
        "accuracy",
        "pearson_r",
        "n_scr",
        "_n_events",
        "_fraction",
    )
    for rows in [report.pooled, *report.per_recording.values()]:
        assert list(rows) == list(SOURCES)
        for metrics in rows.values():
            for name in metrics:
                assert name.endswith(units), name
    assert set(report.pooled["persistence"]) == {"cross_entropy_nats", "accuracy"}


def test_cross_entropy_is_step_weighted_and_the_gap_is_per_recording(report):
    # pooled model CE: (2.0·100 + 1.0·300 + 1.5·100) / 500
    assert report.pooled["generated"]["cross_entropy_nats"] == pytest.approx(1.3)
    assert report.pooled["audio_blind"]["cross_entropy_nats"] == pytest.approx((250 + 360 + 140) / 500)
    assert report.pooled["generated"]["cross_entropy_gap_to_audio_blind_nats"] == pytest.approx(1.5 - 1.3)
    gaps = report.by_recording("generated", ["cross_entropy_gap_to_audio_blind_nats"]).iloc[:, 0]
    np.testing.assert_allclose(gaps.to_numpy(), [0.5, 0.2, -0.1])  # c: the audio does not help
    assert list(gaps.index) == ["a", "b", "c"]
    assert report.per_recording["b"]["persistence"]["cross_entropy_nats"] == 2.0
    assert report.pooled["generated"]["rmse_us"] == pytest.approx(1.5)  # mean over recordings


def test_event_locked_counts_per_source_and_pooled_over_recordings(report):
    for source in ("real", "generated", "audio_blind"):
        assert report.pooled[source]["event_locked_n_events"] == 5
        assert report.per_recording["a"][source]["event_locked_n_events"] == 3
        assert report.per_recording["c"][source]["event_locked_n_events"] == 0
        assert math.isnan(report.per_recording["c"][source]["event_locked_peak_latency_s"])
        assert math.isnan(report.per_recording["c"][source]["event_locked_above_chance_peak_amplitude_us"])
        # Above chance: each recording's events minus its own chance curve, pooled over events.
        a = assessment("a", 0, (2.0, 2.5, 3.0), n_steps=100, events=[20, 50, 80])
        b = assessment("b", 1, (1.0, 1.2, 2.0), n_steps=300, events=[30, 60])
        traces = {"real": "real_us", "generated": "generated_us", "audio_blind": "audio_blind_us"}[source]
        curves = [
            x.event_locked[source].per_event - chance_response(getattr(x, traces), RATE).mean for x in (a, b)
        ]
        mean = np.concatenate(curves).mean(axis=0)
        times = a.event_locked[source].times
        assert report.pooled[source]["event_locked_above_chance_peak_amplitude_us"] == pytest.approx(
            mean[times > 0].max()
        )
    assert report.pooled["real"]["true_scr_latency_s"] == pytest.approx(2.25)


def test_realism_is_measured_after_the_prime(report):
    real = report.per_recording["a"]["real"]
    assert set(real) >= {"scr_rate_per_min", "scr_half_recovery_s", "step_decrease_p999_us"}
    assert "two_sample_auc" not in real
    # White noise on the audio-blind traces: far from real; the generated draws are the real process.
    blind, generated = report.pooled["audio_blind"], report.pooled["generated"]
    assert blind["two_sample_auc"] > 0.9 and blind["diff_log_spectral_distance_db"] > 3
    assert generated["diff_log_spectral_distance_db"] < blind["diff_log_spectral_distance_db"]
    minutes = 3 * (600 - PRIME) / RATE / 60
    n_real = sum(report.per_recording[r]["real"]["n_scr"] for r in "abc")
    assert report.pooled["real"]["scr_rate_per_min"] == pytest.approx(n_real / minutes)


def test_json_round_trip_with_nan_as_null(report, tmp_path):
    path = report.to_json(tmp_path / "run" / "metrics.json")
    data = json.loads(path.read_text())
    assert set(data) == {"pooled", "per_recording"}
    assert data["per_recording"]["c"]["real"]["event_locked_peak_latency_s"] is None
    assert data["pooled"]["generated"]["cross_entropy_nats"] == pytest.approx(1.3)
    back = EvaluationReport.from_json(path)
    assert back.pooled.keys() == report.pooled.keys()
    pd.testing.assert_frame_equal(back.table(), report.table())
    assert math.isnan(back.per_recording["c"]["real"]["event_locked_peak_latency_s"])


def test_tables(report):
    table = report.table()
    assert list(table.index) == list(SOURCES)
    assert table.loc["generated", "cross_entropy_nats"] == pytest.approx(1.3)
    assert math.isnan(table.loc["persistence", "scr_rate_per_min"])
    picked = report.table(metrics=["scr_rate_per_min", "two_sample_auc"])
    assert list(picked.columns) == ["scr_rate_per_min", "two_sample_auc"]
    assert list(picked.index) == ["real", "generated", "audio_blind"]  # persistence has neither
    assert report.table("b").loc["persistence", "cross_entropy_nats"] == 2.0
    with pytest.raises(KeyError, match="'zzz'"):
        report.table("zzz")


def test_build_report_errors():
    with pytest.raises(ValueError, match="no assessed recordings"):
        build_report([])
    a = assessment("a", 0, (1, 1, 1), 10, [20])
    b = assessment("b", 1, (1, 1, 1), 10, [20])
    b.eda_sample_rate = 50.0
    with pytest.raises(ValueError, match="different EDA rates"):
        build_report([a, b], two_sample=False)


def test_exposure_bias_rows_are_pooled_by_measured_steps():
    def directions(fall: float, n: float) -> dict[str, float]:
        return {
            "predicted_fall": fall,
            "predicted_rise": 0.2,
            "observed_fall": fall / 2,
            "observed_rise": 0.1,
            "n_steps": n,
        }

    parts = [assessment("a", 0, (2.0, 2.5, 3.0), 100, [20]), assessment("b", 1, (1.0, 1.2, 2.0), 100, [30])]
    parts[0].directions = {"real": directions(0.4, 100), "generated": directions(0.2, 100)}
    parts[1].directions = {"real": directions(0.8, 300), "generated": directions(0.6, 300)}
    report = build_report(parts, two_sample=False)
    assert report.pooled["real"]["predicted_step_fall_fraction"] == pytest.approx(
        (0.4 * 100 + 0.8 * 300) / 400
    )
    assert report.pooled["generated"]["step_fall_fraction"] == pytest.approx((0.1 * 100 + 0.3 * 300) / 400)
    assert report.per_recording["a"]["generated"]["predicted_step_rise_fraction"] == pytest.approx(0.2)
    # Without the measurement (a model with several EDA signals) the rows leave it out.
    parts[1].directions = {}
    assert "step_fall_fraction" not in build_report(parts, two_sample=False).pooled["real"]


def test_share_of_real_is_the_ratio_of_the_pooled_peaks_with_an_interval(report):
    for source in ("generated", "audio_blind"):
        for prefix in ("event_locked", "event_locked_above_chance"):
            pooled, real = report.pooled[source], report.pooled["real"]
            share = pooled[f"{prefix}_of_real_fraction"]
            assert share == pytest.approx(
                pooled[f"{prefix}_peak_amplitude_us"] / real[f"{prefix}_peak_amplitude_us"]
            )
            low, high = (
                pooled[f"{prefix}_of_real_ci95_low_fraction"],
                pooled[f"{prefix}_of_real_ci95_high_fraction"],
            )
            assert low <= share <= high  # two recordings with events: an interval
            # One recording: the fraction, but no interval over recordings.
            alone = report.per_recording["a"][source]
            assert math.isnan(alone[f"{prefix}_of_real_ci95_low_fraction"])
