"""The optimizer and its learning-rate schedule: AdamW with linear warm-up, then cosine decay."""

from __future__ import annotations

import math

import torch
from torch import nn

from wavenet_lib.configs import TrainConfig

__all__ = ["WarmupCosine", "build_optimizer"]


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
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
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
