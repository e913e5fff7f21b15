"""Autoregressive multimodal WaveNet: audio MFCCs + past EDA → distribution of the next EDA step.

Reads top to bottom like the architecture in docs/design.md ("Model contract"); the EDA
conditioning (`Upsampler`) and the output head (`Downsampler`) have modules of their own,
`models/upsampler.py` and `models/head.py`, and its residual layers and stacks
`models/layers.py`:

    mfcc (B, C_in, T*spf, M) ──1×1 input projection──► x (B, R, T*spf)
    eda_prev (B, C_out, T) ──causal Upsampler──────────► c (B, cond, T*spf)
        (+ with model.eda_memory_seconds or model.eda_trend_lags, the EDA memory of
         models/eda_memory.py: a slow summary of the whole history and the recent changes of
         level, added in the Upsampler)
    x, c ──WavenetStack × num_stacks (gated, dilated, causal)──► Σ skips (B, S, T*spf)
    Σ skips ──ReLU, 1×1, ReLU, 1×1, ReLU──► h (B, D, T*spf)
    (computed on time-major rows (B, T*spf, channels) by default, `layout`; see models/layers.py)
    h ──Downsampler (attention over each step's spf frames) + 1×1 + head──► logits (B, Q, C_out, T)

Shapes use B batch, T EDA steps, spf = spectral frames per EDA step, R residual width,
G gate width, S skip width, D post-net width, Q quantization levels.

Causality, exactly: logits at step t depend on eda_prev[..., :t+1] and on MFCC frames
[(t+1)*spf - receptive_field_frames, (t+1)*spf). `Wavenet.generate` samples step by step,
either with per-layer caches (fast path) or by re-running `forward` over one receptive field
per step (reference path); both give the logits `forward` gives on the generated sequence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from wavenet_lib.configs import GUIDANCE_REFERENCES, WavenetConfig
from wavenet_lib.data.features import running_mean_mfcc_like, silent_mfcc_like
from wavenet_lib.models.eda_memory import eda_memory
from wavenet_lib.models.head import Downsampler, HeadWeights
from wavenet_lib.models.incremental import Stepper
from wavenet_lib.models.layers import Gate, ResidualLayer, StepWeights, WavenetStack, time_major
from wavenet_lib.models.quantization import START_VALUE, dequantize, quantize
from wavenet_lib.models.upsampler import Upsampler

__all__ = [
    "Gate",
    "StepWeights",
    "ResidualLayer",
    "WavenetStack",
    "Wavenet",
    "guidance_reference_input",
    "guided_logits",
]


def _uniforms(
    rows: int, signals: int, generator: torch.Generator | Sequence[torch.Generator] | None, device
) -> torch.Tensor:
    """(rows, 1, signals) uniform draws; k generators draw rows / k consecutive rows each."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand(rows, 1, signals, generator=generator, device=device)
    groups = list(generator)
    per = rows // len(groups)
    return torch.cat([torch.rand(per, 1, signals, generator=g, device=device) for g in groups])


def guided_logits(with_audio: torch.Tensor, reference: torch.Tensor, weight: float) -> torch.Tensor:
    """log p + w (log p - log p_ref) over the levels (dim 1): the audio's effect amplified.

    Unnormalized log-probabilities; sampling normalizes them. w = 0 gives log p.
    """
    log_p = torch.log_softmax(with_audio.float(), dim=1)
    return log_p + weight * (log_p - torch.log_softmax(reference.float(), dim=1))


def guidance_reference_input(
    mfcc: torch.Tensor, reference: str, num_mfccs: int | None = None, first_frame: int = 0
) -> torch.Tensor:
    """The input audio guidance compares the audio with (`GUIDANCE_REFERENCES`), shaped like `mfcc`.

    "silent": `silent_mfcc_like`. "running_mean": `running_mean_mfcc_like` from `first_frame`
    (the first sampled step's frames): the sound heard so far with nothing new in it.
    """
    if reference == "silent":
        return silent_mfcc_like(mfcc, num_mfccs)
    if reference == "running_mean":
        return running_mean_mfcc_like(mfcc, num_mfccs, first_frame)
    raise ValueError(_unknown_reference(reference))


def _unknown_reference(reference: object) -> str:
    return f"guidance_reference must be one of {', '.join(GUIDANCE_REFERENCES)}, got {reference!r}"


class Wavenet(nn.Module):
    """The full audio → EDA model. `forward` is teacher-forced; `generate` samples."""

    # "rows": the residual stacks and post-net run on time-major rows (faster on CPUs); "conv":
    # the textbook (B, channels, frames) layout through nn.Conv1d. Same parameters, same function.
    LAYOUTS = ("rows", "conv")

    def __init__(self, config: WavenetConfig) -> None:
        super().__init__()
        self.config = config
        self.layout = "rows"
        spf = config.spectral_frames_per_eda_step
        self.spf = spf
        # Audio 1×1 input projection over (in_channels, features_per_frame) at each frame.
        self.input_proj = nn.Conv1d(config.in_channels * config.features_per_frame, config.hidden_channels, 1)
        self.upsampler = Upsampler(
            config.out_channels,
            config.condition_channels,
            config.upsampling_factor,
            config.quantization_levels,
            value_input=config.eda_value_input,
            level_embedding=config.eda_level_embedding,
            memory_features=config.out_channels * config.memory_features_per_signal,
            trend_features=config.out_channels * len(config.eda_trend_lags),
        )
        self.stacks = nn.ModuleList(
            WavenetStack(config, last=k == config.num_stacks - 1) for k in range(config.num_stacks)
        )
        self.skip_scale = 1.0 / math.sqrt(config.num_layers)  # keeps the skip sum's scale depth-free
        d = config.postnet_width
        self.postnet = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(config.skip_width, d, 1),
            nn.ReLU(),
            nn.Conv1d(d, d, 1),
            nn.ReLU(),
        )
        # The post-net's third 1×1 (to Q logits) sits after pooling, inside the Downsampler.
        self.downsampler = Downsampler(
            d,
            config.downsampling_factor,
            config.out_channels,
            config.quantization_levels,
            head=config.head,
            components=config.mixture_components,
        )

    # --- shapes --------------------------------------------------------------------------
    @property
    def layers(self) -> list[ResidualLayer]:
        return [layer for stack in self.stacks for layer in stack.layers]

    def _check_inputs(
        self, mfcc: torch.Tensor, eda_prev: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, int]:
        cfg = self.config
        if mfcc.dim() != 4 or mfcc.shape[1] != cfg.in_channels or mfcc.shape[3] != cfg.features_per_frame:
            raise ValueError(
                f"mfcc must be (B, in_channels={cfg.in_channels}, frames, features_per_frame="
                f"{cfg.features_per_frame}), "
                f"got {tuple(mfcc.shape)}"
            )
        frames = mfcc.shape[2]
        if frames % self.spf:
            raise ValueError(
                f"mfcc has {frames} frames, not a whole number of EDA steps of "
                f"spectral_frames_per_eda_step={self.spf} frames"
            )
        steps = frames // self.spf
        if eda_prev is None:
            return None, steps
        if eda_prev.dim() == 2 and cfg.out_channels == 1:
            eda_prev = eda_prev.unsqueeze(1)
        if eda_prev.dim() != 3 or eda_prev.shape[1] != cfg.out_channels or eda_prev.shape[0] != mfcc.shape[0]:
            raise ValueError(
                f"eda_prev must be (B={mfcc.shape[0]}, out_channels={cfg.out_channels}, T) "
                f"(or (B, T) when out_channels == 1), got {tuple(eda_prev.shape)}"
            )
        if eda_prev.shape[2] != steps:
            raise ValueError(
                f"eda_prev has {eda_prev.shape[2]} steps but mfcc has {frames} frames = {steps} steps "
                f"of {self.spf} frames"
            )
        return eda_prev, steps

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, C_in, F, M) → (B, R, F): the audio 1×1 input projection."""
        b, c, f, m = mfcc.shape
        return self.input_proj(mfcc.permute(0, 1, 3, 2).reshape(b, c * m, f))

    def embed_audio_frames(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, C_in, F, M) → (F, B, R): `embed_audio` laid out time-major (one GEMM), for generation."""
        b, c, f, m = mfcc.shape
        rows = mfcc.permute(2, 0, 1, 3).reshape(f * b, c * m)
        w = self.input_proj.weight[:, :, 0]  # (R, C_in*M), inputs ordered as in embed_audio
        return torch.addmm(self.input_proj.bias, rows, w.t()).view(f, b, -1)

    @property
    def reads_memory(self) -> bool:
        """Whether the network reads the EDA memory (`model.eda_memory_seconds` > 0 or
        `model.eda_trend_lags`)."""
        return self.upsampler.memory is not None

    def memory_of(self, eda_prev: torch.Tensor) -> torch.Tensor:
        """The EDA memory (B, C_out * memory_features_per_signal, T) of a clip whose first step is
        eda_prev[..., 0]."""
        cfg = self.config
        levels = quantize(eda_prev, cfg.quantization_levels)
        return eda_memory(levels, cfg.memory_decay, self.upsampler.expand.weight.dtype, cfg.eda_trend_lags)

    # --- teacher-forced forward -----------------------------------------------------------
    def forward(
        self,
        mfcc: torch.Tensor,
        eda_prev: torch.Tensor,
        target: torch.Tensor | None = None,
        first_step: int = 0,
        eda_memory: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, Q, C_out, T) for every step, given the EDA before each step.

        Args:
            mfcc: (B, in_channels, T*spf, features_per_frame) audio features.
            eda_prev: (B, out_channels, T), or (B, T) if out_channels == 1, normalized units;
                eda_prev[..., t] is the EDA value of step t-1.
            target: optional (B, out_channels, T) int64 levels. When given, the result is
                log P(target) (B, C_out, T - first_step) instead of the logits: what the
                training loss needs, computed without the (B, Q, C_out, T) logits where the head
                allows (`Downsampler.target_log_probs`). Training calls the model this way so
                that a DistributedDataParallel wrapper sees the call.
            first_step: with a target, the first step scored (earlier steps are left out).
            eda_memory: with `model.eda_memory_seconds` > 0 or `model.eda_trend_lags`, the EDA
                memory of these steps (B, C_out * memory_features_per_signal, T), for a clip cut
                from a longer one (a training window). None computes it from eda_prev, as for a
                clip that starts here.
        """
        eda_prev, steps = self._check_inputs(mfcc, eda_prev)
        memory = None
        if self.reads_memory:
            memory = self.memory_of(eda_prev) if eda_memory is None else eda_memory
            if memory.shape != (eda_prev.shape[0], self.upsampler.memory.in_features, steps):
                raise ValueError(
                    f"eda_memory must be (B={eda_prev.shape[0]}, {self.upsampler.memory.in_features}, "
                    f"T={steps}), got {tuple(memory.shape)}"
                )
        c = self.upsampler(eda_prev, memory)  # (B, cond, F)
        if self.layout not in self.LAYOUTS:
            raise ValueError(f"layout must be one of {self.LAYOUTS}, got {self.layout!r}")
        rows = self.layout == "rows"
        skips = self._skip_rows(mfcc, c) if rows else self._skip_conv(mfcc, c)  # (B, F, S) / (B, S, F)
        head = self.head_params_rows if rows else self.head_params
        prev_level = quantize(eda_prev, self.config.quantization_levels)
        if target is None:
            return self.downsampler.to_levels(head(skips), prev_level)
        if target.dim() == 2 and self.config.out_channels == 1:
            target = target.unsqueeze(1)
        if target.shape != prev_level.shape:
            raise ValueError(
                f"target must be {tuple(prev_level.shape)} like eda_prev, got {tuple(target.shape)}"
            )
        if not 0 <= first_step < steps:
            raise ValueError(
                f"windows of {steps} steps leave nothing to score from first_step={first_step}: windows "
                "must be first_full_step + data.target_steps long"
            )
        first_frame = first_step * self.spf  # the head is per step
        params = head(skips[:, first_frame:] if rows else skips[..., first_frame:])
        scored = slice(first_step, None)
        return self.downsampler.target_log_probs(params, prev_level[..., scored], target[..., scored])

    def _skip_conv(self, mfcc: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Σ skips (B, S, F) in the textbook layout: every layer through nn.Conv1d."""
        x = self.embed_audio(mfcc)  # (B, R, F)
        skips: torch.Tensor | int = 0
        for stack in self.stacks:
            x, s = stack(x, c)
            skips = skips + s
        assert isinstance(skips, torch.Tensor)
        return skips

    def _skip_rows(self, mfcc: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Σ skips (B, F, S) on time-major rows: `_skip_conv`'s function.

        Rows are (B*F, channels); each tap and 1×1 is a matrix product that adds into the sum it
        feeds (`torch.addmm`), and the skip biases are added once, summed.
        """
        b, ci, f, m = mfcc.shape
        w = self.input_proj.weight[:, :, 0]
        x = F.linear(mfcc.permute(0, 2, 1, 3).reshape(b * f, ci * m), w, self.input_proj.bias)  # (B*F, R)
        c = c.transpose(1, 2).reshape(b * f, -1)  # (B*F, cond)
        layers = self.layers
        biases = torch.stack([cast(torch.Tensor, layer.skip.bias) for layer in layers])
        skips = biases.sum(dim=0).expand(b * f, -1)  # every layer's skip bias, added once
        for layer in layers:
            cond = F.linear(c, layer.gate.cond.weight[:, :, 0], layer.gate.cond.bias + layer.dilated.bias)
            x, z = layer.forward_rows(x, cond, f)
            skips = torch.addmm(skips, z, layer.skip.weight[:, :, 0].t())
        return skips.view(b, f, -1)

    def head_params_rows(self, skips: torch.Tensor) -> torch.Tensor:
        """`head_params` of Σ skips given as time-major rows (B, T*spf, S)."""
        post = self.postnet  # ReLU, 1×1, ReLU, 1×1, ReLU
        h = F.relu(skips * self.skip_scale)
        h = F.relu(F.linear(h, post[1].weight[:, :, 0], post[1].bias))
        h = F.relu(F.linear(h, post[3].weight[:, :, 0], post[3].bias))
        return self.downsampler.params_rows(h)

    def logits_from_skips(self, skips: torch.Tensor, prev_level: torch.Tensor) -> torch.Tensor:
        """Σ skips (B, S, T*spf) + previous levels (B, C_out, T) → logits (B, Q, C_out, T).

        Everything after the residual stacks; the incremental path calls it once per step.
        """
        return self.downsampler.to_levels(self.head_params(skips), prev_level)  # (B, Q, C_out, T)

    def head_params(self, skips: torch.Tensor) -> torch.Tensor:
        """Σ skips (B, S, T*spf) → head parameters (B, P, C_out, T): the post-net, attention
        pooling and projection, before `Downsampler.to_levels` (which needs the previous level)."""
        return self.downsampler.params(self.postnet(skips * self.skip_scale))

    # Names what `head_params` computes; a compiled kernel of
    # it (models/fused_step.py) runs only for a model whose HEAD_KIND it implements, so changing
    # the post-net or the pooling and this name is one edit.
    HEAD_KIND = "relu-1x1-relu-1x1-relu-attention-pool-proj/v1"

    def head_step_weights(self) -> HeadWeights:
        """The head's parameters in the incremental path's layout (see `HeadWeights`)."""
        post, down = self.postnet, self.downsampler
        return HeadWeights(
            w1=(time_major(post[1]) * self.skip_scale).contiguous(),
            b1=post[1].bias.contiguous(),
            w2=time_major(post[3]).contiguous(),
            b2=post[3].bias.contiguous(),
            score=time_major(down.score).contiguous(),
            score_bias=down.score.bias.contiguous(),
            position=down.position.contiguous(),
            proj=down.proj_weight.transpose(1, 2).contiguous(),
            proj_bias=down.proj_bias.t().contiguous(),
        )

    # --- generation -------------------------------------------------------------------------
    def _sample(
        self,
        logits: torch.Tensor,
        temperature: float,
        greedy: bool,
        generator: torch.Generator | Sequence[torch.Generator] | None,
        top_p: float = 1.0,
        min_prob: float = 0.0,
    ) -> torch.Tensor:
        """logits (B, Q, C_out) → class indices (B, C_out).

        With top_p < 1 (nucleus sampling) only the most likely levels whose probabilities add
        up to top_p are kept (always at least the most likely one), then renormalized: the far
        tails of a 256-way softmax, each tiny but together drawn every few hundred steps, are
        what make one-step cliffs in a free-running trace. With min_prob > 0 (epsilon sampling)
        levels less likely than min_prob are dropped instead (again keeping the most likely):
        the far tails go as well, but a near level with real mass stays even where the
        distribution is skewed, as in a slow recovery, where top-p cuts the second step down
        and keeps the flicker up (a bias towards rising traces).
        """
        if greedy:
            return logits.argmax(dim=1)
        # Inverse-CDF sampling: one uniform draw per signal against the cumulative softmax. Same
        # distribution as torch.multinomial at a fraction of its per-call cost, which matters
        # when a step takes about a millisecond.
        b, q, c = logits.shape
        probs = torch.softmax(logits.float() / temperature, dim=1)  # (B, Q, C_out)
        if min_prob > 0.0:
            keep = (probs >= min_prob) | (probs == probs.amax(dim=1, keepdim=True))
            probs = probs * keep
        if top_p < 1.0:
            sorted_p, order = probs.sort(dim=1, descending=True)
            before = sorted_p.cumsum(dim=1) - sorted_p  # mass of the more likely levels
            sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)
            probs = torch.zeros_like(probs).scatter_(1, order, sorted_p)
        cdf = probs.cumsum_(dim=1)
        u = _uniforms(b, c, generator, logits.device) * cdf[:, -1:, :]
        return (cdf < u).sum(dim=1).clamp_(max=q - 1)  # first level whose cdf reaches u

    def reference_step_logits(self, mfcc: torch.Tensor, eda_prev: torch.Tensor, t: int) -> torch.Tensor:
        """Logits (B, Q, C_out) of step t by re-running `forward` over one receptive field.

        The naive reference for generation: the window holds the steps whose frames the
        receptive field of step t touches, so zero padding at its start changes nothing.
        """
        spf = self.spf
        start = max(0, t + 1 - self.config.receptive_field_eda_steps)
        window = mfcc[:, :, start * spf : (t + 1) * spf]
        # The memory reaches back to the clip's start: computed over the whole prefix.
        memory = self.memory_of(eda_prev[:, :, : t + 1])[..., start:] if self.reads_memory else None
        return self.forward(window, eda_prev[:, :, start : t + 1], eda_memory=memory)[..., -1]

    @torch.no_grad()
    def generate(
        self,
        mfcc: torch.Tensor,
        prime: torch.Tensor | None = None,
        temperature: float = 1.0,
        greedy: bool = False,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        incremental: bool = True,
        top_p: float = 1.0,
        return_logits: bool = False,
        progress: bool = False,
        min_prob: float = 0.0,
        audio_guidance: float = 0.0,
        guidance_reference: str = "silent",
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Sample EDA (B, C_out, T) in normalized units for the audio, one step at a time.

        Args:
            mfcc: (B, in_channels, T*spf, features_per_frame).
            prime: optional (B, C_out, P) (or (B, P)) EDA in normalized units; the first P steps
                are teacher-forced to its quantized values instead of sampled.
            temperature: softmax temperature (> 0) for sampling.
            greedy: take the most likely level instead of sampling.
            top_p: nucleus sampling, in (0, 1]; 1.0 draws from the whole distribution.
            min_prob: epsilon sampling, in [0, 1): drop levels less likely than this (after
                the temperature; the most likely level always stays); 0 keeps them all.
            generator: torch.Generator for reproducible sampling; or k generators, one per
                group of B / k consecutive rows, each group drawing from its own exactly as a
                call with only its rows would: several clips (of one length) sampled in one
                batch give the draws of one call per clip, faster (batched steps cost little
                more than one on a CPU).
            incremental: fast path with per-layer caches (True) or the reference path that
                re-runs `forward` over one receptive field per step (False).
            return_logits: also return the logits (B, Q, C_out, T) each step was drawn from.
            progress: show a tqdm progress bar over steps.
            audio_guidance: w >= 0. Each step is drawn from log p + w (log p - log p_ref), where
                p_ref is the model's distribution for the same past with the reference input
                (`guidance_reference`): the audio's effect over the reference, amplified
                (classifier-free guidance, Ho & Salimans 2022). 0 draws from the model itself;
                w > 0 runs the model twice per step. Temperature, top-p and min-prob apply after it.
            guidance_reference: "silent" (`silent_mfcc_like`) or "running_mean" (each frame from
                the first sampled step on replaced by the mean of the audio since then,
                `running_mean_mfcc_like`: what changes in the sound is amplified, not its presence).
        """
        if temperature <= 0 and not greedy:
            raise ValueError(f"temperature must be > 0 (got {temperature}); use greedy=True for argmax")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if not 0.0 <= min_prob < 1.0:
            raise ValueError(f"min_prob must be in [0, 1), got {min_prob}")
        if not (math.isfinite(audio_guidance) and audio_guidance >= 0.0):
            raise ValueError(f"audio_guidance must be a finite number >= 0, got {audio_guidance}")
        if guidance_reference not in GUIDANCE_REFERENCES:
            raise ValueError(_unknown_reference(guidance_reference))
        _, steps = self._check_inputs(mfcc, None)
        cfg = self.config
        b, device = mfcc.shape[0], mfcc.device
        if generator is not None and not isinstance(generator, torch.Generator):
            generator = list(generator)
            if not generator or b % len(generator):
                raise ValueError(
                    f"generator: {len(generator)} generators cannot share a batch of {b} rows in equal groups"
                )
        q = cfg.quantization_levels
        if prime is not None:
            if prime.dim() == 2:
                prime = prime.unsqueeze(1)
            if prime.shape[:2] != (b, cfg.out_channels) or prime.shape[2] > steps:
                raise ValueError(
                    f"prime must be (B={b}, out_channels={cfg.out_channels}, P <= {steps}), "
                    f"got {tuple(prime.shape)}"
                )
            prime = quantize(prime.float(), q).to(device)
        n_prime = 0 if prime is None else prime.shape[2]

        was_training = self.training
        self.eval()
        try:
            # Levels time-major: levels[t] (B, C_out) is step t's previous level, contiguous. The
            # first is the level of START_VALUE, the value before the clip that training windows see too.
            levels = torch.empty(steps + 1, b, cfg.out_channels, dtype=torch.long, device=device)
            levels[0] = quantize(torch.tensor(START_VALUE), q)
            if prime is not None:
                levels[1 : n_prime + 1] = prime.permute(2, 0, 1)
            all_logits = torch.empty(b, q, cfg.out_channels, steps, device=device) if return_logits else None
            if incremental:
                stepper = Stepper(self, mfcc)  # fresh caches and weights for every call
            else:  # the reference path reads values: the previous steps' bin centres
                eda_prev = torch.zeros(b, cfg.out_channels, steps + 1, device=device, dtype=mfcc.dtype)
            # Audio guidance: the same step on the reference input, by the same path; none when
            # the input is its own reference (e.g. the silent audio-blind baseline: nothing to amplify).
            reference = None
            if audio_guidance > 0:
                first = min(n_prime, steps - 1) * self.spf
                reference = guidance_reference_input(mfcc, guidance_reference, cfg.num_mfccs, first)
            reference_step = None
            if reference is not None and not torch.equal(reference, mfcc):
                if incremental:
                    reference_step = Stepper(self, reference).step
                else:
                    reference_step = lambda t, _: self.reference_step_logits(reference, eda_prev, t)  # noqa: E731
            iterator = range(steps)
            if progress:
                from tqdm.auto import tqdm

                iterator = tqdm(iterator, desc="generating EDA", unit="step")
            for t in iterator:
                if incremental:
                    logits = stepper.step(t, levels[t])
                else:
                    logits = self.reference_step_logits(mfcc, eda_prev, t)
                if reference_step is not None:
                    logits = guided_logits(logits, reference_step(t, levels[t]), audio_guidance)
                if all_logits is not None:
                    all_logits[..., t] = logits
                if t >= n_prime:
                    levels[t + 1] = self._sample(logits, temperature, greedy, generator, top_p, min_prob)
                if not incremental:
                    eda_prev[:, :, t + 1] = dequantize(levels[t + 1], q, eda_prev.dtype)
        finally:
            self.train(was_training)
        eda = dequantize(levels[1:].permute(1, 2, 0), q, mfcc.dtype)
        return (eda, all_logits) if return_logits else eda
