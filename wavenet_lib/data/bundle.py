"""An experiment's data: manifest, subject/recording splits, prepared recordings, window datasets."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from wavenet_lib.configs import ExperimentConfig
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
