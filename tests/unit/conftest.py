"""Fixtures shared by the CLI, run-safety, stimulus and benchmark tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.test_cli import NORMALIZER, SPF2, _Windows
from wavenet_lib.configs import ExperimentConfig, load_config
from wavenet_lib.train.loop import train, train_experiment

TINY = Path(__file__).parents[1] / "notebooks" / "tiny.yaml"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny trained checkpoint (3 steps, spf 2, 4 target steps) with a stored normalization."""
    root = tmp_path_factory.mktemp("gen")
    cfg = ExperimentConfig.model_validate(
        {
            "name": "gen",
            "model": SPF2,
            "data": {"target_steps": 4, "cache_dir": str(root / "cache")},
            "train": {"batch_size": 2, "max_steps": 3, "warmup_steps": 1, "val_every": 3, "device": "cpu"},
        }
    )
    train(cfg, _Windows(cfg, 4), None, root / "run", normalizer=NORMALIZER, progress=False)
    return root / "run" / "last.pt"


@pytest.fixture(scope="session")
def tiny_synthetic_run(tmp_path_factory) -> Path:
    """A run folder (config.yaml, best.pt) of the notebooks' tiny config trained for 2 steps on
    its own synthetic dataset (6 sessions of 60 s; the test split holds 2): for the benchmarks
    that read a trained run. Read it, do not write into it."""
    root = tmp_path_factory.mktemp("tiny_synthetic")
    cfg = yaml.safe_load(TINY.read_text())
    cfg["data"]["data_dir"] = str(root / "data")
    cfg["data"]["cache_dir"] = str(root / "cache")
    cfg["train"].update({"max_steps": 2, "warmup_steps": 1, "val_every": 2, "checkpoint_every": 2})
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    train_experiment(load_config(path), root / "run", progress=False)
    return root / "run"
