"""Training windows: the window `Dataset` over prepared recordings and its `DataLoader`.

A window of `W = model.first_full_step + data.target_steps` EDA steps is one item::

    "mfcc"         float32 (in_channels, W*spf, features_per_frame): `model_features`
    "eda_prev"     float32 (out_channels, W): eda_prev[:, t] = dequantize(quantize(eda_norm[start+t-1])),
                   eda_prev[:, 0] = that of the step before the window (START_VALUE, 0.0, at step 0)
    "target"       int64 (out_channels, W): quantize(eda_norm[start+t])
    "eda_memory"   float32 (out_channels * memory features, W), only with `model.eda_memory_seconds`
                   > 0 or `model.eda_trend_lags`: the EDA
                   memory of the window's steps, computed over the recording from its start
                   (`models/eda_memory.py`), since the memory reaches back past the window
    "recording_id" str
    "start_step"   int
    "loss_weight"  float32 scalar, only with `event_oversampling` > 1 (random mode): how much
                   less (or more) often than uniformly the window is drawn, uniform / actual
                   probability, so the weighted loss has the uniform draw's expectation

The loss is taken on the last `target_steps` steps (the first `first_full_step` lack a full
receptive field). MFCCs stay on disk (memory-mapped feature cache); only the EDA, a few
numbers per step, is held in memory.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from wavenet_lib.configs import WavenetConfig
from wavenet_lib.data.features import model_features
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.data.recordings import Recording, window_steps
from wavenet_lib.errors import DataError
from wavenet_lib.models.eda_memory import eda_memory
from wavenet_lib.models.quantization import START_VALUE, dequantize, quantize
from wavenet_lib.seeding import derive_seed


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
        event_oversampling: random mode draws a window whose scored steps hold an SCR onset
            (`scr_onset_steps` of the recording's own EDA) this many times as often as one
            without, and gives each item a "loss_weight" (`data.event_oversampling`). 1 = uniform.
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
        event_oversampling: float = 1.0,
    ) -> None:
        self.recordings = list(recordings)
        self.model = model
        self.window = window_steps(model, target_steps)
        self.target_steps = target_steps
        self.mode = mode
        self.seed = seed
        self.epoch = 0
        self.standardize = standardize
        self.spf = model.spectral_frames_per_eda_step
        levels = model.quantization_levels
        self._target, self._prev, self._memory = [], [], []
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
            if model.memory_features_per_signal:  # the levels eda_prev holds at every step
                start_level = quantize(np.full((q.shape[0], 1), START_VALUE), levels)
                prev_levels = np.concatenate([start_level, q[:, :-1]], axis=1)
                memory = eda_memory(
                    torch.from_numpy(prev_levels)[None], model.memory_decay, lags=model.eda_trend_lags
                )
                self._memory.append(memory[0].numpy())
        starts = np.array([r.n_steps - self.window + 1 for r in self.recordings], dtype=np.int64)
        self._cum_starts = np.cumsum(starts)
        self.event_oversampling = float(event_oversampling)
        self._cum_weights: np.ndarray | None = None
        if mode == "random" and self.event_oversampling != 1.0 and self.recordings:
            eventful = np.concatenate([self._eventful_starts(rec) for rec in self.recordings])
            weights = np.where(eventful, self.event_oversampling, 1.0)
            self._cum_weights = np.cumsum(weights)
            self._mean_weight = float(self._cum_weights[-1]) / len(weights)
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

    def _eventful_starts(self, rec: Recording) -> np.ndarray:
        """bool (starts,): whether the scored steps of the window at each start hold an SCR onset."""
        first = self.window - self.target_steps
        onsets = np.zeros(rec.n_steps + 1, dtype=np.int64)
        for steps in scr_onset_steps(rec.eda_us, rec.eda_sample_rate):
            np.add.at(onsets, steps + 1, 1)
        count = np.cumsum(onsets)  # count[t] = onsets at steps < t
        s = np.arange(rec.n_steps - self.window + 1)
        return count[s + self.window] > count[s + first]

    def _locate(self, index: int) -> tuple[int, int, float]:
        """(recording, start step, loss weight) of item `index`."""
        if self.mode == "strided":
            return (*self._index[index], 1.0)
        g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, index))
        weight = 1.0
        if self._cum_weights is None:
            r = int(torch.randint(int(self._cum_starts[-1]), (1,), generator=g))
        else:
            u = float(torch.rand(1, generator=g, dtype=torch.float64)) * float(self._cum_weights[-1])
            r = min(int(np.searchsorted(self._cum_weights, u, side="right")), len(self._cum_weights) - 1)
            below = float(self._cum_weights[r - 1]) if r else 0.0
            weight = self._mean_weight / (float(self._cum_weights[r]) - below)
        rec = int(np.searchsorted(self._cum_starts, r, side="right"))
        return rec, r - (int(self._cum_starts[rec - 1]) if rec else 0), weight

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        i, start, weight = self._locate(index)
        rec, W, spf = self.recordings[i], self.window, self.spf
        if i not in self._mmaps:
            self._mmaps[i] = rec.mfcc()
        mfcc = model_features(
            self._mmaps[i],
            rec.mfcc_mean,
            rec.mfcc_std,
            self.model,
            start * spf,
            (start + W) * spf,
            self.standardize,
        )
        prev = self._prev[i]
        eda_prev = np.empty((prev.shape[0], W), dtype=np.float32)
        eda_prev[:, 1:] = prev[:, start : start + W - 1]
        eda_prev[:, 0] = prev[:, start - 1] if start > 0 else START_VALUE
        item = {
            "mfcc": torch.from_numpy(mfcc),
            "eda_prev": torch.from_numpy(eda_prev),
            "target": torch.from_numpy(np.ascontiguousarray(self._target[i][:, start : start + W])),
            "recording_id": rec.recording_id,
            "start_step": int(start),
        }
        if self._cum_weights is not None:
            item["loss_weight"] = torch.tensor(weight, dtype=torch.float32)
        if self._memory:
            item["eda_memory"] = torch.from_numpy(np.ascontiguousarray(self._memory[i][:, start : start + W]))
        return item


def scr_onset_steps(eda_us: np.ndarray, sample_rate: float) -> list[np.ndarray]:
    """Per EDA signal of `eda_us` (C, T), the steps (int64) where an SCR starts, by the same
    neurokit2-based detector as the realism metrics (`evaluate.scrs.detect_scrs`)."""
    from wavenet_lib.evaluate.scrs import detect_scrs  # imported here: neurokit2 is slow to import

    out = []
    for signal in np.atleast_2d(eda_us):
        onsets = detect_scrs(signal, sample_rate)["onset_s"].to_numpy()
        steps = np.round(onsets * sample_rate).astype(np.int64)
        out.append(np.clip(steps, 0, signal.shape[-1] - 1))
    return out


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
