"""The causal upsampler of past EDA to the audio's frame rate (the model's conditioning input)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wavenet_lib.models.quantization import level_centres, quantize

__all__ = ["Upsampler"]


class Upsampler(nn.Module):
    """Learned causal upsampler of past EDA to frame rate: (B, C_out, T) → (B, cond, T*spf).

    Each previous value is first embedded by its quantization level (a learned vector per level
    and EDA signal, summed over signals), as WaveNet embeds its previous sample: predicting a
    distribution peaked near the previous level is then easy, where a raw scalar would have to
    be unfolded into 256 bumps by the network. With `value_input`, the value itself (in levels
    around the middle, divided by `VALUE_LEVELS_PER_UNIT`) is added through a learned linear map:
    level embeddings are unrelated vectors, so the trend (the change over the last steps, which
    an EDA trace keeps for seconds) is hard to read from them, while from a linear input the
    dilated convolutions get it as a difference. A transposed conv with kernel = stride = spf
    then gives each of a step's spf frames its own learned mix of that step's embedding only,
    followed by a pointwise ReLU MLP. Frame f never sees eda_prev beyond step f // spf; a
    vocoder-style upsampler (kernel wider than stride) would let frames see the next step's
    value and leak future EDA.

    With `level_embedding=False` there is no embedding and the value enters through the linear
    map alone: the learned level vectors are unrelated to each other (neighbouring levels of a
    trained quickstart model have cosine similarity about 0.06), so a one-level flicker in the
    model's own samples moves the conditioning as far as any jump, while through the linear
    input it moves it by one level's worth. The relative head already centres the output on
    the previous level, which the embedding was first meant to make easy.

    With `memory_features` > 0 the EDA memory of each step (`models/eda_memory.py`: slow means
    of the change of level and of its size over the whole history, and their coverage) is added
    through another learned linear map, so every frame of the step carries it like the step's
    value. Its inputs are compressed as sign(m) log(1 + |m|) (a mean size of change runs from
    under one level per step to over ten; a few steps into a clip a mean change can be -6) and
    the slow memory's map starts at zero: a new model conditions as one without memory and
    learns how far to use it (with raw inputs and a default init, the trained map's norm was 2.8
    against the value input's 0.37, and the quickstart trained to a 0.15 nats worse
    cross-entropy). The recent changes of level (`trend_features`, the memory's last columns)
    are compressed alike but mapped from the start (uniform ±0.5): they are what the network
    should read first.
    """

    VALUE_LEVELS_PER_UNIT = 4.0  # a one-level change moves the value input by 0.25

    def __init__(
        self,
        out_channels: int,
        cond_channels: int,
        factor: int,
        levels: int,
        value_input: bool = False,
        level_embedding: bool = True,
        memory_features: int = 0,
        trend_features: int = 0,
    ) -> None:
        super().__init__()
        if not (value_input or level_embedding):
            raise ValueError("the upsampler needs the level embedding, the value input or both")
        self.factor, self.levels = factor, levels
        self.embed = None
        if level_embedding:
            self.embed = nn.Embedding(out_channels * levels, cond_channels)
            nn.init.uniform_(self.embed.weight, -1.0, 1.0)  # the scale a conv input has, not N(0, 1)
        self.register_buffer("offsets", torch.arange(out_channels) * levels, persistent=False)
        self.value = None
        if value_input:
            self.value = nn.Linear(out_channels, cond_channels, bias=False)
            # Inputs reach ±(Q-1)/(2·VALUE_LEVELS_PER_UNIT); start with outputs of order one.
            bound = 2 * self.VALUE_LEVELS_PER_UNIT / (levels - 1)
            nn.init.uniform_(self.value.weight, -bound, bound)
        self.memory = None
        if memory_features:
            self.memory = nn.Linear(memory_features, cond_channels, bias=False)
            nn.init.zeros_(self.memory.weight)
            if trend_features:  # the last columns: recent changes, read from the start
                nn.init.uniform_(self.memory.weight[:, memory_features - trend_features :], -0.5, 0.5)
        self.expand = nn.ConvTranspose1d(cond_channels, cond_channels, kernel_size=factor, stride=factor)
        self.mix = nn.Conv1d(cond_channels, cond_channels, 1)

    def embed_values(self, eda_prev: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C_out, T) values in normalized units (+ (B, memory_features, T) memory when the
        upsampler reads one) → (B, T, cond) embeddings."""
        level = quantize(eda_prev, self.levels)  # (B, C_out, T)
        e = None
        if self.embed is not None:
            e = self.embed(level + self.offsets[:, None]).sum(dim=1)
        if self.value is not None:
            centred = (
                level.to(self.expand.weight.dtype) - (self.levels - 1) / 2
            ) / self.VALUE_LEVELS_PER_UNIT
            v = self.value(centred.transpose(1, 2))
            e = v if e is None else e + v
        assert e is not None  # __init__ requires one of the two inputs
        if self.memory is not None:
            if memory is None:
                raise ValueError("this upsampler reads the EDA memory: pass memory (B, features, T)")
            m = memory.to(e.dtype).transpose(1, 2)
            e = e + self.memory(torch.sign(m) * torch.log1p(m.abs()))
        return e

    def forward(self, eda_prev: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        e = self.embed_values(eda_prev, memory).transpose(1, 2)  # (B, cond, T)
        return self.mix(F.relu(self.expand(e)))  # (B, cond, T*spf)

    def step(self, eda_prev_t: torch.Tensor, memory_t: torch.Tensor | None = None) -> torch.Tensor:
        """One step's conditioning, time-major: (B, C_out) previous values (+ (B, memory_features)
        memory) → (spf*B, cond).

        `forward` on a one-step sequence, laid out as the incremental path's frame rows.
        """
        b = eda_prev_t.shape[0]
        memory = None if memory_t is None else memory_t[:, :, None]
        c = self.forward(eda_prev_t[:, :, None], memory)  # (B, cond, spf)
        return c.permute(2, 0, 1).reshape(self.factor * b, -1)

    def level_stepper(self) -> LevelStepper:
        """`step` from levels, as matrix products on weights laid out once (`LevelStepper`)."""
        return LevelStepper(self)

    def step_table(self) -> torch.Tensor | None:
        """`step` for every previous level at once, (Q, spf, cond), when there is one EDA signal
        and no memory (a step's conditioning depends only on its previous level); else None."""
        if self.offsets.numel() != 1 or self.memory is not None:
            return None
        levels = level_centres(self.levels, self.offsets.device)
        c = self.forward(levels.to(self.expand.weight.dtype)[:, None, None])  # (Q, cond, spf)
        return c.transpose(1, 2).contiguous()


class LevelStepper:
    """`Upsampler.step` for the incremental path, from the previous levels (B, C_out) int64.

    What the level embedding and the value input give each level is a fixed (C_out * Q, cond)
    table; the memory map, the transposed conv (kernel = stride = spf: one (cond, spf * cond)
    product for a one-step sequence) and the 1×1 mix are matrix products on weights laid out
    here once. A model with an EDA memory cannot look a step's whole conditioning up by level
    (`step_table`), and `step`'s Conv1d calls on one-step sequences made its generation about 4×
    slower; this keeps the same function (tested against `forward`) in a few products.
    Built from the weights at construction: build a new one after they change.
    """

    def __init__(self, up: Upsampler) -> None:
        with torch.no_grad():
            levels = torch.arange(up.levels, device=up.offsets.device)
            dtype = up.expand.weight.dtype
            per_signal = []
            for c in range(up.offsets.numel()):
                row = torch.zeros(up.levels, up.mix.in_channels, dtype=dtype, device=levels.device)
                if up.embed is not None:
                    row += up.embed.weight[c * up.levels : (c + 1) * up.levels]
                if up.value is not None:
                    centred = (levels.to(row.dtype) - (up.levels - 1) / 2) / up.VALUE_LEVELS_PER_UNIT
                    row += centred[:, None] * up.value.weight[:, c][None]
                per_signal.append(row)
            self.table = torch.cat(per_signal)  # (C_out * Q, cond)
            w = up.expand.weight  # (cond_in, cond_out, spf)
            self.expand = w.permute(0, 2, 1).reshape(w.shape[0], -1).contiguous()  # (cond, spf*cond)
            self.expand_bias = up.expand.bias.repeat(up.factor)  # (spf*cond,)
            self.mix = up.mix.weight[:, :, 0].t().contiguous()  # (cond, cond)
            self.mix_bias = up.mix.bias.clone()
            self.memory = None if up.memory is None else up.memory.weight.t().contiguous()
        self.offsets, self.factor, self.levels = up.offsets, up.factor, up.levels

    def __call__(self, level: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C_out) int64 levels (+ (B, memory_features) memory) → (spf*B, cond) frame rows."""
        e = self.table[level + self.offsets].sum(dim=1)  # (B, cond)
        if self.memory is not None:
            if memory is None:
                raise ValueError("this upsampler reads the EDA memory: pass memory (B, features)")
            m = memory.to(e.dtype)
            e = e.addmm(torch.sign(m) * torch.log1p(m.abs()), self.memory)
        h = torch.addmm(self.expand_bias, e, self.expand).relu_()  # (B, spf*cond)
        b, cond = h.shape[0], self.mix.shape[0]
        rows = h.view(b, self.factor, cond).transpose(0, 1).reshape(self.factor * b, cond)
        return torch.addmm(self.mix_bias, rows, self.mix)
