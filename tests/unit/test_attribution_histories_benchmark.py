"""The attribution-histories benchmark runs end to end on a tiny trained synthetic run."""

from __future__ import annotations

import json

from benchmarks.attribution_histories import main


def test_attribution_histories_scores_every_history(tiny_synthetic_run, tmp_path):
    run = tiny_synthetic_run
    out = tmp_path / "histories.json"
    assert main([str(run), "--samples", "2", "--recordings", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n_recordings"] == 1 and result["samples"] == 2
    assert set(result["scores"]) == {"recorded", "generated_1", "generated_mean_2"}
    for by_window in result["scores"].values():
        assert set(by_window) == {"within_0.5s", "within_1s"}
        for score in by_window.values():
            assert 0.0 <= score["mass_fraction"] <= 1.0 and 0.0 < score["window_coverage"] < 1.0
            assert score["n_recordings"] == 1.0 and score["n_onsets"] >= 1.0
