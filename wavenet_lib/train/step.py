"""One optimisation step and the validation loss: what training does per batch.

`train_step` is the whole step (forward under autocast, cross-entropy of the scored steps, finiteness
check, backward, gradient clipping, AdamW, schedule); the training loop and
`benchmarks/training.py` both call it, so the benchmark measures what training runs.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from wavenet_lib.configs import SamplingConfig
from wavenet_lib.data.features import silent_mfcc_like
from wavenet_lib.seeding import seed_worker
from wavenet_lib.train.checkpoints import unwrap_model
from wavenet_lib.train.distributed import DistEnv, all_reduce_sum

if TYPE_CHECKING:
    from wavenet_lib.models.wavenet import Wavenet

__all__ = [
    "NonFiniteLossError",
    "StepResult",
    "masked_cross_entropy",
    "autocast",
    "batch_to_device",
    "window_loader",
    "own_samples",
    "drop_audio",
    "train_step",
    "validation_loss",
]


class NonFiniteLossError(RuntimeError):
    """A loss or gradient norm became NaN/inf; the last checkpoint on disk is the last good one.

    Attributes:
        step: the step (1-based) at which it happened.
        what: "the training loss", "the gradient norm" or "the validation loss".
        value: the non-finite value.
        last_checkpoint: the last good checkpoint, or None.
    """

    def __init__(self, step: int, what: str, value: float, last_checkpoint: Path | None = None) -> None:
        self.step, self.what, self.value, self.last_checkpoint = step, what, value, last_checkpoint
        kept = f"; the last good checkpoint is {last_checkpoint}" if last_checkpoint else ""
        super().__init__(
            f"training stopped at step {step}: {what} is {value} (not finite){kept}. "
            "Lower learning_rate, keep grad_clip on, or check the data for NaNs."
        )

    def with_checkpoint(self, last_checkpoint: Path | None) -> NonFiniteLossError:
        """The same error, naming the last good checkpoint."""
        return NonFiniteLossError(self.step, self.what, self.value, last_checkpoint)


@dataclass(frozen=True)
class StepResult:
    """What one step reports: the loss averaged over processes (nats per EDA step), the lr used."""

    loss: float
    lr: float


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


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when `bf16`; otherwise nothing."""
    if device.type == "cuda" and bf16:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batch_to_device(batch: Mapping[str, Any], device: torch.device) -> tuple[torch.Tensor, ...]:
    """(mfcc (B, C_in, frames, n_mfcc), eda_prev (B, C_out, T), target (B, C_out, T)) on `device`."""
    nb = device.type == "cuda"
    return tuple(batch[k].to(device, non_blocking=nb) for k in ("mfcc", "eda_prev", "target"))


def memory_to_device(batch: Mapping[str, Any], device: torch.device) -> torch.Tensor | None:
    """The windows' EDA memory (B, C_out * memory features, T) on `device`, or None when the items
    carry none (no `model.eda_memory_seconds`, no `model.eda_trend_lags`)."""
    memory = batch.get("eda_memory")
    return None if memory is None else memory.to(device, non_blocking=device.type == "cuda")


def window_loader(
    dataset: Dataset, batches: list[list[int]], num_workers: int, seed: int, device: torch.device
) -> DataLoader:
    """A DataLoader over the given index batches; its own generator leaves the global RNG alone."""
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=device.type == "cuda",
    )


def own_samples(
    model: nn.Module,
    mfcc: torch.Tensor,
    eda_prev: torch.Tensor,
    share: float,
    sampling: SamplingConfig | None = None,
    eda_memory: torch.Tensor | None = None,
) -> torch.Tensor:
    """eda_prev with a random `share` of its values (after the first) replaced by the model's
    own sample of them: a gradient-free teacher-forced pass gives each step's distribution,
    one level is drawn per step with the `sampling` settings generation uses (default: the
    whole distribution; `Wavenet._sample`, torch's global generator) and the value of
    step t-1 the model reads at step t becomes that draw where a coin says so. Generation reads
    only its own draws; this shows the model some of them, with the real trace as the target.
    """
    from wavenet_lib.models.quantization import dequantize

    net = cast("Wavenet", unwrap_model(model))
    was_training = net.training
    net.eval()  # the distribution generation draws from (no dropout)
    try:
        with torch.no_grad():
            logits = net(mfcc, eda_prev, eda_memory=eda_memory)  # (B, Q, C, T)
    finally:
        net.train(was_training)
    with torch.no_grad():
        b, q, c, t = logits.shape
        flat = logits.permute(0, 3, 1, 2).reshape(b * t, q, c)
        s = sampling or SamplingConfig()
        drawn = net._sample(flat, s.temperature, False, None, s.top_p, s.min_prob)
        drawn = drawn.view(b, t, c).permute(0, 2, 1)
        value = dequantize(drawn, q, eda_prev.dtype)  # (B, C, T): the draw for step t
        swap = torch.rand(eda_prev[..., 1:].shape).to(eda_prev.device) < share
        mixed = eda_prev.clone()
        mixed[..., 1:] = torch.where(swap, value[..., :-1], eda_prev[..., 1:])
    return mixed


def drop_audio(mfcc: torch.Tensor, share: float, num_mfccs: int | None = None) -> torch.Tensor:
    """Replace the MFCC of about `share` of the windows by the silent input (`silent_mfcc_like`).

    Args:
        mfcc: (B, C_in, frames, F) a batch of windows.
        share: the probability that a window's audio is dropped, in [0, 1] (1: every window).
        num_mfccs: the MFCC columns (later columns are contrasts, silent at 0).

    Returns:
        A new tensor (the batch is not changed in place); which windows are dropped is drawn from
        torch's global CPU generator, one draw per window, so a resumed run drops the same ones.
    """
    drop = torch.rand(mfcc.shape[0]) < share  # the CPU stream on any device: one to restore
    if not bool(drop.any()):
        return mfcc
    out = mfcc.clone()
    dropped = drop.to(mfcc.device)
    out[dropped] = silent_mfcc_like(mfcc[dropped], num_mfccs)
    return out


def train_step(
    model: nn.Module,
    batch: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    *,
    first_full_step: int,
    grad_clip: float | None,
    bf16: bool = True,
    env: DistEnv | None = None,
    step: int = 0,
    history_noise: float = 0.0,
    scheduled_sampling: float = 0.0,
    sampling: SamplingConfig | None = None,
    audio_dropout: float = 0.0,
) -> StepResult:
    """One optimisation step on one batch of windows.

    Args:
        model: the model (possibly DDP-wrapped), in training mode.
        batch: {"mfcc": (B, C_in, frames, n_mfcc), "eda_prev": (B, C_out, T), "target": (B, C_out, T)},
            and "loss_weight" (B,) with `data.event_oversampling`: each window's mean loss is
            weighted by it.
        optimizer, scheduler: stepped once each.
        first_full_step: the loss covers steps t >= first_full_step.
        grad_clip: max gradient norm, or None for no clipping.
        bf16: autocast to bf16 on CUDA.
        env: the process group (the loss is averaged over processes).
        step: steps taken before this one (for the error message).
        history_noise: sd (normalized units) of Gaussian noise added to eda_prev, not to the
            targets (`train.history_noise_levels`); drawn from torch's global generator, whose
            state checkpoints keep, so a resumed run draws the same noise.
        scheduled_sampling: share of eda_prev values replaced by the model's own sample of them
            (`train.scheduled_sampling`; `own_samples`), drawn with `sampling` (the config's
            `sampling` section).
        audio_dropout: share of the windows whose MFCC is replaced by `silent_mfcc_like` of it
            (`train.audio_dropout`); which windows is drawn from torch's global generator.

    Raises:
        NonFiniteLossError: the loss or gradient norm is NaN/inf; nothing was updated. Every
            process sees the same mean loss, so all raise together.
    """
    env = env or DistEnv()
    device = next(model.parameters()).device
    mfcc, eda_prev, target = batch_to_device(batch, device)
    memory = memory_to_device(batch, device)  # the real history's, also under noise or own samples
    if audio_dropout > 0:
        mfcc = drop_audio(mfcc, audio_dropout, cast("Wavenet", unwrap_model(model)).config.num_mfccs)
    if scheduled_sampling > 0:
        eda_prev = own_samples(model, mfcc, eda_prev, scheduled_sampling, sampling, memory)
    if history_noise > 0:
        noise = torch.randn(eda_prev.shape).to(device)  # the CPU stream on any device: one to restore
        eda_prev = eda_prev + history_noise * noise
    with autocast(device, bf16):  # log P(target) of the scored steps (Wavenet.forward with a target)
        log_p = model(mfcc, eda_prev, target=target, first_step=first_full_step, eda_memory=memory)
    if "loss_weight" in batch:  # data.event_oversampling: each window's loss by its weight
        weight = batch["loss_weight"].to(device=device, dtype=torch.float32)
        loss = -(log_p.float().flatten(1).mean(1) * weight).mean()
    else:
        loss = -log_p.float().mean()
    mean_loss = float(all_reduce_sum(loss.detach().double().clone(), env)) / env.world_size
    if not math.isfinite(mean_loss):
        raise NonFiniteLossError(step + 1, "the training loss", mean_loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        params = [p for p in model.parameters() if p.requires_grad]
        norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip))
        if not math.isfinite(norm):
            raise NonFiniteLossError(step + 1, "the gradient norm", norm)
    lr = float(optimizer.param_groups[0]["lr"])
    optimizer.step()
    scheduler.step()
    return StepResult(loss=mean_loss, lr=lr)


def validation_loss(
    model: nn.Module,
    dataset: Dataset,
    first_full_step: int,
    batch_size: int,
    max_batches: int | None = None,
    device: torch.device | str = "cpu",
    bf16: bool = True,
    env: DistEnv | None = None,
    num_workers: int = 0,
    silent_audio: bool = False,
) -> float:
    """Mean cross-entropy in nats per EDA step (masked as in training) over the first windows.

    Takes the first `max_batches * batch_size` windows of `dataset` in order (all of them for
    None), split across processes when distributed; every process returns the same value.
    `silent_audio`: every window reads the silent input (`silent_mfcc_like`), as an audio-blind
    model (`train.audio_dropout: 1`) trained on it.
    """
    env = env or DistEnv()
    device = torch.device(device)
    model = unwrap_model(model)
    size = len(cast(Sized, dataset))
    n = size if max_batches is None else min(size, max_batches * batch_size)
    mine = list(range(n))[env.rank :: env.world_size]
    local_b = max(1, batch_size // env.world_size)
    batches = [mine[i : i + local_b] for i in range(0, len(mine), local_b)]
    totals = torch.zeros(2, dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in window_loader(dataset, batches, num_workers, 0, device):
                mfcc, eda_prev, target = batch_to_device(batch, device)
                if silent_audio:
                    mfcc = silent_mfcc_like(mfcc, cast("Wavenet", model).config.num_mfccs)
                memory = memory_to_device(batch, device)
                with autocast(device, bf16):
                    log_p = model(
                        mfcc, eda_prev, target=target, first_step=first_full_step, eda_memory=memory
                    )
                totals[0] -= log_p.double().sum()
                totals[1] += target[..., first_full_step:].numel()
    finally:
        model.train(was_training)
    all_reduce_sum(totals, env)
    if totals[1] == 0:
        raise ValueError("validation set is empty")
    return float(totals[0] / totals[1])
