"""Tiny fixtures for the data-layer tests: a small model config and file writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.tiny_configs import SPF10
from tests.tiny_configs import tiny_model as tiny_settings
from wavenet_lib.configs import DataConfig, ExperimentConfig, WavenetConfig

AUDIO_SR = 1600  # hop 40 at EDA 4 Hz → 10 frames per EDA step
EDA_SR = 4.0


def tiny_model(**overrides) -> WavenetConfig:
    """1600 Hz audio, 4 Hz EDA, spf 10, 2 s context; a receptive field of a few steps."""
    settings = tiny_settings(SPF10)
    settings.update(overrides)
    return WavenetConfig(**settings)


def tiny_experiment(tmp_path: Path, model: WavenetConfig | None = None, **data) -> ExperimentConfig:
    """Experiment on a tiny synthetic dataset written under tmp_path."""
    defaults = dict(
        data_dir=tmp_path / "synthetic",
        cache_dir=tmp_path / "cache",
        synthetic=dict(n_recordings=6, n_subjects=3, duration_s=30.0, seed=0),
        target_steps=8,
        val_fraction=0.34,
        test_fraction=0.34,
    )
    defaults.update(data)
    return ExperimentConfig(name="tiny", seed=0, model=model or tiny_model(), data=DataConfig(**defaults))


def write_wav(path: Path, audio: np.ndarray, sr: int = AUDIO_SR, **kw) -> Path:
    """Write (samples,) or (samples, channels) float audio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(audio, dtype=np.float32), sr, **kw)
    return path


def noise(seconds: float, sr: int = AUDIO_SR, seed: int = 0, channels: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (int(seconds * sr),) if channels is None else (int(seconds * sr), channels)
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)


def eda_trace(seconds: float, rate: float = EDA_SR, seed: int = 0) -> np.ndarray:
    """A plausible µS trace: 5 µS level, slow drift, a few SCR-like bumps."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    x = 5.0 + 0.3 * np.sin(2 * np.pi * t / 40.0)
    for onset in rng.uniform(0, seconds, 3):
        dt = np.clip(t - onset, 0, None)
        x += 0.5 * (np.exp(-dt / 3.0) - np.exp(-dt / 0.7)) * (t > onset)
    return x


def write_generic_eda(path: Path, values: np.ndarray, rate: float = EDA_SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(len(values)) / rate
    lines = ["time_s,eda_us"] + [f"{a:.4f},{b:.5f}" for a, b in zip(t, values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_manifest_csv(path: Path, rows: list[dict]) -> Path:
    import pandas as pd

    defaults = {"eda_format": "generic", "eda_sample_rate": EDA_SR, "offset_s": 0.0, "eda_column": "eda_us"}
    pd.DataFrame([defaults | r for r in rows]).to_csv(path, index=False)
    return path


def manifest_cfg(tmp_path: Path, rows: list[dict], **data) -> ExperimentConfig:
    """A tiny experiment over the manifest of `rows` (written to tmp_path/m.csv)."""
    path = write_manifest_csv(tmp_path / "m.csv", rows)
    return tiny_experiment(tmp_path, source="manifest", path=path, **data)


@pytest.fixture
def model() -> WavenetConfig:
    return tiny_model()


def pair(tmp_path: Path, name: str, seconds: float = 20.0, eda: np.ndarray | None = None, **row) -> dict:
    """Write a wav + generic EDA csv pair and return its manifest row (paths relative)."""
    write_wav(tmp_path / f"{name}.wav", noise(seconds, seed=sum(map(ord, name))))
    write_generic_eda(tmp_path / f"{name}.csv", eda_trace(seconds) if eda is None else eda)
    return {
        "recording_id": name,
        "subject_id": row.pop("subject_id", name),
        "audio_path": f"{name}.wav",
        "eda_path": f"{name}.csv",
    } | row
