"""The attribution-histories benchmark runs end to end on a tiny trained synthetic run."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from benchmarks.attribution_histories import main
from wavenet_lib.configs import load_config
from wavenet_lib.train.loop import train_experiment

TINY = Path(__file__).parents[1] / "notebooks" / "tiny.yaml"


def test_attribution_histories_scores_every_history(tmp_path):
    cfg = yaml.safe_load(TINY.read_text())
    cfg["data"]["data_dir"] = str(tmp_path / "data")
    cfg["data"]["cache_dir"] = str(tmp_path / "cache")
    cfg["train"].update({"max_steps": 2, "warmup_steps": 1, "val_every": 2, "checkpoint_every": 2})
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    train_experiment(load_config(path), run)
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
