"""Recordings → training windows: preparation, splits, the window `Dataset`, and `build_datasets`.

A window of `W = model.first_full_step + data.target_steps` EDA steps is one item::

    "mfcc"         float32 (in_channels, W*spf, num_mfccs)
    "eda_prev"     float32 (out_channels, W): eda_prev[:, t] = dequantize(quantize(eda_norm[start+t-1])),
                   eda_prev[:, 0] = that of the step before the window (0.0 at step 0)
    "target"       int64 (out_channels, W): quantize(eda_norm[start+t])
    "recording_id" str
    "start_step"   int

The loss is taken on the last `target_steps` steps (the first `first_full_step` lack a full
receptive field). MFCCs stay on disk (memory-mapped feature cache); only the EDA, a few
numbers per step, is held in memory.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from wavenet_lib.audio import audio_duration, mfcc_for_recording, standardize_mfcc
from wavenet_lib.configs import DataConfig, ExperimentConfig, WavenetConfig
from wavenet_lib.eda_io import prepare_eda, read_eda
from wavenet_lib.errors import DataError, SkippedRecordingsWarning
from wavenet_lib.manifest import ManifestRow, read_manifest
from wavenet_lib.normalization import MinMaxNormalizer
from wavenet_lib.quantization import dequantize, quantize

__all__ = [
    "Recording",
    "LoadedRecording",
    "WindowDataset",
    "DataBundle",
    "window_steps",
    "min_recording_steps",
    "prepare_recording",
    "split_rows",
    "manifest_for",
    "build_datasets",
    "make_dataloader",
    "load_recording",
    "audio_features",
]

Split = Literal["train", "val", "test"]


def window_steps(model: WavenetConfig, data: DataConfig) -> int:
    """W = model.first_full_step + data.target_steps, the EDA steps of one window."""
    return model.first_full_step + data.target_steps


def min_recording_steps(model: WavenetConfig, data: DataConfig | None = None) -> int:
    """Fewest EDA steps a recording needs: the receptive field plus one step, and one window."""
    need = model.receptive_field_eda_steps + 1
    return max(need, window_steps(model, data)) if data is not None else need


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
        DataError: any problem with the files (see `wavenet_lib.eda_io`, `wavenet_lib.audio`),
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
    mean = np.asarray(mfcc.mean(axis=1, dtype=np.float64), dtype=np.float32)
    std = np.asarray(mfcc.std(axis=1, dtype=np.float64), dtype=np.float32)
    std = np.where(std > 1e-4, std, 1.0).astype(np.float32)
    return Recording(row, eda[:, skip : skip + n_steps], Path(mfcc.filename), mean, std, audio_start)


class WindowDataset(Dataset):
    """Windows of W EDA steps from prepared recordings (item layout: module docstring).

    Args:
        recordings: prepared recordings.
        model: model config (spf, quantization, first_full_step).
        target_steps: steps per window trained on; W = model.first_full_step + target_steps.
        normalizers: recording_id → normalizer (µS → model units).
        mode: "random" crops (training) or "strided" windows (evaluation).
        length: items per epoch in random mode (default: about one pass, total steps / target_steps).
        seed: random mode draws item i of epoch e from a torch Generator seeded with (seed, e, i),
            so crops are reproducible and independent of worker count.
        stride: strided mode step between window starts (default target_steps: the scored last
            target_steps of consecutive windows tile the recording without overlap).
        standardize: apply per-recording cepstral mean and variance normalization.
    """

    def __init__(
        self,
        recordings: list[Recording],
        model: WavenetConfig,
        target_steps: int,
        normalizers: dict[str, MinMaxNormalizer],
        mode: Literal["random", "strided"] = "random",
        length: int | None = None,
        seed: int = 0,
        stride: int | None = None,
        standardize: bool = True,
    ) -> None:
        self.recordings = list(recordings)
        self.model = model
        self.window = model.first_full_step + target_steps
        self.target_steps = target_steps
        self.mode = mode
        self.seed = seed
        self.epoch = 0
        self.standardize = standardize
        self.spf = model.spectral_frames_per_eda_step
        levels = model.quantization_levels
        self._target, self._prev = [], []
        for rec in self.recordings:
            if rec.n_steps < self.window:
                raise DataError(
                    rec.row.eda_path,
                    f"recording has {rec.n_steps} steps, shorter than one window of {self.window} "
                    f"(first_full_step {model.first_full_step} + target_steps {target_steps})",
                )
            units = normalizers[rec.recording_id].normalize(rec.eda_us)
            q = quantize(np.asarray(units, dtype=np.float64), levels)
            self._target.append(q)
            self._prev.append(dequantize(q, levels))
        starts = np.array([r.n_steps - self.window + 1 for r in self.recordings], dtype=np.int64)
        self._cum_starts = np.cumsum(starts)
        if mode == "random":
            default = max(1, int(sum(r.n_steps for r in self.recordings)) // target_steps)
            self.length = int(length or default) if self.recordings else 0
            self._index: list[tuple[int, int]] = []
        elif mode == "strided":
            step = stride or target_steps
            self._index = [
                (i, s)
                for i, r in enumerate(self.recordings)
                for s in range(0, r.n_steps - self.window + 1, step)
            ]
            self.length = len(self._index)
        else:
            raise ValueError(f"mode must be 'random' or 'strided', got {mode!r}")
        self._mmaps: dict[int, np.ndarray] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_mmaps"] = {}  # memory maps are reopened in each worker, never pickled as arrays
        return state

    def set_epoch(self, epoch: int) -> None:
        """Draw different random crops for each epoch (random mode)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def _locate(self, index: int) -> tuple[int, int]:
        if self.mode == "strided":
            return self._index[index]
        g = torch.Generator().manual_seed((self.seed * 0x9E3779B1 + self.epoch * 0x85EBCA77 + index) % 2**63)
        r = int(torch.randint(int(self._cum_starts[-1]), (1,), generator=g))
        rec = int(np.searchsorted(self._cum_starts, r, side="right"))
        return rec, r - (int(self._cum_starts[rec - 1]) if rec else 0)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        i, start = self._locate(index)
        rec, W, spf = self.recordings[i], self.window, self.spf
        if i not in self._mmaps:
            self._mmaps[i] = rec.mfcc()
        mfcc = np.array(self._mmaps[i][:, start * spf : (start + W) * spf, :], dtype=np.float32)
        if self.standardize:
            mfcc = standardize_mfcc(mfcc, rec.mfcc_mean, rec.mfcc_std)
        prev = self._prev[i]
        eda_prev = np.empty((prev.shape[0], W), dtype=np.float32)
        eda_prev[:, 1:] = prev[:, start : start + W - 1]
        eda_prev[:, 0] = prev[:, start - 1] if start > 0 else 0.0
        return {
            "mfcc": torch.from_numpy(mfcc),
            "eda_prev": torch.from_numpy(eda_prev),
            "target": torch.from_numpy(np.ascontiguousarray(self._target[i][:, start : start + W])),
            "recording_id": rec.recording_id,
            "start_step": int(start),
        }


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
        std = mfcc.std(axis=1)
        mfcc = standardize_mfcc(mfcc, mfcc.mean(axis=1), np.where(std > 1e-4, std, 1.0))
    return torch.from_numpy(mfcc)


def split_rows(
    rows: list[ManifestRow],
    split_by: Literal["subject", "recording"],
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, list[str]]:
    """Assign whole subjects (or recordings) to train/val/test; returns recording ids per split.

    Groups are shuffled with `seed`; val and test get round(fraction * groups) groups each (at
    least one when the fraction is > 0 and there are 3+ groups), train keeps at least one.
    """
    keys = [r.subject_id if split_by == "subject" else r.recording_id for r in rows]
    groups = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(groups))
    n = len(groups)
    counts = []
    for frac in (test_fraction, val_fraction):
        k = int(round(frac * n))
        counts.append(1 if frac > 0 and k == 0 and n >= 3 else k)
    while counts[0] + counts[1] > n - 1 and (counts[0] or counts[1]):
        counts[int(counts[1] >= counts[0])] -= 1
    n_test, n_val = counts
    assign = {}
    for rank, g in enumerate(order):
        assign[groups[g]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for row, key in zip(rows, keys, strict=True):
        out[assign[key]].append(row.recording_id)
    return out


def manifest_for(cfg: ExperimentConfig) -> Path:
    """The manifest for `cfg.data.source`, generating or building it when needed.

    synthetic: generated into `data.data_dir` (reused when its settings match); manifest: the
    given file; pmemo2019 / hku956 / e4: built from the dataset folder into
    `data.cache_dir/manifests/`.
    """
    from wavenet_lib import dataset_builders
    from wavenet_lib.synthetic import make_synthetic_dataset

    data = cfg.data
    if data.source == "synthetic":
        s = data.synthetic
        return make_synthetic_dataset(
            data.data_dir,
            n_recordings=s.n_recordings,
            duration_s=s.duration_s,
            seed=s.seed,
            audio_sample_rate=cfg.model.audio_sample_rate,
            eda_sample_rate=cfg.model.eda_sample_rate,
            latency_s=s.latency_s,
            n_subjects=s.n_subjects,
            evoked_probability=s.evoked_probability,
            min_event_gap_s=s.min_event_gap_s,
            spontaneous_per_min=s.spontaneous_per_min,
        )
    if data.source == "manifest":
        return Path(data.path)
    builder = {
        "pmemo2019": dataset_builders.build_pmemo2019_manifest,
        "hku956": dataset_builders.build_hku956_manifest,
        "e4": dataset_builders.build_e4_manifest,
    }[data.source]
    root = Path(data.path).resolve()
    tag = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    return builder(root, Path(data.cache_dir) / "manifests" / f"{data.source}-{tag}.csv")


@dataclass
class DataBundle:
    """Everything `build_datasets` makes.

    Attributes:
        train, val, test: window datasets (train: random crops; val/test: strided windows).
        normalizers: recording_id → normalizer, for every prepared recording.
        normalizer: the shared normalizer when `data.normalization == "per_dataset"`, else None.
        splits: recording ids per split ("train", "val", "test"), prepared recordings only.
        recordings: recording_id → prepared `Recording`.
        manifest_path: the manifest used.
        skipped: recording_id → reason, for recordings skipped (`on_bad_recording="skip"`).
    """

    train: WindowDataset
    val: WindowDataset
    test: WindowDataset
    normalizers: dict[str, MinMaxNormalizer]
    normalizer: MinMaxNormalizer | None
    splits: dict[str, list[str]]
    recordings: dict[str, Recording]
    manifest_path: Path
    skipped: dict[str, str] = field(default_factory=dict)

    def load(self, recording_id: str, cfg: ExperimentConfig) -> LoadedRecording:
        """The whole recording `recording_id`, normalized like the datasets."""
        return load_recording(self.recordings[recording_id], cfg, self.normalizers[recording_id])


def build_datasets(cfg: ExperimentConfig) -> DataBundle:
    """Manifest → prepared recordings → subject/recording splits → window datasets.

    For `source="synthetic"` the dataset is first written to `data.data_dir` (or reused), then
    read through the same manifest path as real data.

    Raises:
        DataError: a bad recording when `data.on_bad_recording == "error"`, or no usable
            training recording. With "skip", bad recordings are left out with one
            `SkippedRecordingsWarning` listing each file and why.
    """
    model, data = cfg.model, cfg.data
    manifest_path = manifest_for(cfg)
    rows = read_manifest(manifest_path)
    splits = split_rows(rows, data.split_by, data.val_fraction, data.test_fraction, cfg.seed)
    need = min_recording_steps(model, data)
    recordings: dict[str, Recording] = {}
    skipped: dict[str, str] = {}
    for row in _progress(rows):
        try:
            recordings[row.recording_id] = prepare_recording(row, model, data, need)
        except DataError as exc:
            if data.on_bad_recording == "error":
                raise
            skipped[row.recording_id] = str(exc)
    if skipped:
        listing = "\n".join(f"  {rid}: {why}" for rid, why in skipped.items())
        warnings.warn(
            f"skipped {len(skipped)} of {len(rows)} recordings (data.on_bad_recording='skip'):\n{listing}",
            SkippedRecordingsWarning,
            stacklevel=2,
        )
    splits = {k: [r for r in v if r in recordings] for k, v in splits.items()}
    if not splits["train"]:
        raise DataError(manifest_path, "no usable recording left in the training split")
    if data.normalization == "per_dataset":
        shared = MinMaxNormalizer.fit(
            *(recordings[r].eda_us for r in splits["train"]), margin=data.normalization_margin
        )
        normalizers = dict.fromkeys(recordings, shared)
    else:
        shared = None
        normalizers = {
            rid: MinMaxNormalizer.fit(rec.eda_us, margin=data.normalization_margin)
            for rid, rec in recordings.items()
        }

    def make(split: str, mode: str) -> WindowDataset:
        return WindowDataset(
            [recordings[r] for r in splits[split]],
            model,
            data.target_steps,
            normalizers,
            mode=mode,
            length=data.epoch_size if mode == "random" else None,
            seed=cfg.seed,
            standardize=data.mfcc_standardize,
        )

    return DataBundle(
        make("train", "random"),
        make("val", "strided"),
        make("test", "strided"),
        normalizers,
        shared,
        splits,
        recordings,
        Path(manifest_path),
        skipped,
    )


def _progress(rows: list[ManifestRow]):
    if len(rows) < 20:
        return rows
    from tqdm.auto import tqdm

    return tqdm(rows, desc="preparing recordings", unit="rec")


def make_dataloader(
    ds: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    sampler: Sampler | None = None,
    seed: int | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader over window items (collated: tensors stacked, ids as a list of str).

    Args:
        ds: a `WindowDataset` (or any map-style dataset).
        batch_size: windows per batch.
        shuffle: shuffle item order (ignored when `sampler` is given).
        num_workers: loader processes; workers reopen the feature memory maps themselves.
        sampler: e.g. a DistributedSampler.
        seed: seeds the shuffling generator for a reproducible order.
        drop_last: drop a final short batch.
    """
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        drop_last=drop_last,
        generator=generator,
    )
