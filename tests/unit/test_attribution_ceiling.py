"""The attribution-ceiling benchmark: credit lands on the right steps, scored as notebook 04 scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.attribution_ceiling import REFERENCES, credit_at, main, rule_credit
from tests.tiny_configs import tiny_notebook_config_file


def test_credit_lands_on_the_step_each_time_falls_in():
    credit = credit_at(np.array([10.1, 10.3, 11.9, 99.0]), np.array([1.0, 2.0, 4.0, 8.0]), 10.0, 4.0, 8)
    np.testing.assert_array_equal(credit, [1, 2, 0, 0, 0, 0, 0, 4 + 8])  # past the end: the last step


def test_rule_credit_keeps_the_refractory_period_and_weights_by_drive():
    times = np.arange(400) * 0.025
    values = np.zeros(400)
    values[[40, 120, 300]] = [10.0, 20.0, 7.0]  # peaks at 1 s, 3 s and 7.5 s
    with_gap = rule_credit(values, times, 6.0, 5.0, "first", 10.0, 0.0, 4.0, 40)
    without = rule_credit(values, times, 6.0, 0.0, "first", 10.0, 0.0, 4.0, 40)
    assert np.flatnonzero(with_gap).tolist() == [4, 30]  # 3 s lies in the first event's 5 s
    assert np.flatnonzero(without).tolist() == [4, 12, 30]
    assert with_gap[4] == pytest.approx(0.3 + 0.7 * (1 - np.exp(-0.4)))


def test_attribution_ceiling_scores_the_listener_itself_fully(tmp_path):
    path = tiny_notebook_config_file(tmp_path)
    out = tmp_path / "ceiling.json"
    assert main([str(path), "--subjects", "4", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n_recordings"] >= 1 and result["n_onsets"] >= 1
    assert set(result["mass_fraction"]) == set(REFERENCES)
    # the recording's own listener puts every bit of credit on its own events
    assert result["mass_fraction"]["listener_rule"] == pytest.approx(1.0)
    assert all(0.0 <= v <= 1.0 for v in result["mass_fraction"].values())
    assert 0.0 < result["window_coverage"] < 0.5
