"""An experiment's data: manifest, subject/recording splits, prepared recordings, window datasets."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from wavenet_lib.configs import ExperimentConfig
from wavenet_lib.data.features import mfcc_divisor
from wavenet_lib.data.manifest import ManifestRow, read_manifest
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.data.recordings import (
    LoadedRecording,
    Recording,
    load_recording,
    min_recording_steps,
    prepare_recording,
)
from wavenet_lib.data.windows import WindowDataset
from wavenet_lib.errors import DataError, SkippedRecordingsWarning

Split = Literal["train", "val", "test"]


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
    from wavenet_lib.data import manifest_builders as dataset_builders
    from wavenet_lib.data.synthetic import make_synthetic_dataset

    data = cfg.data
    if data.source == "synthetic":
        return make_synthetic_dataset(
            data.data_dir, data.synthetic, cfg.model.audio_sample_rate, cfg.model.eda_sample_rate
        )
    if data.path is None:  # the config validator requires a path for every real source
        raise DataError(Path("."), f"data.path is required for data.source: {data.source}")
    if data.source == "manifest":
        return Path(data.path)
    builders: dict[str, Callable[..., Path]] = {
        "pmemo2019": dataset_builders.build_pmemo2019_manifest,
        "hku956": dataset_builders.build_hku956_manifest,
        "e4": dataset_builders.build_e4_manifest,
    }
    builder = builders[data.source]
    root = Path(data.path).resolve()
    tag = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    out = Path(data.cache_dir) / "manifests" / f"{data.source}-{tag}.csv"
    return builder(root, out, on_bad_recording=data.on_bad_recording, warn=False)


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
        skipped: recording_id → reason, for recordings skipped (`on_bad_recording="skip"`),
            including what the dataset's manifest builder left out (songs without audio, ...).
        mfcc_scale: float32 (in_channels, num_mfccs), the MFCC scale every recording is divided
            by under `data.mfcc_standardize: dataset` (`shared_mfcc_scale`); None otherwise.
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
    mfcc_scale: np.ndarray | None = None

    def feature_config(self, cfg: ExperimentConfig) -> ExperimentConfig:
        """`cfg` with the MFCC scale this data used (`data.mfcc_scale`) written in, so that
        features of new audio (generation, screening) are scaled as the training data was, and a
        checkpoint of `cfg` carries the scale. Unchanged unless `data.mfcc_standardize` is
        "dataset"."""
        if self.mfcc_scale is None or cfg.data.mfcc_standardize != "dataset":
            return cfg
        scale = tuple(tuple(float(v) for v in row) for row in self.mfcc_scale)
        return cfg.model_copy(update={"data": cfg.data.model_copy(update={"mfcc_scale": scale})})

    def load(self, recording_id: str, cfg: ExperimentConfig) -> LoadedRecording:
        """The whole recording `recording_id`, normalized like the datasets."""
        return load_recording(self.recordings[recording_id], cfg, self.normalizers[recording_id])

    def summary(self) -> pd.DataFrame:
        """The prepared data, one row per recording used and per recording left out.

        Columns: recording_id, subject_id, split, status ("used" / "left out"), duration_s (the
        span used), crop (what was cut to keep the audio/EDA overlap, `Crop.describe`), reason
        (why it was left out).
        """
        split_of = {rid: split for split, ids in self.splits.items() for rid in ids}
        rows = []
        for rid, rec in self.recordings.items():
            rows.append(
                {
                    "recording_id": rid,
                    "subject_id": rec.subject_id,
                    "split": split_of.get(rid, ""),
                    "status": "used",
                    "duration_s": round(rec.duration_s, 3),
                    "crop": rec.crop.describe(min_s=1.0 / rec.eda_sample_rate),
                    "reason": "",
                }
            )
        for rid, why in self.skipped.items():
            rows.append(
                {
                    "recording_id": rid,
                    "subject_id": "",
                    "split": "",
                    "status": "left out",
                    "duration_s": float("nan"),
                    "crop": "",
                    "reason": why,
                }
            )
        columns = ["recording_id", "subject_id", "split", "status", "duration_s", "crop", "reason"]
        return pd.DataFrame(rows, columns=columns)


def build_datasets(cfg: ExperimentConfig) -> DataBundle:
    """Manifest → prepared recordings → subject/recording splits → window datasets.

    For `source="synthetic"` the dataset is first written to `data.data_dir` (or reused), then
    read through the same manifest path as real data.

    Raises:
        DataError: a bad recording when `data.on_bad_recording == "error"`, or no usable
            training recording. With "skip", bad recordings (and what the dataset's manifest
            builder left out) are left out with one `SkippedRecordingsWarning` listing each file
            and why.
    """
    from wavenet_lib.data.manifest_builders import read_left_out

    model, data = cfg.model, cfg.data
    manifest_path = manifest_for(cfg)
    rows = read_manifest(manifest_path)
    skipped: dict[str, str] = {}
    if data.source in ("pmemo2019", "hku956", "e4"):
        skipped.update((x.item, str(x)) for x in read_left_out(manifest_path))
    n_found = len(rows) + len(skipped)
    split_seed = cfg.seed if data.split_seed is None else data.split_seed
    splits = split_rows(rows, data.split_by, data.val_fraction, data.test_fraction, split_seed)
    need = min_recording_steps(model, data)
    recordings: dict[str, Recording] = {}
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
            f"skipped {len(skipped)} of {n_found} recordings (data.on_bad_recording='skip'):\n{listing}",
            SkippedRecordingsWarning,
            stacklevel=2,
        )
    splits = {k: [r for r in v if r in recordings] for k, v in splits.items()}
    if not splits["train"]:
        raise DataError(manifest_path, "no usable recording left in the training split")
    mfcc_scale = None
    if data.mfcc_standardize == "dataset":
        mfcc_scale = shared_mfcc_scale(cfg, [recordings[r] for r in splits["train"]])
        for rec in recordings.values():
            rec.mfcc_std = mfcc_scale
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

    def make(split: str, mode: Literal["random", "strided"]) -> WindowDataset:
        return WindowDataset(
            [recordings[r] for r in splits[split]],
            model,
            data.target_steps,
            normalizers,
            mode=mode,
            length=data.epoch_size if mode == "random" else None,
            seed=cfg.seed,
            standardize=data.mfcc_standardize != "none",
            event_oversampling=data.event_oversampling,  # applied in random mode only
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
        mfcc_scale,
    )


def shared_mfcc_scale(cfg: ExperimentConfig, train: list[Recording]) -> np.ndarray:
    """The one MFCC scale of `data.mfcc_standardize: dataset`, float32 (in_channels, num_mfccs).

    `data.mfcc_scale` when the config gives it (a trained run's config does), else the median
    over the training recordings of each recording's std per coefficient: the median, so one
    odd recording (a silent stretch, a clipped one) does not set the scale of all.
    """
    if cfg.data.mfcc_scale is not None:
        return mfcc_divisor(cfg.data, train[0].mfcc_std)
    stds = np.stack([np.asarray(rec.mfcc_std, dtype=np.float32) for rec in train])
    return np.median(stds, axis=0).astype(np.float32)


def _progress(rows: list[ManifestRow]):
    if len(rows) < 20:
        return rows
    from tqdm.auto import tqdm

    return tqdm(rows, desc="preparing recordings", unit="rec")
