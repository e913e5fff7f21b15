"""The model's output head: attention pooling of each EDA step's frames and the distribution of
the next level relative to the previous one (`Downsampler`), and the head's weights laid out for
the compiled generation step (`HeadWeights`)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Downsampler", "HeadWeights"]


class HeadWeights(NamedTuple):
    """`Wavenet.head_params` (the head up to `Downsampler.to_levels`) as time-major matrices.

    Frames are rows: `relu(skips) @ w1` is the post-net's first 1×1 with the skip scale folded
    in (ReLU commutes with a positive scale). Per EDA signal o, frame f of a step scores
    `h @ score[:, o] + score_bias[o] + position[o, f]`, the step's frames are softmax-pooled, and
    `pooled @ proj[o] + proj_bias[o]` are its P head parameters (`Downsampler.to_levels`).
    """

    w1: torch.Tensor  # (S, D)
    b1: torch.Tensor  # (D,)
    w2: torch.Tensor  # (D, D)
    b2: torch.Tensor  # (D,)
    score: torch.Tensor  # (D, C_out)
    score_bias: torch.Tensor  # (C_out,)
    position: torch.Tensor  # (C_out, spf)
    proj: torch.Tensor  # (C_out, D, P)
    proj_bias: torch.Tensor  # (C_out, P)


class Downsampler(nn.Module):
    """Attention pooling of each EDA step's spf frames, then the logits over levels.

    One attention head per EDA signal scores every frame (learned 1×1 plus a learned bias per
    position inside the step), softmaxes over the step's spf frames and pools them. Pooling is
    linear in the values, so projecting pooled vectors equals pooling per-frame projections
    (the textbook order) at 1/spf of the cost.

    The projection gives P head parameters per step and signal, which `to_levels` turns into
    logits over the Q absolute levels (B, Q, C_out, T), always *relative to the previous step's
    level*: EDA moves slowly, so "stay near the last level" and "rise by a few levels after a
    loud onset" are single, level-independent patterns to learn instead of Q separate ones.
    Two heads (`WavenetConfig.head`):

    - ``relative_softmax``: P = 2Q - 1 free logits for the changes -(Q-1) .. Q-1, gathered into
      the Q absolute levels.
    - ``logistic_mixture``: P = 3K, a mixture of K logistics over the change of level (weights,
      means in levels, log-scales), discretized onto the Q levels as in PixelCNN++ (mass beyond
      either end folds into the edge level). The returned "logits" are exact log-probabilities.
      A few smooth components cannot put mass on isolated far levels, which a free 511-way
      softmax learns from noise and sampling then draws as one-step cliffs.

    Both start from a persistence prior (mass peaked on "no change", a scale of max(1, Q/64)
    levels), so training spends its steps on what the audio adds.
    """

    def __init__(
        self,
        channels: int,
        factor: int,
        out_channels: int,
        levels: int,
        head: str = "relative_softmax",
        components: int = 4,
    ) -> None:
        super().__init__()
        self.factor, self.levels, self.head, self.components = factor, levels, head, components
        self.scale = max(1.0, levels / 64)  # prior scale of a change, in levels
        params = 2 * levels - 1 if head == "relative_softmax" else 3 * components
        if head not in ("relative_softmax", "logistic_mixture"):
            raise ValueError(f"head must be 'relative_softmax' or 'logistic_mixture', got {head!r}")
        self.score = nn.Conv1d(channels, out_channels, 1)
        self.position = nn.Parameter(torch.zeros(out_channels, factor))
        self.proj_weight = nn.Parameter(torch.empty(out_channels, params, channels))
        self.proj_bias = nn.Parameter(torch.zeros(params, out_channels))
        nn.init.kaiming_uniform_(self.proj_weight, a=math.sqrt(5))
        with torch.no_grad():
            if head == "relative_softmax":
                # A Laplace over changes of level: little mass on far jumps from the start.
                change = torch.arange(2 * levels - 1) - (levels - 1)
                self.proj_bias.copy_((-change.abs() / self.scale)[:, None].expand(-1, out_channels))
            else:
                # Equal weights, means spread over ±1 prior scale, scales of one prior scale.
                k = components
                self.proj_weight[:, k : 2 * k].mul_(0.1)
                self.proj_bias[k : 2 * k] = torch.linspace(-1.0, 1.0, k)[:, None] if k > 1 else 0.0
                self.proj_bias[2 * k :] = math.log(self.scale)
        # change index for (level q, previous level k) is q - k + Q - 1
        self.register_buffer("levels_range", torch.arange(levels), persistent=False)

    def to_levels(self, params: torch.Tensor, prev_level: torch.Tensor) -> torch.Tensor:
        """(B, P, C_out, T) head parameters + (B, C_out, T) previous levels → (B, Q, C_out, T) logits."""
        if self.head == "relative_softmax":
            idx = self.levels_range[None, :, None, None] - prev_level[:, None] + (self.levels - 1)
            return torch.gather(params, 1, idx)
        return self.mixture_log_probs(params, prev_level)

    def target_log_probs(
        self, params: torch.Tensor, prev_level: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """log P(target level) (B, C_out, T): the log-softmax of `to_levels` at the target.

        The training loss needs only this. The mixture head computes it for the target level
        alone (K logistics per step instead of Q·K: its masses already sum to one over the
        levels), the softmax head from all Q logits, which it must normalize over.
        """
        if self.head == "relative_softmax":
            logits = self.to_levels(params, prev_level)
            dtype = torch.promote_types(logits.dtype, torch.float32)  # bf16 logits: normalized in fp32
            return torch.log_softmax(logits, dim=1, dtype=dtype).gather(1, target[:, None]).squeeze(1)
        return self._mixture_log_mass(params, prev_level, target[:, None])[:, 0]

    def mixture_log_probs(self, params: torch.Tensor, prev_level: torch.Tensor) -> torch.Tensor:
        """Discretized logistic mixture over the change of level: (B, 3K, C_out, T) → (B, Q, C_out, T).

        Level q takes the mixture's mass on changes in [q - prev - 1/2, q - prev + 1/2]; levels 0
        and Q-1 also take the tails beyond them. With a = (d + 1/2 - µ)/s and b = (d - 1/2 - µ)/s,
        σ(a) - σ(b) = σ(a) σ(-b) (1 - e^(b-a)) gives the log-mass without cancellation.
        """
        return self._mixture_log_mass(params, prev_level, self.levels_range[None, :, None, None])

    def _mixture_log_mass(
        self, params: torch.Tensor, prev_level: torch.Tensor, level: torch.Tensor
    ) -> torch.Tensor:
        """log P(level) under the mixture, (B, L, C_out, T), for levels (B or 1, L, C_out or 1, T or 1)."""
        k = self.components
        params = params.float()
        logit_w = params[:, :k]  # (B, K, C, T)
        mean = params[:, k : 2 * k] * self.scale
        log_s = params[:, 2 * k :].clamp(min=-4.0, max=math.log(self.levels))
        change = (level - prev_level[:, None]).float()  # (B, L, C, T)
        inv_s = torch.exp(-log_s)[:, None]  # (B, 1, K, C, T)
        centred = change[:, :, None] - mean[:, None]  # (B, L, K, C, T)
        a = (centred + 0.5) * inv_s
        b = (centred - 0.5) * inv_s
        lower = F.logsigmoid(a)  # log σ(a): all mass below the level's upper edge
        upper = F.logsigmoid(-b)  # log σ(-b): all mass above its lower edge
        interior = lower + upper + torch.log(-torch.expm1(-inv_s))
        edge = level[:, :, None]
        log_mass = torch.where(edge == 0, lower, torch.where(edge == self.levels - 1, upper, interior))
        log_w = torch.log_softmax(logit_w, dim=1)[:, None]
        return torch.logsumexp(log_mass + log_w, dim=2)  # (B, L, C, T)

    def params(self, h: torch.Tensor) -> torch.Tensor:
        """(B, D, T*spf) post-net output → (B, P, C_out, T) head parameters of every step."""
        return self.params_rows(h.transpose(1, 2))

    def params_rows(self, h: torch.Tensor) -> torch.Tensor:
        """`params` of the post-net output given as time-major rows (B, T*spf, D)."""
        b, frames, d = h.shape
        t = frames // self.factor
        rows = h.reshape(b, t, self.factor, d)
        scores = F.linear(rows, self.score.weight[:, :, 0], self.score.bias)  # (B, T, spf, C_out)
        attn = torch.softmax(scores.permute(0, 3, 1, 2) + self.position[:, None, :], dim=-1)
        pooled = torch.einsum("bcts,btsd->bctd", attn, rows)
        return torch.einsum("bctd,cpd->bpct", pooled, self.proj_weight) + self.proj_bias[None, :, :, None]

    def forward(self, h: torch.Tensor, prev_level: torch.Tensor) -> torch.Tensor:
        return self.to_levels(self.params(h), prev_level)  # (B, Q, C_out, T)
