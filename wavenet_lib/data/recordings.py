"""One manifest row → a `Recording`: EDA read, checked, cropped to the audio, resampled; audio featurized.

Audio and EDA rarely cover the same span: an E4 records before and after the song, a listener
stops a song early. A recording uses the span where both exist (after `offset_s`, and before
`play_duration_s` when the manifest gives one); what lies outside it is cropped and reported
as a `Crop`. Only an overlap shorter than the model needs, no overlap at all, or a stated
playback span longer than the audio is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wavenet_lib.configs import DataConfig, ExperimentConfig, WavenetConfig
from wavenet_lib.data.audio import audio_duration, decode_audio, duration_known
from wavenet_lib.data.eda import read_eda
from wavenet_lib.data.eda_cleaning import check_eda_limits, check_eda_values, clean_eda, resample_eda
from wavenet_lib.data.features import mfcc_divisor, mfcc_for_recording, mfcc_statistics, model_features
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


@dataclass(frozen=True)
class Crop:
    """What `prepare_recording` cut away to keep the overlap of audio and EDA (seconds).

    Attributes:
        eda_before_s, eda_after_s: EDA recorded before the audio started / after it ended.
        audio_before_s, audio_after_s: audio before the EDA started / after the EDA (or the
            playback) ended.
        played_s: the manifest's play_duration_s (None when the whole file was played).
    """

    eda_before_s: float = 0.0
    eda_after_s: float = 0.0
    audio_before_s: float = 0.0
    audio_after_s: float = 0.0
    played_s: float | None = None

    def describe(self, min_s: float = 0.0) -> str:
        """One phrase, e.g. `EDA 10.00 s before + 20.00 s after; audio 75.00 s after`; `none`.

        Parts shorter than `min_s` (e.g. the rounding to whole EDA steps) are left out.
        """
        parts = []
        for what, before, after in (
            ("EDA", self.eda_before_s, self.eda_after_s),
            ("audio", self.audio_before_s, self.audio_after_s),
        ):
            sides = ((before, "before"), (after, "after"))
            cut = [f"{v:.2f} s {side}" for v, side in sides if v >= min_s and v > 0]
            if cut:
                parts.append(f"{what} " + " + ".join(cut))
        text = "; ".join(parts) or "none"
        if self.played_s is not None:
            text += f" (played {self.played_s:.2f} s)"
        return text


@dataclass
class Recording:
    """One prepared recording: EDA in memory, MFCCs in the on-disk cache.

    Attributes:
        row: its manifest row.
        eda_us: float64 (out_channels, T) EDA in µS at the model's rate, aligned to the audio.
        mfcc_path: cached features, float32 (in_channels, T*spf, num_mfccs) `.npy`.
        mfcc_mean, mfcc_std: float32 (in_channels, num_mfccs) per-recording statistics (CMVN);
            `build_datasets` replaces the std by the shared scale under `data.mfcc_standardize:
            dataset`.
        audio_start_s: audio time of EDA step 0.
        crop: what was cut away to keep the overlap of audio and EDA.
        eda_sample_rate: the model's EDA rate (Hz), for `duration_s`.
    """

    row: ManifestRow
    eda_us: np.ndarray
    mfcc_path: Path
    mfcc_mean: np.ndarray
    mfcc_std: np.ndarray
    audio_start_s: float = 0.0
    crop: Crop = Crop()
    eda_sample_rate: float = 4.0

    @property
    def recording_id(self) -> str:
        return self.row.recording_id

    @property
    def subject_id(self) -> str:
        return self.row.subject_id

    @property
    def n_steps(self) -> int:
        return self.eda_us.shape[-1]

    @property
    def duration_s(self) -> float:
        """Seconds used (n_steps at the model's EDA rate)."""
        return self.n_steps / self.eda_sample_rate

    def mfcc(self) -> np.ndarray:
        """Read-only memory map of the features, (in_channels, T*spf, num_mfccs)."""
        return np.load(self.mfcc_path, mmap_mode="r")


def _read_eda_channels(row: ManifestRow, model: WavenetConfig, data: DataConfig) -> list:
    """Each EDA column as read (`EdaSignal`) and cleaned at the file's rate: [(signal, values)]."""
    columns: list[str | None] = list(row.eda_column.split("+")) if row.eda_column else [None]
    if len(columns) != model.out_channels:
        raise DataError(
            row.eda_path,
            f"model.out_channels = {model.out_channels} but the manifest gives {len(columns)} EDA "
            f"column(s) ({row.eda_column!r}); list several as 'a+b' in eda_column",
        )
    out = []
    for column in columns:
        signal = read_eda(row.eda_path, row.eda_format, row.eda_sample_rate, column)
        out.append((signal, clean_eda(signal, row.eda_sample_rate, data.max_nan_gap_s)))
    return out


def prepare_recording(
    row: ManifestRow, model: WavenetConfig, data: DataConfig, min_steps: int | None = None
) -> Recording:
    """Read, check, crop to the audio/EDA overlap and featurize one manifest row.

    Alignment: EDA sample 0 is at audio time `offset_s`. The recording keeps the overlap of
    the EDA, `[offset_s, offset_s + EDA duration)`, and of the audio that was played,
    `[0, min(audio duration, play_duration_s))`, rounded inwards to whole EDA steps at the
    model's rate; the rest is cropped (`Recording.crop`). The EDA values of the kept span must
    lie within `data.eda_min_us .. data.eda_max_us` without one-sample jumps above
    `data.max_eda_jump_us`. Features go to `data.cache_dir`.

    Raises:
        DataError: any problem with the files (see `wavenet_lib.data.eda`,
            `wavenet_lib.data.eda_cleaning`, `wavenet_lib.data.audio`), a play_duration_s longer
            than the audio by more than `data.duration_tolerance_s`, audio and EDA that do not
            overlap, an overlap of fewer than `min_steps` steps (default: receptive field + 1),
            or EDA values out of the limits (names the row).
    """
    channels = _read_eda_channels(row, model, data)
    file_rate = row.eda_sample_rate
    n_file = min(len(values) for _, values in channels)
    eda_dur = n_file / file_rate
    audio_dur = audio_duration(row.audio_path)
    played = audio_dur
    if row.play_duration_s is not None:
        if row.play_duration_s > audio_dur + data.duration_tolerance_s:
            raise DataError(
                row.audio_path,
                f"the playback of {row.recording_id} lasted {row.play_duration_s:.2f} s "
                f"(play_duration_s) but the audio is only {audio_dur:.2f} s long; allowed excess is "
                f"data.duration_tolerance_s = {data.duration_tolerance_s} s (wrong audio file?)",
            )
        played = min(audio_dur, row.play_duration_s)
    offset = row.offset_s
    start, end = max(0.0, offset), min(played, offset + eda_dur)
    if end <= start:
        raise DataError(
            row.eda_path,
            f"audio and EDA do not overlap: with offset_s = {offset:g} the EDA covers audio time "
            f"{offset:.2f} to {offset + eda_dur:.2f} s and the audio played 0 to {played:.2f} s "
            f"({row.audio_path.name})",
        )
    rate = model.eda_sample_rate
    skip = max(0, math.ceil((start - offset) * rate - 1e-9))
    audio_start = offset + skip / rate
    n_steps = max(0, int(math.floor((end - audio_start) * rate + 1e-9)))
    need = min_recording_steps(model) if min_steps is None else min_steps
    if n_steps < need:
        raise DataError(
            row.eda_path,
            f"recording has {n_steps} EDA steps ({n_steps / rate:.2f} s) where audio and EDA overlap; "
            f"at least {need} are needed (receptive field {model.receptive_field_eda_steps} steps + 1, "
            f"and one window of first_full_step + data.target_steps); EDA {eda_dur:.2f} s, audio "
            f"{played:.2f} s, offset_s = {offset:g}",
        )
    used_end = audio_start + n_steps / rate
    i0 = max(0, int(math.floor((audio_start - offset) * file_rate + 1e-9)))
    i1 = min(n_file, int(math.ceil((used_end - offset) * file_rate - 1e-9)))
    traces = []
    for signal, values in channels:
        used = values[i0:i1]
        check_eda_limits(used, signal, data.eda_min_us, data.eda_max_us, data.max_eda_jump_us, start=i0)
        check_eda_values(used, signal.path, data.min_eda_range_us)
        traces.append(resample_eda(values[:n_file], file_rate, rate))
    eda = np.stack([t[: min(len(t) for t in traces)] for t in traces])
    n_steps = min(n_steps, eda.shape[-1] - skip)
    used_end = audio_start + n_steps / rate
    crop = Crop(
        eda_before_s=skip / rate,
        eda_after_s=max(0.0, eda_dur - (skip + n_steps) / rate),
        audio_before_s=audio_start,
        audio_after_s=max(0.0, audio_dur - used_end),
        played_s=row.play_duration_s,
    )
    mfcc = mfcc_for_recording(row.audio_path, model, n_steps, audio_start, data.cache_dir)
    mean, std = mfcc_statistics(mfcc)
    mfcc_path = Path(mfcc.filename)  # type: ignore[attr-defined]  # a memory map of the cache file
    return Recording(row, eda[:, skip : skip + n_steps], mfcc_path, mean, std, audio_start, crop, rate)


@dataclass
class LoadedRecording:
    """One whole recording for evaluation or generation.

    Attributes:
        recording_id, subject_id: from the manifest.
        mfcc: float32 (in_channels, T*spf, features_per_frame): `model_features`, as the training windows.
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
        # A prepared recording from build_datasets already holds the shared scale.
        recording.mfcc_std = mfcc_divisor(cfg.data, recording.mfcc_std)
    normalizer = normalizer or MinMaxNormalizer.fit(recording.eda_us, margin=cfg.data.normalization_margin)
    mfcc = model_features(
        recording.mfcc(),
        recording.mfcc_mean,
        recording.mfcc_std,
        cfg.model,
        standardize=cfg.data.mfcc_standardize != "none",
    )
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
        float32 (in_channels, n_steps*spf, features_per_frame): `model_features`, standardized as
        `data.mfcc_standardize` says (the "dataset" scale comes from `data.mfcc_scale`).
    """
    shared = None  # the "dataset" scale, read (or refused) before any decoding
    if cfg.data.mfcc_standardize == "dataset":
        shared = mfcc_divisor(cfg.data, np.ones((cfg.model.in_channels, cfg.model.num_mfccs), np.float32))
    decoded = None
    if n_steps is None:
        if not duration_known(path):  # one decode gives the length and, on a cache miss, the samples
            decoded = decode_audio(path)
        n_steps = int(math.floor((audio_duration(path) - start_s) * cfg.model.eda_sample_rate + 1e-9))
    if n_steps < 1:
        raise DataError(path, "audio is shorter than one EDA step")
    raw = mfcc_for_recording(path, cfg.model, n_steps, start_s, cfg.data.cache_dir, decoded=decoded)
    mean, std = mfcc_statistics(raw)
    std = std if shared is None else shared
    mfcc = model_features(raw, mean, std, cfg.model, standardize=cfg.data.mfcc_standardize != "none")
    return torch.from_numpy(mfcc)
