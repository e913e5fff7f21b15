"""The WaveNet's building blocks: the gated activation, one residual layer, one stack of them.

A residual layer is a dilated causal convolution (kernel 2) of the residual stream, a gated
activation conditioned on the upsampled EDA (`Gate`), a 1×1 back to the residual width and
a 1×1 to the skip width. Each layer also exposes its weights time-major (`step_weights`) and
one-step update (`step`) for fast generation (`wavenet_lib.models.incremental`).
`WavenetStack` chains `layers_per_stack` of them with dilations 1, 2, ..., 2^(L-1);
`wavenet_lib.models.wavenet.Wavenet` chains the stacks.

**Two layouts of the same layer.** `forward` is the textbook one: (B, channels, frames)
tensors through `nn.Conv1d`. `forward_rows` computes the same function on time-major rows
(B, frames, channels): each tap of the dilated conv and each 1×1 is one matrix product on the
conv's own weights, so the parameters, checkpoints and the incremental path are shared. The
network runs `forward_rows`: on a CPU, small-channel convolutions spend more time converting
layouts than multiplying, and the row layout trains the quickstart model about 1.3× faster
(with `dropout_rows`; `benchmarks/training.py` measures both side by side). A test checks that
both layouts give the same logits and gradients.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wavenet_lib.configs import WavenetConfig

__all__ = ["Gate", "StepWeights", "ResidualLayer", "WavenetStack", "time_major", "dropout_rows"]


def dropout_rows(z: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout (zero each value with probability p, scale the rest by 1/(1-p)), as `F.dropout`.

    On a CPU the mask's uniform numbers come from numpy's PCG64 instead of torch's Mersenne
    Twister, which draws one number per element: for the quickstart model's 300,000 gated
    activations per layer and batch that took about 3 ms, a sixth of a training step, against
    0.9 ms. numpy's generator is seeded by one draw from torch's default generator, so
    `torch.manual_seed` and the checkpointed RNG state still make training repeat exactly.
    Other devices, and code being compiled by torch.compile (which would break its graph at the
    numpy call), use `F.dropout`.
    """
    if not training or p == 0.0:
        return z
    if z.device.type != "cpu" or torch.compiler.is_compiling():
        return F.dropout(z, p, training=True)
    seed = int(torch.randint(0, 2**62, (1,)).item())
    uniform = np.random.default_rng(seed).random(tuple(z.shape), dtype=np.float32)
    keep = torch.from_numpy(uniform) >= p
    return z * keep * (1.0 / (1.0 - p))


class Gate(nn.Module):
    """tanh(Wf x + Vf c) ⊙ σ(Wg x + Vg c), with c the upsampled EDA.

    Wf x and Wg x arrive stacked as `h` (B, 2G, F) from the layer's dilated conv (the textbook 1×1
    convs on the dilated output are linear after a linear conv, so they are folded into it);
    this module holds the conditioning projections Vf, Vg.
    """

    def __init__(self, gate_channels: int, cond_channels: int) -> None:
        super().__init__()
        self.cond = nn.Conv1d(cond_channels, 2 * gate_channels, 1)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.activate(h + self.cond(c))

    @staticmethod
    def activate(z: torch.Tensor) -> torch.Tensor:
        f, g = z.chunk(2, dim=1)
        return torch.tanh(f) * torch.sigmoid(g)  # (B, G, F)

    # The incremental path computes the same activation as 2σ(2f)σ(g) - σ(g) (tanh(f) = 2σ(2f) - 1):
    # one sigmoid for both halves (tanh is 3-4× slower than sigmoid on CPU), with the 2 of 2f
    # folded into the weights that produce f. `FOLD` scales the (f, g) halves of those weights.
    FOLD = (2.0, 1.0)

    @classmethod
    def fold(cls, w: torch.Tensor) -> torch.Tensor:
        """Scale the last dim's (f, g) halves of pre-activation weights or biases by `FOLD`."""
        f, g = w.chunk(2, dim=-1)
        return torch.cat([f * cls.FOLD[0], g * cls.FOLD[1]], dim=-1)

    @staticmethod
    def step_activate(h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Folded pre-activations h (n, 2G) → tanh(f)·σ(g) written to out (n, G); h is overwritten."""
        h.sigmoid_()  # [σ(2f) | σ(g)]
        s_f, s_g = h.chunk(2, dim=1)
        return torch.addcmul(-s_g, s_f, s_g, value=2.0, out=out)


def time_major(conv: nn.Conv1d, tap: int = 0) -> torch.Tensor:
    """A conv's weight at one tap as an (in, out) matrix: `rows @ W` is that tap on time-major rows."""
    return conv.weight[:, :, tap].t()


class StepWeights(NamedTuple):
    """One residual layer's parameters as time-major matrices for the incremental path.

    A block of n frames is an (n, channels) matrix, so `rows @ W` is a 1×1 conv and each tap of
    the dilated conv is one GEMM. Pre-activation weights are gate-folded (`Gate.fold`); the
    residual and skip matrices carry their bias as a last row, to be multiplied by a column of
    ones beside the gated activation z.
    """

    prev: torch.Tensor  # (R, 2G) tap on x[f - dilation]
    cur: torch.Tensor  # (R, 2G) tap on x[f]
    cond: torch.Tensor  # (cond, 2G) conditioning projection
    bias: torch.Tensor  # (2G,) dilated-conv bias + conditioning bias
    residual: torch.Tensor | None  # (G+1, R), None for the model's last layer
    skip: torch.Tensor  # (G+1, S)


class ResidualLayer(nn.Module):
    """Dilated causal conv (kernel 2) → Gate → 1×1 residual and 1×1 skip."""

    # Names the computation `step` does; a compiled kernel of it (models/fused_step.py) runs only
    # for layers whose STEP_KIND it implements, so changing `step` and this name is one edit.
    STEP_KIND = "gated-dilated-k2-residual-skip/v1"

    def __init__(
        self,
        residual: int,
        gate: int,
        skip: int,
        cond: int,
        dilation: int,
        dropout: float,
        has_residual: bool = True,
    ) -> None:
        super().__init__()
        self.dilation = dilation
        self.dilated = nn.Conv1d(residual, 2 * gate, kernel_size=2, dilation=dilation)
        self.gate = Gate(gate, cond)
        self.dropout = nn.Dropout(dropout)
        # The model's very last layer feeds only the skip sum: a residual output would be unused.
        self.residual = nn.Conv1d(gate, residual, 1) if has_residual else None
        self.skip = nn.Conv1d(gate, skip, 1)

    def conv(self, x: torch.Tensor) -> torch.Tensor:
        """Causal dilated conv over a whole sequence: pad dilation frames on the left."""
        return self.dilated(F.pad(x, (self.dilation, 0)))  # (B, 2G, F)

    def finish(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Given the dilated conv output h for frames x, apply gate, residual and skip."""
        z = self.dropout(self.gate(h, c))
        out = x if self.residual is None else x + self.residual(z)
        return out, self.skip(z)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.finish(x, self.conv(x), c)

    def forward_rows(
        self, x: torch.Tensor, cond: torch.Tensor, frames: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` on time-major rows, up to the skip 1×1.

        Args:
            x: (B*F, R) the residual stream, the F frames of each sequence in consecutive rows.
            cond: (B*F, 2G) this layer's conditioning projection `Gate.cond` of c, with the
                dilated conv's bias added.
            frames: F.

        Returns:
            (B*F, R) the next residual stream (x itself for the model's last layer) and the gated
            activation z (B*F, G) after dropout, for the skip 1×1.
        """
        w, r = self.dilated.weight, x.shape[1]
        earlier = F.pad(x.view(-1, frames, r), (0, 0, self.dilation, 0))[:, :frames].reshape(-1, r)
        pre = torch.addmm(torch.addmm(cond, x, w[:, :, 1].t()), earlier, w[:, :, 0].t())
        f, g = pre.chunk(2, dim=-1)
        z = dropout_rows(torch.tanh(f) * torch.sigmoid(g), self.dropout.p, self.training)
        if self.residual is None:
            return x, z
        return torch.addmm(x, z, self.residual.weight[:, :, 0].t()) + self.residual.bias, z

    def step_weights(self) -> StepWeights:
        """This layer's parameters in the incremental path's layout (see `StepWeights`)."""

        def with_bias(conv: nn.Conv1d) -> torch.Tensor:
            return torch.cat([time_major(conv), conv.bias[None]]).contiguous()

        return StepWeights(
            prev=Gate.fold(time_major(self.dilated, 0)).contiguous(),
            cur=Gate.fold(time_major(self.dilated, 1)).contiguous(),
            cond=Gate.fold(time_major(self.gate.cond)).contiguous(),
            bias=Gate.fold(self.dilated.bias + self.gate.cond.bias),
            residual=None if self.residual is None else with_bias(self.residual),
            skip=with_bias(self.skip),
        )

    @staticmethod
    def step(
        w: StepWeights,
        pre: torch.Tensor,
        x: torch.Tensor,
        x_prev: torch.Tensor | None,
        z_aug: torch.Tensor,
        x_out: torch.Tensor | None,
    ) -> None:
        """`forward` for one block of n frames (eval mode), time-major and in place.

        Args:
            w: `step_weights()`.
            pre: (n, 2G) the pre-activation so far: conditioning projection and bias, plus, if
                x_prev is None, the dilated conv already applied (audio-only first layer).
                Overwritten.
            x: (n, R) the layer's input frames; x_prev: (n, R) the frames `dilation` earlier.
            z_aug: (n, G+1) output: the gated activation z, then a column of ones (kept), so
                that z_aug @ w.skip is the skip output with its bias.
            x_out: (n, R) output: x + the residual 1×1 of z (unused for the last layer).
        """
        if x_prev is not None:
            pre.addmm_(x_prev, w.prev).addmm_(x, w.cur)
        Gate.step_activate(pre, out=z_aug[:, :-1])
        if w.residual is not None:
            torch.addmm(x, z_aug, w.residual, out=x_out)


class WavenetStack(nn.Module):
    """`layers_per_stack` residual layers with dilations 1, 2, ..., 2^(L-1)."""

    def __init__(self, config: WavenetConfig, last: bool = False) -> None:
        super().__init__()
        n = config.layers_per_stack
        self.layers = nn.ModuleList(
            ResidualLayer(
                config.hidden_channels,
                config.gate_width,
                config.skip_width,
                config.condition_channels,
                dilation=2**i,
                dropout=config.dropout,
                has_residual=not (last and i == n - 1),
            )
            for i in range(n)
        )

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skips = 0
        for layer in self.layers:
            x, s = layer(x, c)
            skips = skips + s
        return x, skips
