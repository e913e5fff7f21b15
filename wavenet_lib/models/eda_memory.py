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

**Recent changes** (`model.eda_trend_lags`, e.g. [1, 2, 4]): for each lag k, the change of
level over the last k steps, level(eda_prev[t]) - level(eda_prev[t-k]) (the start level stands
in for steps before the clip's start), one number per lag and signal, after the slow memory's
numbers when both are on. The network's residual stream starts from the audio alone, and the
EDA enters only through each layer's gate at its own step, so a trend over several steps had
to be assembled by gates and dilated convolutions together: the quickstart sat on a plateau
for its first ~700 of 3,000 training steps before it did. Given the changes directly, it left
the plateau within 300 steps (notebook 05, docs/design.md).

It is a deterministic function of eda_prev[..., :t+1], so causality holds exactly, but it has
no finite receptive field on the past EDA: a window cut from a recording needs the memory of
the recording up to its start. Training windows therefore carry it precomputed over the whole
recording (`data/windows.py`), teacher-forced passes over whole clips compute it from their
own eda_prev (`Wavenet.forward`), and generation updates it step by step (`MemoryTracker` in
`models/incremental.py` and the reference path). One recurrence (`MemoryTracker.update`) does
all three, so they agree exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import torch

__all__ = ["MEMORY_FEATURES", "MemoryTracker", "eda_memory"]

MEMORY_FEATURES = 3  # per EDA signal: mean change, mean size of change (levels per step), coverage


class MemoryTracker:
    """The memory's recurrence, one step at a time.

    `update(level)` takes the levels of step t's previous EDA value, (B, C) int64, and returns
    the memory of step t, (B, C * features): with a slow memory (decay > 0), for each signal
    its mean change, its mean size of change and the coverage (C * MEMORY_FEATURES numbers),
    then, for each lag in `lags`, each signal's change of level over that many steps.
    """

    def __init__(
        self,
        batch: int,
        channels: int,
        decay: float,
        dtype: torch.dtype,
        device: torch.device,
        lags: Sequence[int] = (),
    ) -> None:
        if not (decay == 0.0 or 0.0 < decay < 1.0):
            raise ValueError(f"memory decay must be in (0, 1), or 0 for no slow memory, got {decay}")
        if any(int(k) < 1 for k in lags):
            raise ValueError(f"trend lags must be whole numbers of steps >= 1, got {list(lags)}")
        if decay == 0.0 and not lags:
            raise ValueError("a memory needs a decay in (0, 1), trend lags, or both")
        self.decay = decay
        self.lags = [int(k) for k in lags]
        self.sums = torch.zeros(batch, channels, 2, dtype=dtype, device=device)
        self.out = torch.empty(batch, channels, MEMORY_FEATURES, dtype=dtype, device=device)
        self.weight = 0.0
        self.coverage = 0.0
        self.last: torch.Tensor | None = None
        self.recent: deque[torch.Tensor] = deque(maxlen=max(self.lags, default=0) + 1)

    @property
    def features(self) -> int:
        """Numbers `update` returns per batch row: C * (MEMORY_FEATURES with a slow memory + lags)."""
        return self.out.shape[1] * ((MEMORY_FEATURES if self.decay > 0.0 else 0) + len(self.lags))

    def update(self, level: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.decay > 0.0:
            parts.append(self._slow(level))
        if self.lags:
            if not self.recent:  # before the clip's start the levels are the start level
                self.recent.extend([level] * self.recent.maxlen)  # type: ignore[operator]
            else:
                self.recent.append(level)
            changes = [level - self.recent[-1 - k] for k in self.lags]
            parts.append(torch.stack(changes, dim=-1).to(self.out.dtype).flatten(1))
        return torch.cat(parts, dim=1)  # a new tensor: the next update must not change it

    def _slow(self, level: torch.Tensor) -> torch.Tensor:
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
        return self.out.flatten(1)


def eda_memory(
    levels: torch.Tensor, decay: float, dtype: torch.dtype = torch.float32, lags: Sequence[int] = ()
) -> torch.Tensor:
    """The memory of every step of a clip: levels (B, C, T) int64 of eda_prev → (B, C * features, T).

    Step 0 of `levels` is the clip's first step (its eda_prev[..., 0], usually START_VALUE's level).
    features: MEMORY_FEATURES when decay > 0, plus one per lag.
    """
    b, c, steps = levels.shape
    tracker = MemoryTracker(b, c, decay, dtype, levels.device, lags)
    out = torch.empty(b, tracker.features, steps, dtype=dtype, device=levels.device)
    for t in range(steps):
        out[..., t] = tracker.update(levels[..., t])
    return out
