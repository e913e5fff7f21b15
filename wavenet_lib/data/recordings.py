"""One manifest row → a `Recording`: EDA read, resampled, normalized and quantized; audio checked."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wavenet_lib.configs import DataConfig, ExperimentConfig, WavenetConfig
from wavenet_lib.data.audio import audio_duration
from wavenet_lib.data.eda import prepare_eda, read_eda
from wavenet_lib.data.features import mfcc_for_recording, mfcc_statistics, standardize_mfcc
from wavenet_lib.data.manifest import ManifestRow
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.errors import DataError


def window_steps(model: WavenetConfig, target_steps: int) -> int:
    """W = model.first_full_step + target_steps, the EDA steps of one training window."""
    return model.first_full_step + target_steps


def min_recording_steps(model: WavenetConfig, data: DataConfig | None = None) -> int:
    """Fewest EDA steps a recording needs: the receptive field plus one step, and one window."""
    need = model.receptive_field_eda_steps + 1
    return max(need, window_steps(model, data.target_steps)) if data is not None else need


@dataclass
class Recording:
    """One prepared recording: EDA in memory, MFCCs in the on-disk cache.

    Attributes:
        row: its manifest row.
        eda_us: float64 (out_channels, T) EDA in µS at the model's rate, aligned to the audio.
        mfcc_path: cached features, float32 (in_channels, T*spf, num_mfccs) `.npy`.
        mfcc_mean, mfcc_std: float32 (in_channels, num_mfccs) per-recording statistics (CMVN).
        audio_start_s: audio time of EDA step 0.
    """

    row: ManifestRow
    eda_us: np.ndarray
    mfcc_path: Path
    mfcc_mean: np.ndarray
    mfcc_std: np.ndarray
    audio_start_s: float = 0.0

    @property
    def recording_id(self) -> str:
        return self.row.recording_id

    @property
    def subject_id(self) -> str:
        return self.row.subject_id

    @property
    def n_steps(self) -> int:
        return self.eda_us.shape[-1]

    def mfcc(self) -> np.ndarray:
        """Read-only memory map of the features, (in_channels, T*spf, num_mfccs)."""
        return np.load(self.mfcc_path, mmap_mode="r")


def _read_eda_channels(row: ManifestRow, model: WavenetConfig, data: DataConfig) -> np.ndarray:
    columns: list[str | None] = row.eda_column.split("+") if row.eda_column else [None]
    if len(columns) != model.out_channels:
        raise DataError(
            row.eda_path,
            f"model.out_channels = {model.out_channels} but the manifest gives {len(columns)} EDA "
            f"column(s) ({row.eda_column!r}); list several as 'a+b' in eda_column",
        )
    traces = []
    for column in columns:
        signal = read_eda(row.eda_path, row.eda_format, row.eda_sample_rate, column)
        traces.append(
            prepare_eda(
                signal, row.eda_sample_rate, model.eda_sample_rate, data.max_nan_gap_s, data.min_eda_range_us
            )
        )
    n = min(len(t) for t in traces)
    return np.stack([t[:n] for t in traces])


def prepare_recording(
    row: ManifestRow, model: WavenetConfig, data: DataConfig, min_steps: int | None = None
) -> Recording:
    """Read, check, align and featurize one manifest row (features go to `data.cache_dir`).

    Alignment: EDA sample 0 is at audio time `offset_s`. EDA before audio time 0 is dropped;
    audio before the first kept EDA step is dropped. The remaining audio and EDA durations must
    agree within `data.duration_tolerance_s`; the shorter one sets T.

    Raises:
        DataError: any problem with the files (see `wavenet_lib.data.eda`, `wavenet_lib.data.audio`),
            durations that disagree, or fewer than `min_steps` steps (default: receptive field + 1).
    """
    eda = _read_eda_channels(row, model, data)  # (C_out, n) at the model rate
    rate = model.eda_sample_rate
    skip = max(0, math.ceil(-row.offset_s * rate - 1e-9))
    audio_start = skip / rate + row.offset_s
    audio_len = audio_duration(row.audio_path) - audio_start
    eda_len = (eda.shape[-1] - skip) / rate
    if abs(audio_len - eda_len) > data.duration_tolerance_s:
        raise DataError(
            row.eda_path,
            f"durations disagree: audio {row.audio_path.name} gives {audio_len:.2f} s and the EDA "
            f"{eda_len:.2f} s (after offset_s = {row.offset_s}); allowed difference is "
            f"data.duration_tolerance_s = {data.duration_tolerance_s} s",
        )
    n_steps = min(eda.shape[-1] - skip, int(math.floor(audio_len * rate + 1e-9)))
    need = min_recording_steps(model) if min_steps is None else min_steps
    if n_steps < need:
        raise DataError(
            row.eda_path,
            f"recording has {n_steps} EDA steps ({n_steps / rate:.2f} s); at least {need} are needed "
            f"(receptive field {model.receptive_field_eda_steps} steps + 1, and one window of "
            f"first_full_step + data.target_steps)",
        )
    mfcc = mfcc_for_recording(row.audio_path, model, n_steps, audio_start, data.cache_dir)
    mean, std = mfcc_statistics(mfcc)
    return Recording(row, eda[:, skip : skip + n_steps], Path(mfcc.filename), mean, std, audio_start)


@dataclass
class LoadedRecording:
    """One whole recording for evaluation or generation.

    Attributes:
        recording_id, subject_id: from the manifest.
        mfcc: float32 (in_channels, T*spf, num_mfccs), standardized like the training windows.
        eda: float32 (out_channels, T) EDA in model units (normalized, not quantized).
        eda_us: float64 (out_channels, T) EDA in µS.
        normalizer: maps µS ↔ units for this recording.
    """

    recording_id: str
    subject_id: str
    mfcc: torch.Tensor
    eda: torch.Tensor
    eda_us: np.ndarray
    normalizer: MinMaxNormalizer

    @property
    def n_steps(self) -> int:
        return self.eda.shape[-1]


def load_recording(
    recording: Recording | ManifestRow, cfg: ExperimentConfig, normalizer: MinMaxNormalizer | None = None
) -> LoadedRecording:
    """Whole-recording features and EDA (a manifest row is prepared first).

    Args:
        recording: a prepared `Recording` (e.g. from `DataBundle.recordings`) or a manifest row.
        cfg: the experiment config.
        normalizer: default: fitted on this recording with `data.normalization_margin`.
    """
    if isinstance(recording, ManifestRow):
        recording = prepare_recording(recording, cfg.model, cfg.data)
    normalizer = normalizer or MinMaxNormalizer.fit(recording.eda_us, margin=cfg.data.normalization_margin)
    mfcc = np.array(recording.mfcc(), dtype=np.float32)
    if cfg.data.mfcc_standardize:
        mfcc = standardize_mfcc(mfcc, recording.mfcc_mean, recording.mfcc_std)
    units = np.asarray(normalizer.normalize(recording.eda_us), dtype=np.float32)
    return LoadedRecording(
        recording.recording_id,
        recording.subject_id,
        torch.from_numpy(mfcc),
        torch.from_numpy(units),
        recording.eda_us,
        normalizer,
    )


def audio_features(
    path: str | Path, cfg: ExperimentConfig, n_steps: int | None = None, start_s: float = 0.0
) -> torch.Tensor:
    """Model-ready MFCCs of any audio file (e.g. new audio to generate EDA for).

    Args:
        path: audio file.
        cfg: experiment config (features cached in `data.cache_dir`).
        n_steps: EDA steps to cover (default: the whole audio after `start_s`).
        start_s: audio time of step 0.

    Returns:
        float32 (in_channels, n_steps*spf, num_mfccs), standardized when `data.mfcc_standardize`.
    """
    if n_steps is None:
        n_steps = int(math.floor((audio_duration(path) - start_s) * cfg.model.eda_sample_rate + 1e-9))
    if n_steps < 1:
        raise DataError(path, "audio is shorter than one EDA step")
    mfcc = np.array(mfcc_for_recording(path, cfg.model, n_steps, start_s, cfg.data.cache_dir), np.float32)
    if cfg.data.mfcc_standardize:
        mfcc = standardize_mfcc(mfcc, *mfcc_statistics(mfcc))
    return torch.from_numpy(mfcc)
