"""The one tiny model the tests share: fast on a CPU, yet with every part of the real one.

`TINY_MODEL`: 1600 Hz audio, hop 16, EDA 4 Hz → 25 MFCC frames per EDA step; 2 s context;
16 levels. Tests that need another time base derive it from `TINY_MODEL` with `tiny_model`
and name the difference (`SPF1`, `SPF10`), so every tiny config is this one plus overrides.
`tests/notebooks/tiny.yaml` is the notebooks' counterpart (a YAML file, for nbmake's mock).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wavenet_lib.configs import ExperimentConfig

TINY_MODEL: dict[str, Any] = dict(
    context_size_in_seconds=2,
    audio_sample_rate=1600,
    eda_sample_rate=4,
    mfcc_window_size=32,
    mfcc_hop_size=16,
    num_mfccs=5,
    hidden_channels=8,
    condition_channels=4,
    quantization_levels=16,
    max_stack_receptive_field=64,
)

# One MFCC frame per EDA step (64 Hz audio, hop 16): the training tests' in-memory windows.
SPF1: dict[str, Any] = dict(audio_sample_rate=64, num_mfccs=4)

# Ten frames per EDA step (hop 40) and 64 levels: the data tests read real files at 1600 Hz.
SPF10: dict[str, Any] = dict(mfcc_window_size=80, mfcc_hop_size=40, num_mfccs=8, quantization_levels=64)


def tiny_model(*variants: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """`TINY_MODEL` updated with each variant in turn, then with `overrides` (a new dict)."""
    settings = dict(TINY_MODEL)
    for variant in variants:
        settings.update(variant)
    settings.update(overrides)
    return settings


def tiny_synthetic_experiment(
    root: Path,
    name: str,
    sessions: int,
    duration_s: float,
    seed: int = 0,
    val_fraction: float = 0.25,
    test_fraction: float = 0.5,
    **sections: dict[str, Any],
) -> ExperimentConfig:
    """`TINY_MODEL` on its own embedded dataset under `root`: `sessions` sessions of `duration_s`,
    one listener each, split by subject; `sections` (e.g. `sampling={...}`) are added as given."""
    return ExperimentConfig.model_validate(
        {
            "name": name,
            "model": TINY_MODEL,
            "data": {
                "data_dir": str(root / "data"),
                "cache_dir": str(root / "cache"),
                "synthetic": {
                    "n_recordings": sessions,
                    "n_subjects": sessions,
                    "duration_s": duration_s,
                    "seed": seed,
                },
                "target_steps": 4,
                "val_fraction": val_fraction,
                "test_fraction": test_fraction,
            },
            **sections,
        }
    )


def tiny_notebook_config_file(tmp_path: Path, n_recordings: int = 9) -> Path:
    """`tests/notebooks/tiny.yaml` with its data and cache under `tmp_path` and `n_recordings`
    synthetic sessions, written to `tmp_path / "tiny.yaml"`: the config a benchmark's CLI reads."""
    import yaml

    cfg = yaml.safe_load((Path(__file__).parent / "notebooks" / "tiny.yaml").read_text())
    cfg["data"]["data_dir"] = str(tmp_path / "data")
    cfg["data"]["cache_dir"] = str(tmp_path / "cache")
    cfg["data"]["synthetic"]["n_recordings"] = n_recordings
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
