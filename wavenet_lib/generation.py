"""Generate EDA for an audio file with a trained checkpoint, in µS, and write it as CSV.

    result = generate_from_audio("runs/quickstart/best.pt", "song.wav", samples=3, seed=0)
    write_eda_csv(result, "song_eda.csv")            # time_s, eda_us_s0, eda_us_s1, eda_us_s2
    write_e4_csv(result, "EDA.csv")                  # Empatica E4 layout

The model works in normalized units on [-1, 1]; `eda_to_microsiemens` maps them back with the
normalization stored in the checkpoint (`MinMaxNormalizer.to_dict()`). With per-recording
normalization, the stored one is the typical training recording's range (median low and high),
so generated µS are on the scale of a typical training recording.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wavenet_lib.atomic_write import atomic_write
from wavenet_lib.configs import ExperimentConfig

__all__ = [
    "GeneratedEDA",
    "eda_to_microsiemens",
    "generate_from_audio",
    "column_names",
    "write_eda_csv",
    "write_e4_csv",
]


@dataclass
class GeneratedEDA:
    """Generated EDA for one audio file.

    Attributes:
        eda_units: (samples, out_channels, T) in normalized model units.
        eda_us: (samples, out_channels, T) in µS, or None when no normalization was stored.
        sample_rate: EDA steps per second.
        times_s: (T,) start time of each step in seconds (step t covers [t, t+1) / sample_rate).
        seed: the sampling seed (None for greedy decoding).
    """

    eda_units: np.ndarray
    eda_us: np.ndarray | None
    sample_rate: float
    times_s: np.ndarray
    seed: int | None

    @property
    def values(self) -> np.ndarray:
        """µS when available, else normalized units: (samples, out_channels, T)."""
        return self.eda_us if self.eda_us is not None else self.eda_units

    @property
    def unit(self) -> str:
        return "us" if self.eda_us is not None else "units"


def eda_to_microsiemens(
    eda_units: np.ndarray | torch.Tensor, normalizer_dict: Mapping[str, Any] | None
) -> np.ndarray | torch.Tensor:
    """Map EDA in normalized model units back to µS with the normalization stored in a checkpoint.

    Args:
        eda_units: any shape, e.g. the (B, out_channels, T) output of `Wavenet.generate`.
        normalizer_dict: `MinMaxNormalizer.to_dict()`, e.g. the third value of `load_model`.

    Raises:
        ValueError: no normalization (None) or one of an unknown kind.
    """
    from wavenet_lib.data.normalization import MinMaxNormalizer

    if normalizer_dict is None:
        raise ValueError("no EDA normalization stored with this model; cannot convert units to µS")
    return MinMaxNormalizer.from_dict(dict(normalizer_dict)).denormalize(eda_units)


def generate_from_audio(
    model_or_checkpoint: nn.Module | str | Path,
    audio_path: str | Path,
    samples: int = 1,
    seed: int | None = 0,
    temperature: float | None = None,
    greedy: bool = False,
    *,
    top_p: float | None = None,
    config: ExperimentConfig | None = None,
    normalizer: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    start_s: float = 0.0,
    n_steps: int | None = None,
) -> GeneratedEDA:
    """Sample `samples` EDA traces for the audio file, one step at a time.

    Args:
        model_or_checkpoint: a checkpoint path (model, config and normalization come from it) or
            a Wavenet (then pass `config`, and `normalizer` for µS).
        audio_path: wav/flac/ogg/mp3; MFCCs are computed and standardized as for training.
        samples: independent traces to draw (one batch).
        seed: seeds the sampling generator (reproducible draws).
        temperature: softmax temperature (> 0); None → the config's `sampling.temperature`.
        greedy: take the most likely level each step (then all samples are equal).
        top_p: nucleus sampling in (0, 1]; None → the config's `sampling.top_p`.
        config: the experiment config when a model is passed.
        normalizer: the EDA normalization dict when a model is passed.
        device: where to run the model.
        progress: tqdm progress bar over steps.
        start_s: audio time of the first EDA step.
        n_steps: steps to generate (default: the whole audio).

    Raises:
        FileNotFoundError, CheckpointError: a bad checkpoint path.
        DataError: the audio is missing, unreadable, or shorter than one EDA step.
        ValueError: samples < 1, temperature <= 0, top_p outside (0, 1].
    """
    from wavenet_lib.data.recordings import audio_features
    from wavenet_lib.train.checkpoints import load_model, unwrap_model

    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not greedy and temperature is not None and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if isinstance(model_or_checkpoint, (str, Path)):
        model, config, stored = load_model(model_or_checkpoint, map_location=device)
        normalizer = normalizer if normalizer is not None else stored
    else:
        if config is None:
            raise ValueError("pass `config` (the ExperimentConfig) together with a model")
        model = unwrap_model(model_or_checkpoint).to(device)
    temperature = config.sampling.temperature if temperature is None else temperature
    top_p = config.sampling.top_p if top_p is None else top_p
    mfcc = audio_features(audio_path, config, n_steps=n_steps, start_s=start_s).to(device)
    batch = mfcc.unsqueeze(0).repeat(samples, 1, 1, 1)
    generator = None
    if seed is not None and not greedy:
        generator = torch.Generator(device=batch.device).manual_seed(int(seed))
    eda = model.generate(
        batch, temperature=temperature, greedy=greedy, generator=generator, progress=progress, top_p=top_p
    )
    units = eda.float().cpu().numpy()
    eda_us = (
        None if normalizer is None else np.asarray(eda_to_microsiemens(units.astype(np.float64), normalizer))
    )
    rate = float(config.model.eda_sample_rate)
    return GeneratedEDA(
        eda_units=units,
        eda_us=eda_us,
        sample_rate=rate,
        times_s=np.arange(units.shape[-1]) / rate,
        seed=None if greedy else seed,
    )


def column_names(samples: int, channels: int, unit: str = "us") -> list[str]:
    """Value columns: eda_us; eda_us_s{n} per sample; eda_us_c{c} per channel; both: eda_us_s{n}_c{c}."""
    base = f"eda_{unit}"
    names = []
    for n in range(samples):
        for c in range(channels):
            name = base
            if samples > 1:
                name += f"_s{n}"
            if channels > 1:
                name += f"_c{c}"
            names.append(name)
    return names


def _flat(result: GeneratedEDA) -> np.ndarray:
    values = result.values  # (N, C, T) → (T, N*C), sample-major like column_names
    return values.reshape(-1, values.shape[-1]).T


def write_eda_csv(result: GeneratedEDA, path: str | Path) -> Path:
    """CSV with a `time_s` column and one value column per sample (and EDA channel)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n, c, _ = result.values.shape
    with atomic_write(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["time_s", *column_names(n, c, result.unit)])
        for t, row in zip(result.times_s, _flat(result), strict=True):
            writer.writerow([f"{t:.6f}", *(f"{v:.6f}" for v in row)])
    return path


def write_e4_csv(result: GeneratedEDA, path: str | Path, start_time: float = 0.0) -> Path:
    """Empatica E4 `EDA.csv`: row 1 start time (unix s), row 2 sample rate (Hz), then values.

    One column per sample (and EDA channel), as E4 writes multi-column signals: the start time
    and rate are repeated in every column. No header, no time column.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = _flat(result)
    cols = flat.shape[1]
    with atomic_write(path, "w", newline="") as fh:
        fh.write(", ".join([f"{start_time:.6f}"] * cols) + "\n")
        fh.write(", ".join([f"{result.sample_rate:.6f}"] * cols) + "\n")
        for row in flat:
            fh.write(", ".join(f"{v:.6f}" for v in row) + "\n")
    return path
