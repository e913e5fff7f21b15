"""Teacher-forced training of the audio → EDA WaveNet, with checkpoints, resume and DDP.

`train` is the library function the notebooks and the command line both call; it takes the
datasets as arguments (items: dicts with "mfcc", "eda_prev", "target", see docs/design.md "Data
contract"). `train_experiment` builds the datasets from the config first. The pieces live in
their own modules: `step` (one optimisation step, the validation loss), `optim` (AdamW and the
schedule), `state` (the counters and the `Checkpointer`), `history` (metrics_history.csv).

What one run does:
- AdamW; the learning rate warms up linearly over `warmup_steps`, then decays along a cosine to
  `learning_rate * min_lr_ratio` at `max_steps` (`torch.optim.lr_scheduler.LambdaLR`).
- Loss mask: the model sees the whole window of `first_full_step + target_steps` steps, but the
  cross-entropy covers only steps `t >= model.config.first_full_step`, whose receptive field
  lies entirely inside the window (earlier steps see zero padding where audio should be).
- Gradient-norm clipping (`grad_clip`), bf16 autocast on CUDA only.
- Every `val_every` steps (and at the end): mean cross-entropy in nats per EDA step over the
  first `val_batches` batches of the validation set, the same windows each time. `best.pt`
  holds the best so far (or, with `train.best_checkpoint: final`, the state after `max_steps`,
  written when the run finishes); early stopping after `early_stopping_patience` validations
  without an improvement larger than `early_stopping_min_delta`.
- `last.pt` every `checkpoint_every` steps and at the end; `metrics_history.csv` (step,
  train_loss, val_loss, lr, time) every `log_every` steps and at each validation.
- With `ema_decay` > 0, a moving average of the weights (`weight_average.py`) is updated
  after every step; validation scores it, `best.pt` is chosen by it, and the checkpoints carry it
  (inference loads it), so the returned model is the average.
- A NaN or infinite loss (or gradient norm) raises `NonFiniteLossError` before the optimizer
  step, so the last checkpoint on disk stays the last good one.

Determinism: `seed` fixes the model initialization, the data order (a `DistributedSampler` per
epoch, seeded by (seed, epoch), also with one process) and the DataLoader workers' seeds. The
order of batch b of epoch e is a pure function of (seed, e, b), and RNG states go into the
checkpoint, so a CPU run resumed from `last.pt` ends with bitwise the same weights as one that
never stopped (with `num_workers=0`, or datasets whose random crops depend only on the epoch
and index). The batch size is global: with N processes each takes `batch_size / N` windows,
and together they take the windows one process would, so N processes follow one process's
trajectory up to floating-point summation order.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from wavenet_lib.atomic_write import remove_temp_files
from wavenet_lib.configs import ExperimentConfig
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.models.memory import available_memory, check_fits, training_memory
from wavenet_lib.models.quantization import bin_width
from wavenet_lib.seeding import seed_everything, seed_worker
from wavenet_lib.train.batches import TrainingBatches
from wavenet_lib.train.devices import select_device
from wavenet_lib.train.distributed import DistEnv, barrier, cleanup_distributed, init_distributed
from wavenet_lib.train.fingerprint import data_fingerprint
from wavenet_lib.train.history import METRICS_FILE, MetricsLog
from wavenet_lib.train.interrupts import StopSignals, TrainingInterrupted
from wavenet_lib.train.optim import WarmupCosine, build_optimizer
from wavenet_lib.train.run_folder import RunFolder, RunFolderError
from wavenet_lib.train.state import BEST_CHECKPOINT, LAST_CHECKPOINT, Checkpointer, TrainState
from wavenet_lib.train.step import NonFiniteLossError, masked_cross_entropy, train_step, validation_loss
from wavenet_lib.train.weight_average import WeightAverage

__all__ = [
    "NonFiniteLossError",
    "TrainingInterrupted",
    "RunFolderError",
    "TrainResult",
    "WarmupCosine",
    "METRICS_FILE",
    "LAST_CHECKPOINT",
    "BEST_CHECKPOINT",
    "select_device",
    "seed_everything",
    "seed_worker",
    "build_optimizer",
    "masked_cross_entropy",
    "validation_loss",
    "train_step",
    "train",
    "train_experiment",
    "stored_normalizer",
]

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run produced."""

    model: nn.Module
    step: int
    best_val_loss: float | None
    stopped_early: bool
    run_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)


def _build_model(cfg: ExperimentConfig, device: Any, rank: int) -> nn.Module:
    """`Wavenet(cfg.model)` with the same initial weights on every rank."""
    from wavenet_lib.models.wavenet import Wavenet

    seed_everything(cfg.seed)
    model = Wavenet(cfg.model).to(device)
    if rank:
        seed_everything(cfg.seed + rank)  # per-rank dropout / crop randomness
    return model


def _check_memory(cfg: ExperimentConfig, env: DistEnv, device: torch.device) -> None:
    """Refuse (ConfigTooLargeError naming the field) a config that cannot fit on `device`."""
    where = f"this machine's memory ({device.type})" if device.type == "cpu" else f"{device}"
    check_fits(training_memory(cfg, env.world_size), available_memory(device), f"training {cfg.name}", where)


def _validator(
    cfg: ExperimentConfig, model: nn.Module, val_data: Dataset | None, device: torch.device, env: DistEnv
) -> Callable[[], float] | None:
    """`validation_loss` on the config's first `val_batches` batches, or None without validation data."""
    if val_data is None or len(cast(Sized, val_data)) == 0:
        return None
    tc = cfg.train
    return partial(
        validation_loss,
        model,
        val_data,
        cfg.model.first_full_step,
        tc.batch_size,
        max_batches=tc.val_batches,
        device=device,
        bf16=tc.bf16,
        env=env,
        num_workers=cfg.data.num_workers,
        silent_audio=tc.audio_dropout >= 1.0,  # an audio-blind model is validated as it trained
    )


def _wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def _result(
    model: nn.Module, state: TrainState, ckpt: Checkpointer, history: MetricsLog, env: DistEnv
) -> TrainResult:
    return TrainResult(
        model=model,
        step=state.step,
        best_val_loss=state.best_val_loss,
        stopped_early=state.stopped_early,
        run_dir=ckpt.run_dir,
        last_checkpoint=ckpt.last,
        best_checkpoint=ckpt.best if ckpt.best.is_file() or not env.is_main else None,
        history=history.rows,
    )


def train(
    cfg: ExperimentConfig,
    train_data: Dataset,
    val_data: Dataset | None,
    run_dir: str | Path,
    *,
    normalizer: MinMaxNormalizer | None = None,
    resume: bool = False,
    overwrite: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    data_fingerprint: dict[str, Any] | None = None,
) -> TrainResult:
    """Train `Wavenet(cfg.model)` on `train_data`, validating on `val_data`; see module docstring.

    Args:
        cfg: the experiment (model, data.target_steps/num_workers, train, seed).
        train_data: Dataset of window dicts ("mfcc", "eda_prev", "target", ...).
        val_data: validation windows, or None to skip validation (best.pt is then the last state).
        run_dir: where last.pt, best.pt, metrics_history.csv and config.yaml go.
        normalizer: the EDA normalization stored in checkpoints (None: the resumed one, or none).
        resume: continue from run_dir/last.pt (the model config must match it).
        overwrite: replace a trained run already in run_dir (without it, and without resume,
            a run_dir holding last.pt or best.pt is refused).
        stop_after: stop (with a checkpoint) once this many steps are done, as if interrupted.
        progress: show a tqdm progress bar (rank 0 only).
        data_fingerprint: `wavenet_lib.train.fingerprint.data_fingerprint` of the data, kept in
            the checkpoints; resuming on data with another fingerprint warns.

    Returns:
        TrainResult with the trained model (on the training device).

    Raises:
        NonFiniteLossError: the training loss, gradient norm or validation loss became NaN/inf
            (last.pt keeps the last good state; best.pt never holds a non-finite validation).
        TrainingInterrupted: SIGINT/SIGTERM; last.pt was saved at the step boundary.
        RunFolderError: run_dir is locked by another run, or holds one (see `overwrite`).
        ConfigTooLargeError: the config needs more memory than the device has.
        ConfigMismatchError: resuming with a different model config.
        FileNotFoundError, CheckpointError: resume=True without a usable run_dir/last.pt.
        ValueError: training set smaller than one batch, batch size not divisible by processes.
    """
    from tqdm.auto import tqdm

    tc, run_dir = cfg.train, Path(run_dir)
    env = init_distributed(select_device(tc.device).type)
    try:
        device = select_device(tc.device, env.local_rank)
        batches = TrainingBatches(train_data, tc.batch_size, cfg.seed, env)
        _check_memory(cfg, env, device)
        with RunFolder(run_dir, env, resume=resume, overwrite=overwrite), StopSignals(env) as signals:
            model = _build_model(cfg, device, env.rank)
            optimizer, scheduler = build_optimizer(model, tc)
            average = WeightAverage.create(model, tc.ema_decay)
            scored = model if average is None else average.module  # validated, returned, loaded
            ckpt = Checkpointer(run_dir, cfg, model, optimizer, scheduler, normalizer, env, average)
            fresh = TrainState.new(env.world_size, batches.windows, data_fingerprint)
            state = ckpt.restore(device, data_fingerprint) if resume else fresh
            ckpt.write_config()
            history = MetricsLog(run_dir / METRICS_FILE, env.is_main, state.step if resume else None)
            ddp_model = _wrap_ddp(model, device) if env.distributed else model
            ffs, every_s = cfg.model.first_full_step, 60.0 * tc.checkpoint_every_minutes
            step = partial(
                train_step,
                ddp_model,
                optimizer=optimizer,
                scheduler=scheduler,
                first_full_step=ffs,
                grad_clip=tc.grad_clip,
                bf16=tc.bf16,
                env=env,
                history_noise=tc.history_noise_levels * bin_width(cfg.model.quantization_levels),
                scheduled_sampling=tc.scheduled_sampling,
                sampling=cfg.sampling,
                audio_dropout=tc.audio_dropout,
            )
            validate = _validator(cfg, scored, val_data, device, env)
            ckpt.restore_rng()  # last, so nothing above consumes the restored streams
            bar = tqdm(
                total=tc.max_steps, initial=state.step, desc=cfg.name, disable=not progress or env.rank
            )
            model.train()
            stream = batches.from_step(state.step, cfg.data.num_workers, device)
            with bar, contextlib.closing(stream), _naming_last_checkpoint(ckpt):
                while state.step < tc.max_steps and not state.stopped_early:
                    out = step(next(stream), step=state.step)
                    if average is not None:
                        average.update(model)
                    state.record_step(out.loss)
                    bar.update(1)
                    bar.set_postfix(loss=f"{out.loss:.3f}", lr=f"{out.lr:.2e}", refresh=False)
                    val_loss = None
                    if validate and (state.step % tc.val_every == 0 or state.step == tc.max_steps):
                        val_loss = validate()
                        if not math.isfinite(val_loss):
                            raise NonFiniteLossError(state.step, "the validation loss", val_loss)
                        bar.set_postfix(loss=f"{out.loss:.3f}", val=f"{val_loss:.3f}", lr=f"{out.lr:.2e}")
                        if state.record_validation(val_loss, tc) and tc.best_checkpoint == "validation":
                            ckpt.save(ckpt.best, state)
                    if val_loss is not None or state.step % tc.log_every == 0 or state.step == tc.max_steps:
                        row = dict(step=state.step, train_loss=state.take_train_loss(), val_loss=val_loss)
                        history.add(**row, lr=out.lr, time=state.elapsed())
                    signum, due = signals.poll(ckpt.seconds_since_last_save() >= every_s, device)
                    done = state.step >= tc.max_steps or state.stopped_early
                    finished = done or signum or (stop_after is not None and state.step >= stop_after)
                    if due or state.step % tc.checkpoint_every == 0 or finished:
                        ckpt.save(ckpt.last, state)
                    if signum and not done:
                        raise TrainingInterrupted(state.step, signum, ckpt.last)
                    if finished:
                        break
                if ckpt.saved_step != state.step:  # e.g. a fresh run with max_steps already reached
                    ckpt.save(ckpt.last, state)
                if validate is None or (tc.best_checkpoint == "final" and state.step >= tc.max_steps):
                    ckpt.save(ckpt.best, state)  # "best" is the latest state
        if state.stopped_early:
            logger.info("early stopping at step %d (best val loss %.4f)", state.step, state.best_val_loss)
        barrier(env)
        return _result(scored, state, ckpt, history, env)
    except TrainingInterrupted:
        # Every process stops at the same step (StopSignals agrees on it): leave together, so that
        # no process tears the gloo group down while another still talks to it (a SIGABRT there).
        barrier(env)
        raise
    finally:
        cleanup_distributed(env)


@contextlib.contextmanager
def _naming_last_checkpoint(ckpt: Checkpointer) -> Iterator[None]:
    """A `NonFiniteLossError` raised inside names the last good checkpoint."""
    try:
        yield
    except NonFiniteLossError as exc:
        raise exc.with_checkpoint(ckpt.last_good()) from None


def train_experiment(
    cfg: ExperimentConfig,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
) -> TrainResult:
    """Build the datasets for `cfg` (`wavenet_lib.data.bundle.build_datasets`) and `train` on them.

    Args:
        cfg: the experiment.
        run_dir: output folder (default ``runs/<cfg.name>``).
        resume: continue from run_dir/last.pt.
        progress: show progress bars.
        overwrite: replace a trained run already in run_dir.

    The data's fingerprint goes into the checkpoints (`wavenet_lib.train.fingerprint`), so a
    resume on changed data warns. Temporary files older than an hour that killed writes left in
    the MFCC cache are removed first.

    Under torchrun, rank 0 builds the datasets first (writing synthetic data and feature caches)
    while the other ranks wait, then they read what it wrote.
    """
    from wavenet_lib.data.bundle import build_datasets

    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / cfg.name
    env = init_distributed(select_device(cfg.train.device).type)
    try:
        _check_memory(cfg, env, select_device(cfg.train.device, env.local_rank))  # before the data
        if not env.is_main:
            barrier(env)
        else:
            remove_temp_files(cfg.data.cache_dir, older_than_s=3600.0)
        bundle = build_datasets(cfg)
        if env.is_main:
            barrier(env)
        cfg = bundle.feature_config(cfg)  # checkpoints carry the MFCC scale the data used
        normalizer = stored_normalizer(bundle)
        return train(
            cfg,
            bundle.train,
            bundle.val,
            run_dir,
            normalizer=normalizer,
            resume=resume,
            overwrite=overwrite,
            progress=progress,
            data_fingerprint=data_fingerprint(bundle, normalizer),
        )
    finally:
        cleanup_distributed(env)


def stored_normalizer(bundle: Any) -> MinMaxNormalizer | None:
    """The EDA normalization to keep with the model.

    `data.normalization="per_dataset"`: the shared normalizer. "per_recording": each recording
    has its own range, so generated EDA can only be given the range of a typical training
    recording: the median of their low and high values (same margin).

    Args:
        bundle: a `wavenet_lib.data.bundle.DataBundle`.
    """
    if bundle.normalizer is not None:
        return bundle.normalizer
    chosen = [bundle.normalizers[r] for r in bundle.splits["train"] if r in bundle.normalizers]
    if not chosen:
        return None
    return MinMaxNormalizer(
        float(np.median([n.lo for n in chosen])),
        float(np.median([n.hi for n in chosen])),
        float(chosen[0].margin),
    )
