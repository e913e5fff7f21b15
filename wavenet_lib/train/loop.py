"""Teacher-forced training of the audio → EDA WaveNet, with checkpoints, resume and DDP.

`train` is the library function the notebooks and the command line both call; it takes the
datasets as arguments (items: dicts with "mfcc", "eda_prev", "target", see docs/design.md "Data
contract"). `train_experiment` builds the datasets from the config first.

What one run does:
- AdamW; the learning rate warms up linearly over `warmup_steps`, then decays along a cosine to
  `learning_rate * min_lr_ratio` at `max_steps` (`torch.optim.lr_scheduler.LambdaLR`).
- Loss mask: the model sees the whole window of `first_full_step + target_steps` steps, but the
  cross-entropy covers only steps `t >= model.config.first_full_step`, whose receptive field
  lies entirely inside the window (earlier steps see zero padding where audio should be).
- Gradient-norm clipping (`grad_clip`), bf16 autocast on CUDA only.
- Every `val_every` steps (and at the end): mean cross-entropy in nats per EDA step over the
  first `val_batches` batches of the validation set, the same windows each time. `best.pt`
  holds the best so far; early stopping after `early_stopping_patience` validations without an
  improvement larger than `early_stopping_min_delta`.
- `last.pt` every `checkpoint_every` steps and at the end; `metrics_history.csv` (step,
  train_loss, val_loss, lr, time) every `log_every` steps and at each validation.
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
import csv
import logging
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from wavenet_lib.configs import ExperimentConfig, TrainConfig
from wavenet_lib.seeding import derive_seed, seed_everything, seed_worker
from wavenet_lib.train.checkpoints import (
    CheckpointError,
    capture_rng_state,
    check_model_config,
    read_checkpoint,
    restore_rng_state,
    save_checkpoint,
    unwrap_model,
)
from wavenet_lib.train.distributed import (
    DistEnv,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    cleanup_distributed,
    init_distributed,
)

__all__ = [
    "NonFiniteLossError",
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
    "evaluate",
    "train",
    "train_experiment",
    "stored_normalizer",
]

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics_history.csv"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
_METRIC_FIELDS = ("step", "train_loss", "val_loss", "lr", "time")


class NonFiniteLossError(RuntimeError):
    """The loss or gradient norm became NaN/inf; the last checkpoint on disk is the last good one."""

    def __init__(self, step: int, what: str, value: float, last_checkpoint: Path | None) -> None:
        self.step, self.what, self.value, self.last_checkpoint = step, what, value, last_checkpoint
        kept = f"; the last good checkpoint is {last_checkpoint}" if last_checkpoint else ""
        super().__init__(
            f"training stopped at step {step}: {what} is {value} (not finite){kept}. "
            "Lower learning_rate, keep grad_clip on, or check the data for NaNs."
        )


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


# --- devices, seeds ---------------------------------------------------------------------------
def select_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """`preference` ("cpu", "cuda", "mps") or, for "auto", CUDA, then MPS, then CPU.

    Raises:
        RuntimeError: the requested device is not available.
    """
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu"
    if preference == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device is 'cuda' but CUDA is not available; use 'auto' or 'cpu'")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if preference == "mps":
        if not mps_ok:
            raise RuntimeError("train.device is 'mps' but MPS is not available; use 'auto' or 'cpu'")
        return torch.device("mps")
    if preference == "cpu":
        return torch.device("cpu")
    raise ValueError(f"train.device must be auto, cpu, cuda or mps, got {preference!r}")


# --- optimizer, schedule, loss -------------------------------------------------------------------
class WarmupCosine:
    """LR multiplier: linear warm-up to 1 over `warmup` steps, cosine down to `floor` at `total`."""

    def __init__(self, warmup: int, total: int, floor: float = 0.0) -> None:
        self.warmup, self.total, self.floor = warmup, total, floor

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(
    model: nn.Module, train_cfg: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (no weight decay on biases and 1-D parameters) and its warm-up + cosine LambdaLR."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": train_cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=train_cfg.learning_rate, betas=train_cfg.adam_betas)
    schedule = WarmupCosine(train_cfg.warmup_steps, train_cfg.max_steps, train_cfg.min_lr_ratio)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def masked_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, first_full_step: int, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy (nats) on steps `t >= first_full_step` only.

    Args:
        logits: (B, Q, C_out, T) from the model.
        target: (B, C_out, T) int64 class indices.
        first_full_step: first step whose receptive field lies inside the window.
        reduction: "mean" (per step and signal) or "sum".
    """
    if logits.shape[-1] <= first_full_step:
        raise ValueError(
            f"windows of {logits.shape[-1]} steps leave nothing to train on: the loss starts at "
            f"first_full_step={first_full_step}; windows must be first_full_step + data.target_steps long"
        )
    return F.cross_entropy(
        logits[..., first_full_step:].float(), target[..., first_full_step:], reduction=reduction
    )


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    if device.type == "cuda" and bf16:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_device(batch: Mapping[str, Any], device: torch.device) -> tuple[torch.Tensor, ...]:
    nb = device.type == "cuda"
    return tuple(batch[k].to(device, non_blocking=nb) for k in ("mfcc", "eda_prev", "target"))


# --- data loading ------------------------------------------------------------------------------
def _loader(
    dataset: Dataset, batches: list[list[int]], num_workers: int, seed: int, device: torch.device
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),  # also keeps the global RNG untouched
        pin_memory=device.type == "cuda",
    )


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    first_full_step: int,
    batch_size: int,
    max_batches: int | None = None,
    device: torch.device | str = "cpu",
    bf16: bool = True,
    env: DistEnv | None = None,
    num_workers: int = 0,
) -> float:
    """Mean cross-entropy in nats per EDA step (masked as in training) over the first windows.

    Takes the first `max_batches * batch_size` windows of `dataset` in order (all of them for
    None), split across processes when distributed; every process returns the same value.
    """
    env = env or DistEnv()
    device = torch.device(device)
    model = unwrap_model(model)
    n = len(dataset) if max_batches is None else min(len(dataset), max_batches * batch_size)
    mine = list(range(n))[env.rank :: env.world_size]
    local_b = max(1, batch_size // env.world_size)
    batches = [mine[i : i + local_b] for i in range(0, len(mine), local_b)]
    totals = torch.zeros(2, dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in _loader(dataset, batches, num_workers, 0, device):
                mfcc, eda_prev, target = _to_device(batch, device)
                with _autocast(device, bf16):
                    logits = model(mfcc, eda_prev)
                totals[0] += masked_cross_entropy(logits, target, first_full_step, reduction="sum").double()
                totals[1] += target[..., first_full_step:].numel()
    finally:
        model.train(was_training)
    all_reduce_sum(totals, env)
    if totals[1] == 0:
        raise ValueError("validation set is empty")
    return float(totals[0] / totals[1])


# --- metrics history -----------------------------------------------------------------------------
class _MetricsLog:
    """Appends rows to metrics_history.csv (rank 0 only); on resume drops rows after the checkpoint."""

    def __init__(self, path: Path, enabled: bool, resume_step: int | None) -> None:
        self.path, self.enabled = path, enabled
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and path.is_file():
            with path.open(newline="") as fh:
                self.rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
        if enabled:
            with path.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=_METRIC_FIELDS)
                writer.writeheader()
                writer.writerows(self.rows)

    def add(self, **row: Any) -> None:
        row = {k: ("" if row.get(k) is None else row[k]) for k in _METRIC_FIELDS}
        self.rows.append(row)
        if self.enabled:
            with self.path.open("a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=_METRIC_FIELDS).writerow(row)


# --- the training loop ---------------------------------------------------------------------------
def _normalizer_dict(normalizer: Any) -> dict[str, Any] | None:
    if normalizer is None or isinstance(normalizer, Mapping):
        return None if normalizer is None else dict(normalizer)
    return dict(normalizer.to_dict())


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
            stacklevel=3,
        )


def train(
    cfg: ExperimentConfig,
    train_data: Dataset,
    val_data: Dataset | None,
    run_dir: str | Path,
    *,
    normalizer: Any = None,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train `Wavenet(cfg.model)` on `train_data`, validating on `val_data`; see module docstring.

    Args:
        cfg: the experiment (model, data.target_steps/num_workers, train, seed).
        train_data: Dataset of window dicts ("mfcc", "eda_prev", "target", ...).
        val_data: validation windows, or None to skip validation (best.pt is then the last state).
        run_dir: where last.pt, best.pt, metrics_history.csv and config.yaml go.
        normalizer: the EDA normalizer (object with `to_dict()`, or that dict), stored in checkpoints.
        resume: continue from run_dir/last.pt (the model config must match it).
        stop_after: stop (with a checkpoint) once this many steps are done, as if interrupted.
        progress: show a tqdm progress bar (rank 0 only).

    Returns:
        TrainResult with the trained model (on the training device).

    Raises:
        NonFiniteLossError: the loss became NaN/inf (last.pt keeps the last good state).
        ConfigMismatchError: resuming with a different model config.
        FileNotFoundError, CheckpointError: resume=True without a usable run_dir/last.pt.
        ValueError: training set smaller than one batch, batch size not divisible by processes.
    """
    from tqdm.auto import tqdm

    from wavenet_lib.models.wavenet import Wavenet

    tc = cfg.train
    run_dir = Path(run_dir)
    last_path, best_path = run_dir / LAST_CHECKPOINT, run_dir / BEST_CHECKPOINT
    device_type = select_device(tc.device).type
    env = init_distributed(device_type)
    try:
        device = select_device(tc.device, env.local_rank)
        if tc.batch_size % env.world_size:
            raise ValueError(
                f"train.batch_size ({tc.batch_size}) is the global batch and must be divisible by "
                f"the number of processes ({env.world_size})"
            )
        local_b = tc.batch_size // env.world_size
        ffs = cfg.model.first_full_step
        norm_dict = _normalizer_dict(normalizer)

        seed_everything(cfg.seed)  # same initial weights on every rank
        model = Wavenet(cfg.model).to(device)
        if env.rank:
            seed_everything(cfg.seed + env.rank)  # per-rank dropout / crop randomness
        optimizer, scheduler = build_optimizer(model, tc)

        step, best_val, bad_validations, elapsed_before = 0, None, 0, 0.0
        loss_sum, loss_count = 0.0, 0
        rng_states: list[dict[str, Any]] | None = None
        if resume:
            if not last_path.is_file():
                raise FileNotFoundError(
                    f"nothing to resume: {last_path} not found; train without --resume to start a new run"
                )
            payload = read_checkpoint(last_path, map_location=device)
            check_model_config(payload["config"]["model"], cfg.model, last_path)
            _warn_config_changes(payload["config"], cfg, last_path)
            model.load_state_dict(payload["model"])
            if payload.get("optimizer") is None:
                raise CheckpointError(f"{last_path} holds weights only; it cannot resume training")
            optimizer.load_state_dict(payload["optimizer"])
            scheduler.load_state_dict(payload["scheduler"])
            step = int(payload["step"])
            st = payload.get("train_state", {})
            best_val, bad_validations = st.get("best_val_loss"), int(st.get("bad_validations", 0))
            elapsed_before = float(st.get("elapsed_s", 0.0))
            loss_sum, loss_count = float(st.get("loss_sum", 0.0)), int(st.get("loss_count", 0))
            if int(st.get("world_size", 1)) != env.world_size:
                warnings.warn(
                    f"{last_path} was written by {st.get('world_size')} processes, resuming with "
                    f"{env.world_size}: the data order and random states will differ",
                    stacklevel=2,
                )
            rng_states = payload.get("rng") or None
            if norm_dict is None:
                norm_dict = payload.get("normalizer")

        if env.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        history = _MetricsLog(run_dir / METRICS_FILE, env.is_main, step if resume else None)

        ddp_model: nn.Module = model
        if env.distributed:
            ddp_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )

        sampler = DistributedSampler(
            train_data,
            num_replicas=env.world_size,
            rank=env.rank,
            shuffle=True,
            seed=cfg.seed,
            drop_last=True,
        )
        batches_per_epoch = len(sampler) // local_b
        if batches_per_epoch == 0:
            raise ValueError(
                f"the training set has {len(train_data)} windows, fewer than one batch "
                f"(train.batch_size={tc.batch_size}); lower batch_size or add data"
            )
        has_val = val_data is not None and len(val_data) > 0
        params = [p for p in model.parameters() if p.requires_grad]

        if rng_states:  # last, so nothing above consumes the restored streams
            restore_rng_state(rng_states[env.rank] if env.rank < len(rng_states) else rng_states[0])

        t0 = time.perf_counter()

        def elapsed() -> float:
            return elapsed_before + time.perf_counter() - t0

        # Decisions to save are collective (every rank must join the RNG gather), so they depend
        # only on state every rank shares, never on files rank 0 may still be writing.
        saved_step = step if resume else None

        def checkpoint(path: Path) -> None:
            nonlocal saved_step
            if path == last_path:
                saved_step = step
            rng = all_gather_objects(capture_rng_state(), env)  # collective: every rank calls it
            if env.is_main:
                save_checkpoint(
                    path,
                    model=model,
                    experiment_config=cfg,
                    step=step,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    normalizer=norm_dict,
                    rng=rng,
                    train_state={
                        "best_val_loss": best_val,
                        "bad_validations": bad_validations,
                        "elapsed_s": elapsed(),
                        "loss_sum": loss_sum,
                        "loss_count": loss_count,
                        "world_size": env.world_size,
                        "train_windows": len(train_data),
                    },
                )

        bar = tqdm(
            total=tc.max_steps,
            initial=step,
            desc=f"training {cfg.name}",
            unit="step",
            disable=not (progress and env.is_main),
            dynamic_ncols=True,
        )
        stopped_early = False
        model.train()
        try:
            while step < tc.max_steps and not stopped_early:
                epoch, offset = divmod(step, batches_per_epoch)
                if hasattr(train_data, "set_epoch"):
                    train_data.set_epoch(epoch)
                sampler.set_epoch(epoch)
                indices = list(sampler)
                batches = [indices[i * local_b : (i + 1) * local_b] for i in range(offset, batches_per_epoch)]
                loader_seed = derive_seed(cfg.seed, epoch, env.rank)
                for batch in _loader(train_data, batches, cfg.data.num_workers, loader_seed, device):
                    mfcc, eda_prev, target = _to_device(batch, device)
                    with _autocast(device, tc.bf16):
                        logits = ddp_model(mfcc, eda_prev)
                    loss = masked_cross_entropy(logits, target, ffs)
                    # Every rank sees the same mean loss, so all stop together on a NaN.
                    mean_loss = float(all_reduce_sum(loss.detach().double().clone(), env)) / env.world_size
                    if not math.isfinite(mean_loss):
                        raise NonFiniteLossError(
                            step + 1,
                            "the training loss",
                            mean_loss,
                            last_path if last_path.is_file() else None,
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if tc.grad_clip is not None:
                        norm = float(torch.nn.utils.clip_grad_norm_(params, tc.grad_clip))
                        if not math.isfinite(norm):
                            raise NonFiniteLossError(
                                step + 1,
                                "the gradient norm",
                                norm,
                                last_path if last_path.is_file() else None,
                            )
                    lr = optimizer.param_groups[0]["lr"]
                    optimizer.step()
                    scheduler.step()
                    step += 1
                    loss_sum, loss_count = loss_sum + mean_loss, loss_count + 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{mean_loss:.3f}", lr=f"{lr:.2e}", refresh=False)

                    validate = has_val and (step % tc.val_every == 0 or step == tc.max_steps)
                    val_loss = None
                    if validate:
                        val_loss = evaluate(
                            model,
                            val_data,
                            ffs,
                            tc.batch_size,
                            max_batches=tc.val_batches,
                            device=device,
                            bf16=tc.bf16,
                            env=env,
                            num_workers=cfg.data.num_workers,
                        )
                        bar.set_postfix(loss=f"{mean_loss:.3f}", val=f"{val_loss:.3f}", lr=f"{lr:.2e}")
                        improved = best_val is None or val_loss < best_val - tc.early_stopping_min_delta
                        if improved:
                            best_val, bad_validations = val_loss, 0
                        else:
                            bad_validations += 1
                        if improved:
                            checkpoint(best_path)
                        patience = tc.early_stopping_patience
                        if patience is not None and bad_validations >= patience:
                            stopped_early = True
                            logger.info("early stopping at step %d (best val loss %.4f)", step, best_val)
                    if validate or step % tc.log_every == 0 or step == tc.max_steps:
                        train_loss = loss_sum / loss_count if loss_count else None
                        history.add(
                            step=step, train_loss=train_loss, val_loss=val_loss, lr=lr, time=elapsed()
                        )
                        loss_sum, loss_count = 0.0, 0
                    interrupted = stop_after is not None and step >= stop_after
                    finished = step >= tc.max_steps or stopped_early or interrupted
                    if step % tc.checkpoint_every == 0 or finished:
                        checkpoint(last_path)
                    if finished:
                        break
                if stop_after is not None and step >= stop_after:
                    break
            if saved_step != step:  # e.g. a fresh run with max_steps already reached: nothing ran
                checkpoint(last_path)
            if not has_val:
                checkpoint(best_path)  # without validation, "best" is the latest state
        finally:
            bar.close()
        barrier(env)
        return TrainResult(
            model=model,
            step=step,
            best_val_loss=best_val,
            stopped_early=stopped_early,
            run_dir=run_dir,
            last_checkpoint=last_path,
            best_checkpoint=best_path if best_path.is_file() or not env.is_main else None,
            history=history.rows,
        )
    finally:
        cleanup_distributed(env)


def train_experiment(
    cfg: ExperimentConfig, run_dir: str | Path | None = None, resume: bool = False, progress: bool = True
) -> TrainResult:
    """Build the datasets for `cfg` (`wavenet_lib.data.bundle.build_datasets`) and `train` on them.

    Args:
        cfg: the experiment.
        run_dir: output folder (default ``runs/<cfg.name>``).
        resume: continue from run_dir/last.pt.
        progress: show progress bars.

    Under torchrun, rank 0 builds the datasets first (writing synthetic data and feature caches)
    while the other ranks wait, then they read what it wrote.
    """
    from wavenet_lib.data.bundle import build_datasets

    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / cfg.name
    env = init_distributed(select_device(cfg.train.device).type)
    try:
        if not env.is_main:
            barrier(env)
        bundle = build_datasets(cfg)
        if env.is_main:
            barrier(env)
        return train(
            cfg,
            bundle.train,
            bundle.val,
            run_dir,
            normalizer=stored_normalizer(bundle),
            resume=resume,
            progress=progress,
        )
    finally:
        cleanup_distributed(env)


def stored_normalizer(bundle: Any) -> dict[str, Any] | None:
    """The EDA normalization to keep with the model, as a plain dict.

    `data.normalization="per_dataset"`: the shared normalizer. "per_recording": each recording
    has its own range, so generated EDA can only be given the range of a typical training
    recording: the median of their low and high values (same margin).
    """
    shared = getattr(bundle, "normalizer", None)
    if shared is not None:
        return _normalizer_dict(shared)
    per_rec = getattr(bundle, "normalizers", None) or {}
    train_ids = (getattr(bundle, "splits", None) or {}).get("train") or list(per_rec)
    chosen = [per_rec[r] for r in train_ids if r in per_rec]
    if not chosen:
        return None
    typical = type(chosen[0])(
        float(np.median([n.lo for n in chosen])),
        float(np.median([n.hi for n in chosen])),
        float(chosen[0].margin),
    )
    return _normalizer_dict(typical)
