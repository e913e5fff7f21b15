"""Fast WaveNet generation: one EDA step at a time through every layer, with per-layer caches.

`Wavenet.forward` works channel-first over whole sequences. Generation instead advances one EDA
step (its `spf` frames) at a time, so each step must cost as few PyTorch calls as possible:

- Time-major, flattened layout: a block of n frames for batch B is an (n*B, C) matrix, so every
  1×1 conv and each tap of a dilated conv is one GEMM (`addmm`) on a contiguous slice.
- The two taps of a layer's dilated conv read x[f - d] from a preallocated history buffer and
  x[f] from the block itself: no concatenation per step (the buffer is compacted once every few
  steps).
- The conditioning projections of all layers are one batched matmul per step; every layer's
  gated activation is written into one (n*B, L*G) buffer, and all skip 1×1s are one GEMM.
- Work that depends on audio only (input projection and the first layer's dilated conv) is done
  once for the whole clip.

The weights are read from the model at construction, so a `Stepper` built after
`load_state_dict` never sees stale parameters; `Wavenet.generate` builds a new one per call.
The tests hold its logits equal to `Wavenet.forward` on the generated sequence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from wavenet_lib.models.quantization import quantize

if TYPE_CHECKING:
    from wavenet_lib.models.wavenet import Wavenet

__all__ = ["Stepper"]


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
        cfg = model.config
        n = self.n = model.spf
        b = self.batch = mfcc.shape[0]
        layers = model.layers
        num_layers = self.num_layers = len(layers)
        g = cfg.gate_width

        # Audio-only work, once for the clip: x0 and the first layer's dilated conv, time-major.
        # tanh(f)·σ(g) is computed as 2σ(2f)σ(g) - σ(g) (one sigmoid for both halves; tanh is
        # ~3× slower on CPU), so the f-half of every pre-activation is doubled in the weights.
        double = torch.ones(2 * g, dtype=mfcc.dtype, device=mfcc.device)
        double[:g] = 2.0
        x0 = model.embed_audio(mfcc)  # (B, R, F)
        h0 = layers[0].conv(x0)  # (B, 2G, F)
        steps = x0.shape[2] // n
        self.x0 = x0.permute(2, 0, 1).reshape(steps, n * b, -1)  # (T, n*B, R): one block per step
        self.h0 = (h0.permute(2, 0, 1) * double).reshape(steps, n * b, -1)  # (T, n*B, 2G)

        # Weights as (in, out) matrices so that rows @ W is the 1×1 conv.
        def mat(conv: torch.nn.Conv1d, tap: int = 0) -> torch.Tensor:
            return conv.weight[:, :, tap].t()

        self.w_prev = [(mat(layer.dilated, 0) * double).contiguous() for layer in layers]
        self.w_cur = [(mat(layer.dilated, 1) * double).contiguous() for layer in layers]
        cond_w = torch.stack([mat(layer.gate.cond) for layer in layers])  # (L, cond, 2G)
        cond_b = torch.stack([layer.gate.cond.bias + layer.dilated.bias for layer in layers])
        cond_b[0] = layers[0].gate.cond.bias  # layer 0's conv bias is already inside h0
        self.cond_w = (cond_w * double).contiguous()
        self.cond_b = (cond_b * double)[:, None, :].contiguous()  # (L, 1, 2G)
        self.cond = x0.new_empty(num_layers, n * b, 2 * g)

        # Gated activations of all layers side by side, each followed by a column of ones so that
        # the residual and skip GEMMs add their biases themselves: z_aug_i = [z_i | 1].
        self.z = x0.new_ones(n * b, num_layers * (g + 1))
        self.z_aug = [self.z[:, i * (g + 1) : (i + 1) * (g + 1)] for i in range(num_layers)]
        self.z_gate = [self.z[:, i * (g + 1) : i * (g + 1) + g] for i in range(num_layers)]
        self.res = [
            None if layer.residual is None else torch.cat([mat(layer.residual), layer.residual.bias[None]])
            for layer in layers
        ]  # (G+1, R)
        self.skip_w = (
            torch.cat([torch.cat([mat(layer.skip), layer.skip.bias[None]]) for layer in layers])
            * model.skip_scale
        )  # (L*(G+1), S)
        self.h = x0.new_empty(n * b, 2 * g)
        self.h_f, self.h_g = self.h[:, :g], self.h[:, g:]
        self.neg_g = x0.new_empty(n * b, g)

        self.history = [None] + [
            _History(layer.dilation, n, b, cfg.hidden_channels, x0) for layer in layers[1:]
        ]

        up = model.upsampler
        self.upsampler = up
        self.up_w = up.expand.weight.permute(2, 0, 1).contiguous()  # (spf, cond, cond)
        self.up_b = up.expand.bias
        self.mix_w, self.mix_b = mat(up.mix).contiguous(), up.mix.bias
        post = [m for m in model.postnet if isinstance(m, torch.nn.Conv1d)]
        self.post = [(mat(m).contiguous(), m.bias) for m in post]
        ds = model.downsampler
        self.score_w, self.score_b = mat(ds.score).contiguous(), ds.score.bias
        self.position = ds.position.t().contiguous()  # (spf, C_out)
        self.downsampler = ds
        self.proj_w = ds.proj_weight.transpose(1, 2).contiguous()  # (C_out, D, 2Q-1)
        self.proj_b = ds.proj_bias.t()[:, None, :].contiguous()  # (C_out, 1, 2Q-1)

    def step(self, t: int, eda_prev_t: torch.Tensor) -> torch.Tensor:
        """Logits (B, Q, C_out) of step t given the EDA value before it, eda_prev_t (B, C_out)."""
        n, b = self.n, self.batch

        # Causal upsampler for this step only: (n, B, cond) → conditioning of every layer.
        last = eda_prev_t[:, :, None]  # (B, C_out, 1)
        e = self.upsampler.embed_values(last)[:, 0]  # (B, cond)
        c = torch.relu(torch.matmul(e, self.up_w) + self.up_b)  # (n, B, cond)
        c = torch.addmm(self.mix_b, c.reshape(n * b, -1), self.mix_w)  # (n*B, cond)
        torch.baddbmm(self.cond_b, c.expand(self.num_layers, -1, -1), self.cond_w, out=self.cond)

        slots = [None] + [hist.advance() for hist in self.history[1:]]
        h, x = self.h, self.x0[t]  # x: this layer's input (n*B, R)
        for i in range(self.num_layers):
            if i == 0:
                torch.add(self.h0[t], self.cond[0], out=h)
            else:
                x, prev = slots[i]  # written by the previous layer's residual
                torch.addmm(self.cond[i], prev, self.w_prev[i], out=h)
                h.addmm_(x, self.w_cur[i])
            h.sigmoid_()  # [σ(2f) | σ(g)]
            torch.neg(self.h_g, out=self.neg_g)
            torch.addcmul(self.neg_g, self.h_f, self.h_g, value=2.0, out=self.z_gate[i])  # tanh(f)·σ(g)
            if self.res[i] is not None:
                torch.addmm(x, self.z_aug[i], self.res[i], out=slots[i + 1][0])

        h = torch.relu(torch.mm(self.z, self.skip_w))  # (n*B, S): every skip 1×1 in one GEMM
        for w, bias in self.post:
            h = torch.relu(torch.addmm(bias, h, w))
        scores = torch.addmm(self.score_b, h, self.score_w).view(n, b, -1) + self.position[:, None, :]
        attn = torch.softmax(scores, dim=0)  # (n, B, C_out) over the step's frames
        pooled = torch.bmm(attn.permute(1, 2, 0), h.view(n, b, -1).transpose(0, 1))  # (B, C_out, D)
        relative = torch.baddbmm(self.proj_b, pooled.transpose(0, 1), self.proj_w)  # (C_out, B, 2Q-1)
        prev_level = quantize(last, self.downsampler.levels)
        return self.downsampler.to_levels(relative.permute(1, 2, 0)[..., None], prev_level)[..., 0]
