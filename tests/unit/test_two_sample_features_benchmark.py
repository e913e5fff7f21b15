"""The two-sample features benchmark runs end to end on a tiny trained synthetic run."""

from __future__ import annotations

import json
import math

from benchmarks.two_sample_features import main
from wavenet_lib.evaluate.two_sample_diagnosis import FEATURE_GROUPS


def test_two_sample_features_reports_groups_and_spread(tiny_synthetic_run, tmp_path):
    out = tmp_path / "features.json"
    assert main([str(tiny_synthetic_run), "--samples", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n_recordings"] == 2 and result["samples"] == 2
    assert list(result["feature_groups"]) == ["all", *FEATURE_GROUPS]
    assert result["sampling"]["temperature"] == 1.0
    # Two held-out recordings of 60 s: every feature's spread is measured on real and generated.
    row = result["features"]["log_std_diff"]
    assert row["group"] == "scale" and row["within_sd_real"] >= 0.0 and row["between_sd_other"] >= 0.0
    assert result["median_within_ratio"] > 0.0 and result["median_between_ratio"] > 0.0
    # The AUC at the output's resolution: three AUCs, each a number in [0, 1] or NaN (2 recordings).
    resolution = result["output_resolution"]
    assert set(resolution) == {"other_vs_real", "other_vs_real_on_grid", "real_on_grid_vs_real"}
    assert all(math.isnan(v) or 0.0 <= v <= 1.0 for v in resolution.values())
