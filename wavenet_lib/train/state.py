"""What a run must keep to continue exactly: `TrainState`, saved and restored by `Checkpointer`.

`TrainState` is every counter of the loop (step, best validation loss, validations without
improvement, elapsed time, the running training-loss sum, the data fingerprint). `Checkpointer`
owns everything else a checkpoint holds (model, optimizer, scheduler, RNG states of every
process, config, normalizer) and is the one place that writes `last.pt` / `best.pt` and
restores a run from `last.pt`. Saving is collective under DDP (every rank joins the RNG
gather); only rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from wavenet_lib.atomic_write import atomic_write_text
from wavenet_lib.configs import ExperimentConfig, TrainConfig
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.train.checkpoints import (
    CheckpointError,
    capture_rng_state,
    check_model_config,
    read_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from wavenet_lib.train.distributed import DistEnv, all_gather_objects
from wavenet_lib.train.weight_average import WeightAverage

__all__ = ["LAST_CHECKPOINT", "BEST_CHECKPOINT", "TrainState", "Checkpointer"]

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


@dataclass
class TrainState:
    """The loop's counters; `to_dict` / `from_dict` are the checkpoint's `train_state`.

    Attributes:
        step: optimizer steps taken.
        best_val_loss: lowest validation loss so far (nats per EDA step), None before the first.
        bad_validations: validations in a row without an improvement.
        elapsed_s: training time before this process started (see `elapsed`).
        loss_sum, loss_count: training losses since the last metrics row.
        world_size: processes that wrote the state.
        train_windows: training windows per epoch.
        data_fingerprint: `wavenet_lib.train.fingerprint.data_fingerprint` of the data, or None.
        stopped_early: early stopping triggered (not saved: a stopped run is finished).
    """

    step: int = 0
    best_val_loss: float | None = None
    bad_validations: int = 0
    elapsed_s: float = 0.0
    loss_sum: float = 0.0
    loss_count: int = 0
    world_size: int = 1
    train_windows: int = 0
    data_fingerprint: dict[str, Any] | None = None
    stopped_early: bool = field(default=False, compare=False)
    _started: float = field(default_factory=time.perf_counter, repr=False, compare=False)

    @classmethod
    def new(cls, world_size: int, train_windows: int, data_fingerprint: dict[str, Any] | None) -> TrainState:
        """The state of a run that has not taken a step."""
        return cls(world_size=world_size, train_windows=train_windows, data_fingerprint=data_fingerprint)

    def elapsed(self) -> float:
        """Seconds of training so far, this process's and those before a resume."""
        return self.elapsed_s + time.perf_counter() - self._started

    def record_step(self, loss: float) -> None:
        """Count one optimizer step with its (process-averaged) training loss."""
        self.step += 1
        self.loss_sum, self.loss_count = self.loss_sum + loss, self.loss_count + 1

    def take_train_loss(self) -> float | None:
        """Mean training loss since the last call (None if no step), and reset the sum."""
        mean = self.loss_sum / self.loss_count if self.loss_count else None
        self.loss_sum, self.loss_count = 0.0, 0
        return mean

    def record_validation(self, val_loss: float, tc: TrainConfig) -> bool:
        """Update best / early-stopping counters; True when `val_loss` is a new best.

        A non-finite `val_loss` never reaches here (the loop stops on it first).
        """
        improved = self.best_val_loss is None or val_loss < self.best_val_loss - tc.early_stopping_min_delta
        if improved:
            self.best_val_loss, self.bad_validations = val_loss, 0
        else:
            self.bad_validations += 1
        patience = tc.early_stopping_patience
        self.stopped_early = patience is not None and self.bad_validations >= patience
        return improved

    def to_dict(self) -> dict[str, Any]:
        """Plain values for the checkpoint (elapsed time measured now)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}
        out.pop("stopped_early")
        out["elapsed_s"] = self.elapsed()
        return out

    @classmethod
    def from_dict(cls, step: int, data: Mapping[str, Any]) -> TrainState:
        """Inverse of `to_dict`; keys an older checkpoint lacks take their defaults."""
        known = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")} - {
            "step",
            "stopped_early",
        }
        return cls(step=int(step), **{k: v for k, v in data.items() if k in known})


class Checkpointer:
    """Writes `last.pt` / `best.pt` of one run and restores a run from `last.pt`.

    Args:
        run_dir: the run folder.
        cfg: the experiment (stored in every checkpoint).
        model: the bare model (not the DDP wrapper).
        optimizer, scheduler: saved and restored with the model.
        normalizer: the EDA normalization stored with the model (None: none, or the one in
            `last.pt` when resuming).
        env: the process group.
        weight_average: the run's moving average of the weights (`train.ema_decay`), saved
            and restored with the rest; None when off. A resumed checkpoint without one starts
            it from the restored weights.
    """

    def __init__(
        self,
        run_dir: Path,
        cfg: ExperimentConfig,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        normalizer: MinMaxNormalizer | None,
        env: DistEnv,
        weight_average: WeightAverage | None = None,
    ) -> None:
        self.run_dir, self.cfg, self.env = Path(run_dir), cfg, env
        self.weight_average = weight_average
        self.model, self.optimizer, self.scheduler, self.normalizer = model, optimizer, scheduler, normalizer
        self.last, self.best = self.run_dir / LAST_CHECKPOINT, self.run_dir / BEST_CHECKPOINT
        self.saved_step: int | None = None  # step of the last last.pt written or restored
        self._rng: list[dict[str, Any]] | None = None
        self._last_save = time.monotonic()

    # --- save ----------------------------------------------------------------------------------
    def save(self, path: Path, state: TrainState) -> None:
        """Write a checkpoint of `state` to `path` (collective: every rank must call it)."""
        rng = all_gather_objects(capture_rng_state(), self.env)
        if path == self.last:
            self.saved_step, self._last_save = state.step, time.monotonic()
        if self.env.is_main:
            save_checkpoint(
                path,
                model=self.model,
                experiment_config=self.cfg,
                step=state.step,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                normalizer=self.normalizer,
                rng=rng,
                train_state=state.to_dict(),
                weight_average=None if self.weight_average is None else self.weight_average.state_dict(),
            )

    def seconds_since_last_save(self) -> float:
        """Wall-clock seconds since `last.pt` was last written (or since this run started)."""
        return time.monotonic() - self._last_save

    def last_good(self) -> Path | None:
        """`last.pt` if it exists."""
        return self.last if self.last.is_file() else None

    def write_config(self) -> None:
        """config.yaml in the run folder (rank 0)."""
        if self.env.is_main:
            atomic_write_text(
                self.run_dir / "config.yaml",
                yaml.safe_dump(self.cfg.model_dump(mode="json"), sort_keys=False),
            )

    # --- restore ---------------------------------------------------------------------------------
    def restore(self, device: torch.device, data_fingerprint: Mapping[str, Any] | None = None) -> TrainState:
        """Load model, optimizer, scheduler and counters from `last.pt`; keep its RNG states.

        Call `restore_rng` after everything else that may consume random numbers.

        Raises:
            FileNotFoundError: no last.pt.
            CheckpointError: not usable (weights only, damaged, other format).
            ConfigMismatchError: the model config differs.
        """
        path = self.last
        if not path.is_file():
            raise FileNotFoundError(
                f"nothing to resume: {path} not found; train without --resume to start a new run"
            )
        payload = read_checkpoint(path, map_location=device)
        check_model_config(payload["config"]["model"], self.cfg.model, path)
        _warn_config_changes(payload["config"], self.cfg, path)
        if payload.get("optimizer") is None:
            raise CheckpointError(f"{path} holds weights only; it cannot resume training")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        if self.weight_average is not None and payload.get("weight_average") is not None:
            self.weight_average.load_state_dict(payload["weight_average"])
        state = TrainState.from_dict(payload["step"], payload.get("train_state", {}))
        if state.world_size != self.env.world_size:
            warnings.warn(
                f"{path} was written by {state.world_size} processes, resuming with "
                f"{self.env.world_size}: the data order and random states will differ",
                stacklevel=3,
            )
        _warn_data_changes(state.data_fingerprint, data_fingerprint, path)
        state.world_size = self.env.world_size
        state.data_fingerprint = dict(data_fingerprint) if data_fingerprint else state.data_fingerprint
        if self.normalizer is None and payload.get("normalizer") is not None:
            self.normalizer = MinMaxNormalizer.from_dict(payload["normalizer"])
        self._rng = payload.get("rng") or None
        self.saved_step = state.step
        return state

    def restore_rng(self) -> None:
        """Restore this rank's RNG states from the resumed checkpoint (no-op for a new run)."""
        if self._rng:
            rank = self.env.rank
            restore_rng_state(self._rng[rank] if rank < len(self._rng) else self._rng[0])


def _warn_config_changes(saved: Mapping[str, Any], cfg: ExperimentConfig, path: Path) -> None:
    now = cfg.model_dump(mode="json")
    changed = []
    for section in ("name", "seed", "data", "train"):
        a, b = saved.get(section), now.get(section)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changed += [f"{section}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            changed.append(section)
    if changed:
        warnings.warn(
            f"resuming from {path} with changed settings: {', '.join(changed)}; the run will not "
            "repeat the uninterrupted one exactly",
            stacklevel=4,
        )


def _warn_data_changes(saved: Mapping[str, Any] | None, now: Mapping[str, Any] | None, path: Path) -> None:
    if not saved or not now or saved.get("digest") == now.get("digest"):
        return
    labels = {"recordings": "training recordings", "eda_range_us": "EDA range (µS)", "windows": "windows"}
    details = [
        f"{label} {_show(saved.get(key))} -> {_show(now.get(key))}"
        for key, label in labels.items()
        if saved.get(key) != now.get(key)
    ]
    warnings.warn(
        f"resuming from {path} on different data than it was trained on"
        + (f" ({'; '.join(details)})" if details else " (files changed)")
        + "; the run will not continue the original one",
        stacklevel=4,
    )


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(_show(v) for v in value)
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)
