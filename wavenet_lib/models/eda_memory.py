"""The EDA memory: a slow, causal summary of the whole EDA history, read beside the receptive field.

A listener keeps one gain, one recovery speed and one tonic trend for a session; a model that
sees only its receptive field (6 s in the quickstart) forgets them, and each SCR of a sample is
drawn as if from a new person (the two-sample diagnosis in docs/design.md measures it: more
spread within a generated trace than within a real one, less between traces). With
`model.eda_memory_seconds` > 0 the network also reads, at step t, the exponentially weighted
means over the steps so far of

- the one-step change of level, d = level(eda_prev[t]) - level(eda_prev[t-1]) (the trend), and
- its size |d| (how active the trace has been: SCR sizes and rates),

in quantization levels per step, and the coverage 1 - decay^(t+1), the share of a full memory's
weight the steps so far hold (0 at a clip's start, 1 after several time constants), so the
network can tell a memory of a few steps from a settled one; each EDA signal on its own:
`MEMORY_FEATURES` numbers per signal. The weights decay by `config.memory_decay` per step (a
time constant of `eda_memory_seconds`) and are normalized by their sum, so early in a clip the
memory is the plain mean of the steps seen (no cold-start bias towards zero). d is 0 at step 0.

It is a deterministic function of eda_prev[..., :t+1], so causality holds exactly, but it has
no finite receptive field on the past EDA: a window cut from a recording needs the memory of
the recording up to its start. Training windows therefore carry it precomputed over the whole
recording (`data/windows.py`), teacher-forced passes over whole clips compute it from their
own eda_prev (`Wavenet.forward`), and generation updates it step by step (`MemoryTracker` in
`models/incremental.py` and the reference path). One recurrence (`MemoryTracker.update`) does
all three, so they agree exactly.
"""

from __future__ import annotations

import torch

__all__ = ["MEMORY_FEATURES", "MemoryTracker", "eda_memory"]

MEMORY_FEATURES = 3  # per EDA signal: mean change, mean size of change (levels per step), coverage


class MemoryTracker:
    """The memory's recurrence, one step at a time.

    `update(level)` takes the levels of step t's previous EDA value, (B, C) int64, and returns
    the memory of step t, (B, C * MEMORY_FEATURES): for each signal its mean change, its mean
    size of change and the coverage.
    """

    def __init__(
        self, batch: int, channels: int, decay: float, dtype: torch.dtype, device: torch.device
    ) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"memory decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.sums = torch.zeros(batch, channels, 2, dtype=dtype, device=device)
        self.out = torch.empty(batch, channels, MEMORY_FEATURES, dtype=dtype, device=device)
        self.weight = 0.0
        self.coverage = 0.0
        self.last: torch.Tensor | None = None

    def update(self, level: torch.Tensor) -> torch.Tensor:
        change = torch.zeros_like(level) if self.last is None else level - self.last
        self.last = level
        d = change.to(self.sums.dtype)
        self.sums.mul_(self.decay)
        self.sums[..., 0].add_(d)
        self.sums[..., 1].add_(d.abs())
        self.weight = self.weight * self.decay + 1.0
        self.coverage = self.coverage * self.decay + (1.0 - self.decay)  # = 1 - decay^(t+1)
        torch.div(self.sums, self.weight, out=self.out[..., :2])
        self.out[..., 2] = self.coverage
        return self.out.flatten(1).clone()  # the next update must not change what was returned


def eda_memory(levels: torch.Tensor, decay: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The memory of every step of a clip: levels (B, C, T) int64 of eda_prev → (B, C * 3, T).

    Step 0 of `levels` is the clip's first step (its eda_prev[..., 0], usually START_VALUE's level).
    """
    b, c, steps = levels.shape
    tracker = MemoryTracker(b, c, decay, dtype, levels.device)
    out = torch.empty(b, c * MEMORY_FEATURES, steps, dtype=dtype, device=levels.device)
    for t in range(steps):
        out[..., t] = tracker.update(levels[..., t])
    return out
