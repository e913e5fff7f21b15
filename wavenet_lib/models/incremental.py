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

if TYPE_CHECKING:
    from wavenet_lib.models.wavenet import Wavenet

__all__ = ["Stepper"]


class _History:
    """The last `dilation` input frames of one layer, in a buffer compacted every few steps."""

    def __init__(self, dilation: int, block: int, batch: int, width: int, like: torch.Tensor) -> None:
        self.d, self.n = dilation, block
        steps = max(2, -(-2 * dilation // block))  # room for >= 2*d frames of blocks: no overlap
        self.buf = like.new_zeros(dilation + steps * block, batch, width)  # (frames, B, R)
        self.pos = dilation  # where the next block goes; zeros before it = causal padding

    def push(self, x: torch.Tensor) -> torch.Tensor:
        """Store the block x (n, B, R); return the frames `dilation` earlier, (n*B, R)."""
        d, n = self.d, self.n
        if self.pos + n > self.buf.shape[0]:
            self.buf[:d] = self.buf[self.pos - d : self.pos]  # source starts at >= d: disjoint
            self.pos = d
        self.buf[self.pos : self.pos + n] = x
        prev = self.buf[self.pos - d : self.pos - d + n]
        self.pos += n
        return prev.reshape(n * x.shape[1], -1)


class Stepper:
    """Runs `model` incrementally over one clip: call `step(t, eda_prev_t)` for t = 0, 1, ..."""

    def __init__(self, model: Wavenet, mfcc: torch.Tensor) -> None:
        cfg = model.config
        self.model = model
        self.n = n = model.spf
        self.batch = b = mfcc.shape[0]
        layers = model.layers
        self.num_layers = len(layers)
        self.gate = g = cfg.gate_width
        self.dilations = [layer.dilation for layer in layers]

        # Audio-only work, once for the clip: x0 and the first layer's dilated conv, time-major.
        x0 = model.embed_audio(mfcc)  # (B, R, F)
        h0 = layers[0].conv(x0)  # (B, 2G, F)
        steps = x0.shape[2] // n
        self.x0 = x0.permute(2, 0, 1).reshape(steps, n * b, -1)  # (T, n*B, R): one block per step
        self.h0 = h0.permute(2, 0, 1).reshape(steps, n * b, -1)  # (T, n*B, 2G)

        # Fused weights, (in, out) so that rows @ W is the 1×1 conv.
        self.w_prev = [layer.dilated.weight[:, :, 0].t().contiguous() for layer in layers]
        self.w_cur = [layer.dilated.weight[:, :, 1].t().contiguous() for layer in layers]
        cond_w = torch.stack([layer.gate.cond.weight[:, :, 0].t() for layer in layers])  # (L, cond, 2G)
        cond_b = torch.stack([layer.gate.cond.bias + layer.dilated.bias for layer in layers])
        cond_b[0] = layers[0].gate.cond.bias  # layer 0's conv bias is already inside h0
        # Double the tanh half of every pre-activation (see the gate in `step`).
        double = torch.ones(2 * g, dtype=x0.dtype, device=x0.device)
        double[:g] = 2.0
        self.w_prev = [w * double for w in self.w_prev]
        self.w_cur = [w * double for w in self.w_cur]
        self.h0 = self.h0 * double
        self.cond_w = (cond_w * double).contiguous()
        self.cond_b = (cond_b * double)[:, None, :].contiguous()
        self.res = [
            None
            if layer.residual is None
            else (layer.residual.weight[:, :, 0].t().contiguous(), layer.residual.bias)
            for layer in layers
        ]
        self.skip_w = torch.cat([layer.skip.weight[:, :, 0].t() for layer in layers]) * model.skip_scale
        self.skip_b = sum(layer.skip.bias for layer in layers) * model.skip_scale

        like = x0
        self.history = [
            None if i == 0 else _History(d, n, b, cfg.hidden_channels, like)
            for i, d in enumerate(self.dilations)
        ]
        self.z = like.new_empty(n * b, self.num_layers * g)

        up = model.upsampler
        self.up_w = up.expand.weight.permute(2, 0, 1).contiguous()  # (spf, C_out, cond)
        self.up_b = up.expand.bias
        self.mix_w, self.mix_b = up.mix.weight[:, :, 0].t().contiguous(), up.mix.bias
        post = [m for m in model.postnet if isinstance(m, torch.nn.Conv1d)]
        self.post = [(m.weight[:, :, 0].t().contiguous(), m.bias) for m in post]
        ds = model.downsampler
        self.score_w, self.score_b = ds.score.weight[:, :, 0].t().contiguous(), ds.score.bias
        self.position = ds.position.t().contiguous()  # (spf, C_out)
        self.proj_w = ds.proj_weight.transpose(1, 2).contiguous()  # (C_out, D, Q)
        self.proj_b = ds.proj_bias.t()[:, None, :].contiguous()  # (C_out, 1, Q)

    def step(self, t: int, eda_prev_t: torch.Tensor) -> torch.Tensor:
        """Logits (B, Q, C_out) of step t given the EDA value before it, eda_prev_t (B, C_out)."""
        n, b, g = self.n, self.batch, self.gate

        # Causal upsampler for this step only: (n, B, cond) → conditioning of every layer.
        c = torch.relu(torch.matmul(eda_prev_t.to(self.up_w.dtype), self.up_w) + self.up_b)  # (n, B, cond)
        c = torch.addmm(self.mix_b, c.reshape(n * b, -1), self.mix_w)  # (n*B, cond)
        cond = torch.baddbmm(self.cond_b, c.expand(self.num_layers, -1, -1), self.cond_w)  # (L, n*B, 2G)

        x = self.x0[t]  # (n*B, R)
        for i in range(self.num_layers):
            if i == 0:
                h = self.h0[t] + cond[0]
            else:
                prev = self.history[i].push(x.view(n, b, -1))
                h = torch.addmm(cond[i], prev, self.w_prev[i])
                h.addmm_(x, self.w_cur[i])
            z = self.z[:, i * g : (i + 1) * g]
            # tanh(f)·σ(g) as (2σ(2f) - 1)·σ(g) = 2σ(2f)σ(g) - σ(g): the f-half of h was
            # pre-doubled in the weights, so one sigmoid covers both halves (tanh is ~3× slower).
            s = torch.sigmoid(h)
            torch.addcmul(torch.neg(s[:, g:]), s[:, :g], s[:, g:], value=2.0, out=z)
            if self.res[i] is not None:
                w, bias = self.res[i]
                x = torch.addmm(x, z, w).add_(bias)

        s = torch.addmm(self.skip_b, self.z, self.skip_w)  # (n*B, S): all skip 1×1s in one GEMM
        h = torch.relu(s)
        for w, bias in self.post:
            h = torch.relu(torch.addmm(bias, h, w))
        scores = torch.addmm(self.score_b, h, self.score_w).view(n, b, -1) + self.position[:, None, :]
        attn = torch.softmax(scores, dim=0)  # (n, B, C_out) over the step's frames
        pooled = torch.bmm(attn.permute(1, 2, 0), h.view(n, b, -1).transpose(0, 1))  # (B, C_out, D)
        logits = torch.baddbmm(self.proj_b, pooled.transpose(0, 1), self.proj_w)  # (C_out, B, Q)
        return logits.permute(1, 2, 0)  # (B, Q, C_out)
