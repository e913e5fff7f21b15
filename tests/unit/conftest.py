"""Fixtures shared by the CLI, run-safety and stimulus tests."""

from __future__ import annotations

import pytest

from tests.unit.test_cli import NORMALIZER, SPF2, _Windows
from wavenet_lib.configs import ExperimentConfig
from wavenet_lib.train.loop import train


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
