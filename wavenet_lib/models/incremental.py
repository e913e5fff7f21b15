"""Fast WaveNet generation: one EDA step at a time through every layer, with per-layer caches.

`Wavenet.forward` works channel-first over whole sequences. Generation instead advances one EDA
step (its `spf` frames) at a time, so each step must cost as few PyTorch calls as possible:

- Time-major, flattened layout: a block of n frames for batch B is an (n*B, C) matrix, so every
  1×1 conv and each tap of a dilated conv is one GEMM on a contiguous slice.
- The two taps of a layer's dilated conv read x[f - d] from a preallocated history buffer and
  x[f] from the block itself: no concatenation per step (the buffer is compacted once every few
  steps).
- Work that depends on audio only (input projection and the first layer's dilated conv) is done
  once for the whole clip.

The computation of each part is the model's own: `Upsampler.step` gives the step's
conditioning, `ResidualLayer.step_weights` / `ResidualLayer.step` each layer (time-major, gate
folded as `Gate.step_activate` defines), and `Wavenet.logits_from_skips` everything after the
skip sum. This module only lays out buffers and batches what is linear across layers: the
conditioning projections of all layers are one batched matmul per step, and the skip 1×1s of
all layers are one GEMM over every layer's activations side by side. A compiled kernel of the
layer loop and the head (`models/fused_step.py`) replaces `_layers` and `head_params` when it
is available. A step reads the previous EDA value as its quantization level, the only way the
model sees it.

The weights are read from the model at construction, so a `Stepper` built after
`load_state_dict` never sees stale parameters; `Wavenet.generate` builds a new one per call.
The tests hold its logits equal to `Wavenet.forward` on the generated sequence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from wavenet_lib.models.eda_memory import MemoryTracker
from wavenet_lib.models.fused_step import fused_layers_for

if TYPE_CHECKING:
    from wavenet_lib.models.wavenet import Wavenet

__all__ = ["Stepper", "MIN_ROWS_PER_THREAD"]

# A step's rows (frames × batch) are split over threads only when each thread gets this many:
# a batch-1 step has 25 rows, and its ~30 small PyTorch calls (or the compiled layers' one
# barrier per layer) cost more in thread synchronisation than they save — 40× more for the head's
# calls when other processes compete for the cores.
MIN_ROWS_PER_THREAD = 128


class _History:
    """One layer's input frames: the current block and the `dilation` frames before it.

    The buffer holds several blocks; each step takes the next slot, whose views are precomputed:
    `cur` (n*B, R), where the previous layer writes this layer's input, and `prev` (n*B, R), the
    frames `dilation` earlier. When the slots run out, the last `dilation` frames are copied to
    the front (every few steps, not every step). Zeros before the first block are the causal
    padding of the full forward.
    """

    def __init__(self, dilation: int, block: int, batch: int, width: int, like: torch.Tensor) -> None:
        d, n = dilation, block
        blocks = max(2, -(-2 * d // n))  # >= 2*d frames of blocks: the compaction copy never overlaps
        self.buf = like.new_zeros(d + blocks * n, batch, width)  # (frames, B, R)
        buf = self.buf
        self.slots = [
            (buf[p : p + n].view(n * batch, width), buf[p - d : p - d + n].view(n * batch, width))
            for p in range(d, d + blocks * n, n)
        ]
        self.tail = buf[blocks * n :]  # the last d frames of the buffer
        self.head = buf[:d]
        self.next = 0

    def advance(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Views (cur, prev) for the next block."""
        if self.next == len(self.slots):
            self.head.copy_(self.tail)
            self.next = 0
        slot = self.slots[self.next]
        self.next += 1
        return slot


class Stepper:
    """Runs `model` incrementally over one clip: call `step(t, eda_prev_t)` for t = 0, 1, ..."""

    def __init__(self, model: Wavenet, mfcc: torch.Tensor) -> None:
        self.model = model
        n = self.n = model.spf
        b = self.batch = mfcc.shape[0]
        self.threads = max(1, min(torch.get_num_threads(), n * b // MIN_ROWS_PER_THREAD))
        layers = model.layers
        self.layers = layers
        self.weights = w = [layer.step_weights() for layer in layers]
        self.num_layers = len(layers)

        # Audio-only work, once for the clip: x0 and the first layer's dilated conv, time-major.
        x0 = model.embed_audio_frames(mfcc)  # (F, B, R)
        steps, shift = x0.shape[0] // n, layers[0].dilation * b  # rows of `dilation` frames
        rows = x0.view(-1, x0.shape[2])  # (F*B, R)
        h0 = torch.mm(rows, w[0].cur)  # tap on x[f]; the tap on x[f - d] is zero for f < d
        if shift < rows.shape[0]:
            h0[shift:].addmm_(rows[:-shift], w[0].prev)
        self.x0 = x0.view(steps, n * b, -1)  # (T, n*B, R): one block per step
        self.h0 = h0.view(steps, n * b, -1)  # (T, n*B, 2G)

        # A step's conditioning by previous level, when it depends on nothing else (one signal).
        self.c_table = model.upsampler.step_table()  # (Q, n, cond) or None
        self.c_step = model.upsampler.level_stepper() if self.c_table is None else None
        # The EDA memory, updated with each step's previous level (models/eda_memory.py).
        self.memory = None
        if model.reads_memory:
            cfg, dtype = model.config, model.upsampler.expand.weight.dtype
            self.memory = MemoryTracker(
                b, cfg.out_channels, cfg.memory_decay, dtype, mfcc.device, cfg.eda_trend_lags
            )
        self.fused = fused_layers_for(self, mfcc)  # the layers compiled, when available
        if self.fused is None:  # buffers of the layers as PyTorch calls
            self._torch_buffers(w, n * b, x0)

    def _torch_buffers(self, w: list, rows: int, x0: torch.Tensor) -> None:
        num_layers, g = len(w), w[0].skip.shape[0] - 1
        # All layers' conditioning projections (and pre-activation biases) in one baddbmm.
        self.cond_w = torch.stack([wi.cond for wi in w])  # (L, cond, 2G)
        self.cond_b = torch.stack([wi.bias for wi in w])[:, None, :]  # (L, 1, 2G)
        self.pre = x0.new_empty(num_layers, rows, 2 * g)

        # Gated activations of all layers side by side, each followed by a column of ones:
        # z_aug_i = [z_i | 1], so one GEMM gives the sum of every layer's skip output and bias.
        self.z = x0.new_ones(rows, num_layers * (g + 1))
        self.z_aug = [self.z[:, i * (g + 1) : (i + 1) * (g + 1)] for i in range(num_layers)]
        self.skip_w = torch.cat([wi.skip for wi in w])  # (L*(G+1), S)
        self.history = [None] + [
            _History(layer.dilation, self.n, self.batch, x0.shape[2], x0) for layer in self.layers[1:]
        ]

    def _layers(self, t: int, c: torch.Tensor) -> torch.Tensor:
        """Conditioning rows c (n*B, cond) of step t → Σ skips (n*B, S), through every layer."""
        pre = torch.baddbmm(self.cond_b, c.expand(self.num_layers, -1, -1), self.cond_w, out=self.pre)
        slots = [hist.advance() for hist in self.history[1:]] + [(None, None)]
        pre[0].add_(self.h0[t])
        x, x_prev = self.x0[t], None  # layer 0's dilated conv is already in h0
        for i, w in enumerate(self.weights):
            x_out = slots[i][0]
            self.layers[i].step(w, pre[i], x, x_prev, self.z_aug[i], x_out)
            x, x_prev = slots[i]
        return torch.mm(self.z, self.skip_w)

    def step(self, t: int, prev_level: torch.Tensor) -> torch.Tensor:
        """Logits (B, Q, C_out) of step t given the quantization level of the EDA value before it,
        prev_level (B, C_out) int64.

        Runs on `self.threads` threads (torch's setting is restored on return; the setting is
        process-wide, so other Python threads see it meanwhile).
        """
        threads = torch.get_num_threads()
        if self.threads == threads:
            return self._step(t, prev_level)
        torch.set_num_threads(self.threads)
        try:
            return self._step(t, prev_level)
        finally:
            torch.set_num_threads(threads)

    def _step(self, t: int, prev_level: torch.Tensor) -> torch.Tensor:
        n, b = self.n, self.batch
        if self.c_step is not None:
            memory = None if self.memory is None else self.memory.update(prev_level)
            c = self.c_step(prev_level, memory)  # (n*B, cond)
            rows = self.fused(t, c) if self.fused else self._layers(t, c)
        elif self.fused:
            rows = self.fused(t, None, prev_level[:, 0])
        else:
            rows = self._layers(t, self.c_table[prev_level[:, 0]].transpose(0, 1).reshape(n * b, -1))
        if self.fused and self.fused.head:  # rows are the head parameters (B, C_out, P)
            params = rows.transpose(1, 2)[..., None]  # (B, P, C_out, 1)
            return self.model.downsampler.to_levels(params, prev_level[:, :, None])[..., 0]
        skips = rows.view(n, b, -1).permute(1, 2, 0)  # (B, S, n)
        return self.model.logits_from_skips(skips, prev_level[:, :, None])[..., 0]
