"""Attribution for an audio file: which moments of this sound drive the predicted EDA?

    result = attribute_file("runs/quickstart/best.pt", "song.mp3", samples=8)       # no EDA recorded
    result = attribute_file("runs/quickstart/best.pt", "song.mp3", eda="EDA.csv")   # a listener's EDA
    write_attribution_csv(result, "attribution.csv")   # time_s, attribution_us per EDA step

The file-level door to `wavenet_lib.attribution.attribute_audio` (what `wavenet-eda attribute`
runs): it computes the file's MFCCs as training did and picks the EDA history to hold fixed.

- **Without recorded EDA** (a candidate stimulus): `samples` traces are generated from the audio
  with the checkpoint's sampling settings (`generate_from_audio`), and the attribution is the
  mean over them as histories.
- **With a listener's EDA** recorded during the sound (an Empatica `EDA.csv`, or a CSV with a
  time column or a value column and `eda_rate`, any rate, resampled to the model's; its first
  sample at the audio's start): that trace is the history. With per-recording normalization
  (the default) it is mapped to model units by its own range, as training mapped every
  recording; the clip is cut to the shorter of audio and EDA.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wavenet_lib.atomic_write import atomic_write
from wavenet_lib.attribution import BASELINES, AudioAttribution, attribute_audio
from wavenet_lib.configs import ExperimentConfig
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.errors import DataError

__all__ = ["FileAttribution", "attribute_file", "write_attribution_csv"]


@dataclass
class FileAttribution:
    """The attribution of one audio file and the EDA it was computed on.

    Attributes:
        audio_path: the audio file.
        attribution: per frame and per EDA step (µS when a normalization is known).
        history_us: (S, T) the EDA held fixed, µS: the recorded trace (S = 1) or the generated ones.
        recorded: whether the history is a recorded trace (else generated from the audio).
        config: the experiment config of the model.
    """

    audio_path: Path
    attribution: AudioAttribution
    history_us: np.ndarray
    recorded: bool
    config: ExperimentConfig

    def top_moments(self, k: int = 5) -> list[tuple[float, float]]:
        """The k EDA steps with the largest attribution: (start time s, value), largest first."""
        a = self.attribution.step_attribution
        order = np.argsort(-a, kind="stable")[: max(0, int(k))]
        return [(float(self.attribution.step_times_s[i]), float(a[i])) for i in order]


def attribute_file(
    model_or_checkpoint: nn.Module | str | Path,
    audio_path: str | Path,
    *,
    eda: np.ndarray | str | Path | None = None,
    eda_rate: float | None = None,
    samples: int = 8,
    seed: int = 0,
    n_steps: int = 32,
    baseline: str = "recent_past",
    config: ExperimentConfig | None = None,
    normalizer: MinMaxNormalizer | None = None,
    device: str | torch.device = "cpu",
) -> FileAttribution:
    """Integrated Gradients of the predicted EDA over the moments of one audio file.

    Args:
        model_or_checkpoint: a checkpoint path, or a Wavenet with `config` (and `normalizer`).
        audio_path: wav/flac/ogg/mp3.
        eda: the listener's EDA during the sound: a file (E4 `EDA.csv` or CSV) or a (T,) µS array
            at the model's EDA rate, starting with the audio. None: `samples` generated traces.
        eda_rate: the EDA file's rate when it has no time column.
        samples: generated histories when `eda` is None (>= 1).
        seed: their sampling seed.
        n_steps: Integrated Gradients points.
        baseline: the Integrated Gradients baseline (`wavenet_lib.attribution.BASELINES`).
        config, normalizer: with a model instead of a checkpoint.
        device: where to run the model.

    Raises:
        FileNotFoundError, CheckpointError: a bad checkpoint path.
        DataError: unreadable or too short audio, an unreadable EDA file, NaN or non-positive µS
            in the EDA.
        ValueError: samples < 1, or a model without `config`.
    """
    from wavenet_lib.data.prime import check_prime, read_prime
    from wavenet_lib.generation import finite_audio_features, generate_from_audio
    from wavenet_lib.models.wavenet import Wavenet
    from wavenet_lib.train.checkpoints import model_for_inference

    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a whole number >= 1, got {samples!r}")
    if baseline not in BASELINES:  # before the generation, which takes a while
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    model, config, normalizer = model_for_inference(model_or_checkpoint, config, normalizer, device)
    if not isinstance(model, Wavenet):
        raise ValueError(f"attribution needs a Wavenet, got {type(model).__name__}")
    audio_path = Path(audio_path)
    rate = float(config.model.eda_sample_rate)
    if eda is None:
        generated = generate_from_audio(
            model, audio_path, samples=samples, seed=seed, config=config, normalizer=normalizer,
            device=device, progress=False,
        )  # fmt: skip
        assert generated.features is not None
        attribution = attribute_audio(
            model, generated.features, torch.as_tensor(generated.eda_units), normalizer=generated.normalizer,
            n_steps=n_steps, baseline=baseline,
        )  # fmt: skip
        return FileAttribution(audio_path, attribution, generated.values[:, 0], False, config)

    if isinstance(eda, (str, Path)):
        eda_us = read_prime(eda, rate, sample_rate=eda_rate, label="EDA")
    else:
        eda_us = np.asarray(eda, dtype=np.float64).reshape(-1)
        check_prime(eda_us, rate, label="EDA")  # the checks a file's values get
    mfcc = finite_audio_features(audio_path, config, device)
    spf = model.spf
    steps = min(mfcc.shape[1] // spf, eda_us.size)
    if steps < 1:
        raise DataError(audio_path, "shorter than one EDA step")
    mfcc, eda_us = mfcc[:, : steps * spf], eda_us[:steps]
    if config.data.normalization == "per_recording" or normalizer is None:
        normalizer = MinMaxNormalizer.fit(eda_us, margin=config.data.normalization_margin)
    units = np.asarray(normalizer.normalize(eda_us), dtype=np.float32)
    attribution = attribute_audio(
        model, mfcc, units, normalizer=normalizer, n_steps=n_steps, baseline=baseline
    )
    return FileAttribution(audio_path, attribution, eda_us[None], True, config)


def write_attribution_csv(result: FileAttribution, path: str | Path) -> Path:
    """One row per EDA step: time_s (its start, s from the audio's start) and the attribution
    (`attribution_us`, or `attribution_units` without a normalization); atomic write."""
    import pandas as pd

    att = result.attribution
    column = "attribution_us" if att.unit == "us" else "attribution_units"
    table = pd.DataFrame({"time_s": att.step_times_s, column: att.step_attribution})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w", newline="") as fh:
        table.to_csv(fh, index=False, float_format="%.6g")
    return path
