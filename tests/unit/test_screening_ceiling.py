"""The screening-ceiling benchmark runs end to end on a tiny synthetic dataset."""

from __future__ import annotations

import json

from benchmarks.screening_ceiling import main
from tests.tiny_configs import tiny_notebook_config_file


def test_screening_ceiling_writes_every_number(tmp_path):
    path = tiny_notebook_config_file(tmp_path)
    out = tmp_path / "ceiling.json"
    assert main([str(path), "--samples", "1", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n_recordings"] >= 3 and result["listener"] == "loudness_rise"
    assert set(result["perfect_generator_rho"]) == {"1", "2"}
    for by_statistic in [*result["perfect_generator_rho"].values(), result["recorded_listener_rho"]]:
        assert set(by_statistic) == {"scr_per_min", "response_us_per_min"}
    assert -1.0 <= result["audio_oracle_rho"] <= 1.0
    assert result["audio_oracle_threshold"] == 6.0  # the rule's default, the config sets none
