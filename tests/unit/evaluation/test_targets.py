"""The release targets table: each bound checked on its own, and a missing metric never passes."""

from __future__ import annotations

import copy
import json

import pytest

from wavenet_lib.evaluate.stimulus_validation import add_metrics_section
from wavenet_lib.evaluate.targets import (
    SCR_STATISTICS,
    check_stimulus_targets,
    check_targets,
    targets_section,
)


def passing_report() -> dict[str, dict[str, float | None]]:
    """A pooled report that meets every target, with some margin."""
    real = {
        "event_locked_peak_latency_s": 3.75,
        "event_locked_peak_amplitude_us": 0.20,
        "event_locked_above_chance_peak_amplitude_us": 0.22,
        "scr_rate_per_min": 4.0,
        "scr_amplitude_us": 0.20,
        "scr_rise_time_s": 1.7,
        "scr_half_recovery_s": 3.1,
        "step_decrease_p999_us": 0.050,
    }
    generated = dict(real)
    generated |= {
        "event_locked_peak_latency_s": 4.0,
        "event_locked_peak_amplitude_us": 0.15,  # 75 % of real
        "event_locked_above_chance_peak_amplitude_us": 0.16,
        "scr_rate_per_min": 3.4,  # -15 %
        "step_decrease_p999_us": 0.070,  # 1.4x
        "cross_entropy_nats": 1.3,
        "two_sample_auc": 0.70,
    }
    blind = {
        "event_locked_peak_amplitude_us": 0.01,
        "event_locked_above_chance_peak_amplitude_us": -0.002,
        "cross_entropy_nats": 1.5,
    }
    return {
        "real": real,
        "generated": generated,
        "audio_blind": blind,
        "persistence": {"cross_entropy_nats": 2.0},
    }


def test_a_report_meeting_every_target_passes_all_twelve_rows():
    table = check_targets(passing_report())
    assert len(table) == 12
    assert table["passed"].all(), table[~table["passed"]]
    assert table.loc["event-locked peak amplitude, generated / real", "value"] == pytest.approx(0.75)
    assert table.loc["99.9th-percentile one-step decrease, generated / real", "value"] == pytest.approx(1.4)


@pytest.mark.parametrize(
    ("source", "metric", "value", "failing"),
    [
        ("generated", "event_locked_peak_latency_s", 4.3, "peak latency"),
        ("generated", "event_locked_peak_amplitude_us", 0.11, "peak amplitude, generated / real"),
        ("audio_blind", "event_locked_peak_amplitude_us", 0.08, "amplitude, audio-blind"),
        ("audio_blind", "cross_entropy_nats", 1.2, "generated − audio-blind"),
        ("persistence", "cross_entropy_nats", 1.25, "generated − persistence"),
        ("generated", "scr_amplitude_us", 0.26, "scr_amplitude_us"),
        ("generated", "scr_half_recovery_s", 2.2, "scr_half_recovery_s"),
        ("generated", "step_decrease_p999_us", 0.076, "one-step decrease"),
        ("generated", "two_sample_auc", 0.76, "ROC AUC"),
    ],
)
def test_each_bound_fails_alone(source, metric, value, failing):
    report = passing_report()
    report[source][metric] = value
    failed = list(check_targets(report).query("not passed").index)
    assert len(failed) == 1 and failing in failed[0], failed


def test_scr_tolerance_is_symmetric_and_inclusive():
    for metric in SCR_STATISTICS:
        for factor, ok in ((1.25, True), (0.75, True), (1.26, False), (0.74, False)):
            report = passing_report()
            report["generated"][metric] = report["real"][metric] * factor
            row = check_targets(report).loc[f"{metric}, generated / real − 1"]
            assert bool(row["passed"]) is ok, (metric, factor)


def test_missing_or_null_metrics_never_pass():
    report = passing_report()
    del report["generated"]["two_sample_auc"]
    report["real"]["event_locked_peak_amplitude_us"] = None  # a JSON null
    table = check_targets(report)
    assert not table.loc["two-sample classifier ROC AUC", "passed"]
    assert not table.loc["event-locked peak amplitude, generated / real", "passed"]
    assert table["passed"].sum() == 10
    assert check_targets({})["passed"].sum() == 0


def test_reads_a_metrics_json_pooled_section(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"pooled": passing_report()}))
    pooled = json.loads(path.read_text())["pooled"]
    before = copy.deepcopy(pooled)
    assert check_targets(pooled)["passed"].all()
    assert pooled == before  # read, not changed


def test_stimulus_targets_on_a_section():
    section = {
        "attribution_onset_mass_fraction": 0.65,
        "attribution_onset_window_coverage": 0.065,
        "screening_spearman_rho": 0.61,
    }
    assert check_stimulus_targets(section)["passed"].all()
    table = check_stimulus_targets(
        section | {"attribution_onset_mass_fraction": 0.19, "screening_spearman_rho": None}
    )
    assert list(table.index[table["passed"]]) == ["share of the time those windows cover"]
    assert not check_stimulus_targets(section | {"attribution_onset_window_coverage": 0.2})["passed"].all()


def test_targets_section_round_trips_through_metrics_json(tmp_path):
    report = passing_report()
    report["generated"]["two_sample_auc"] = 0.8
    del report["generated"]["scr_rate_per_min"]
    section = targets_section(check_targets(report))
    assert (section["all_passed"], section["n_passed"], section["n_targets"]) == (False, 10, 12)
    auc = section["targets"]["two-sample classifier ROC AUC"]
    assert auc == {"value": 0.8, "bound": "<= 0.75", "passed": False}
    path = add_metrics_section(tmp_path / "metrics.json", "targets", section)
    stored = json.loads(path.read_text())["targets"]
    assert stored["targets"]["scr_rate_per_min, generated / real − 1"]["value"] is None  # NaN as null
    assert stored["targets"]["two-sample classifier ROC AUC"] == auc
    assert targets_section(check_targets(passing_report()))["all_passed"] is True
