"""The model's config: `WavenetConfig`, the architecture's hyperparameters and what follows from them.

`WavenetConfig` derives everything the model needs (time bases, stacks, receptive field). Every
rule is checked when the config is built, and `validate_wavenet_config` checks a plain mapping
(what a YAML file gives); both raise pydantic's `ValidationError` naming the field(s) and the
rule broken. `LIMITS` bounds sizes so that every valid config builds in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

__all__ = ["LIMITS", "WavenetConfig", "validate_wavenet_config", "derive_stacks"]

# Upper bounds that keep every config buildable in seconds: beyond them the model could not be
# trained on any machine this project targets (and `config show` would spend minutes building it).
LIMITS = {
    "context_size_in_seconds": 600.0,  # 10 min of audio per prediction
    "num_layers": 512,  # residual layers derived from the context and the stack cap
    "channels": 4096,  # any width: hidden, gate, skip, condition, post-net
    "quantization_levels": 65536,
    "signals": 64,  # in_channels, out_channels
    "num_mfccs": 256,
    "samples_per_frame": 1 << 16,  # mfcc_window_size, mfcc_hop_size, max_stack_receptive_field
}
_WIDE = LIMITS["channels"]


def _whole(value: Fraction) -> bool:
    return value.denominator == 1


def _fraction(x: float | int) -> Fraction:
    # Decimal-exact: 0.1 s is 1/10 s, not the nearest binary float.
    return Fraction(str(x))


def derive_stacks(frames_needed: int, max_stack_receptive_field: int) -> tuple[int, int]:
    """Smallest (layers_per_stack, num_stacks) whose dilated stacks span `frames_needed` frames.

    A stack of L kernel-2 layers with dilations 1, 2, ..., 2^(L-1) looks 2^L - 1 frames back;
    stacks in series add, so S stacks look S * (2^L - 1) frames back. The per-stack receptive
    field 2^L is capped at `max_stack_receptive_field`. We take the fewest stacks the cap
    allows, then the fewest layers per stack that still cover `frames_needed`: the least
    excess for that number of stacks. At least one layer is always built.
    """
    max_layers = int(math.log2(max_stack_receptive_field))
    reach = 2**max_layers - 1  # frames one full stack looks back
    needed = max(frames_needed, 1)
    num_stacks = max(1, math.ceil(needed / reach))
    layers = 1
    while num_stacks * (2**layers - 1) < needed:
        layers += 1
    return layers, num_stacks


class WavenetConfig(BaseModel):
    """Architecture of the autoregressive audio → EDA WaveNet (see docs/design.md, "Time bases")."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # --- time bases -------------------------------------------------------------------
    context_size_in_seconds: PositiveFloat = Field(
        le=LIMITS["context_size_in_seconds"],
        description="Audio history (s) each EDA prediction must see; a whole number of EDA steps.",
    )
    audio_sample_rate: PositiveInt = Field(le=768_000, description="Audio sample rate (Hz) after resampling.")
    eda_sample_rate: PositiveFloat = Field(
        le=10_000, description="EDA sample rate (Hz), e.g. 4 for Empatica E4."
    )
    mfcc_window_size: PositiveInt = Field(
        le=LIMITS["samples_per_frame"], description="MFCC analysis window (n_fft), audio samples."
    )
    mfcc_hop_size: PositiveInt = Field(
        le=LIMITS["samples_per_frame"], description="MFCC hop, audio samples; sets the frame rate."
    )
    num_mfccs: PositiveInt = Field(le=LIMITS["num_mfccs"], description="MFCC coefficients per frame.")
    mfcc_contrast_seconds: float = Field(
        default=0.0,
        ge=0.0,
        le=60.0,
        description="When > 0, each frame also carries its MFCCs minus their mean over the last this many "
        "seconds (causal): what changed against the recent past, the cue a listener responds to. "
        "0 feeds the MFCCs alone.",
    )

    # --- widths -------------------------------------------------------------------------
    in_channels: PositiveInt = Field(
        default=1, le=LIMITS["signals"], description="Audio channels fed to the model."
    )
    hidden_channels: PositiveInt = Field(le=_WIDE, description="Residual width of the WaveNet stacks.")
    out_channels: PositiveInt = Field(
        default=1, le=LIMITS["signals"], description="Number of EDA signals generated."
    )
    gate_channels: PositiveInt | None = Field(
        default=None, le=_WIDE, description="Width of tanh/sigmoid gate (default: hidden_channels)."
    )
    skip_channels: PositiveInt | None = Field(
        default=None, le=_WIDE, description="Width of skip connections (default: hidden_channels)."
    )
    condition_channels: PositiveInt = Field(
        default=16, le=_WIDE, description="Width of the upsampled EDA conditioning signal."
    )
    postnet_channels: PositiveInt | None = Field(
        default=None, le=_WIDE, description="Width of the post-net and downsampler (default: skip width)."
    )
    quantization_levels: int = Field(
        default=256, le=LIMITS["quantization_levels"], description="EDA amplitude bins (softmax size)."
    )
    head: Literal["relative_softmax", "logistic_mixture"] = Field(
        default="relative_softmax",
        description="Output distribution over the change of level: a free softmax over the 2Q-1 changes, "
        "or a discretized mixture of logistics (PixelCNN++).",
    )
    eda_value_input: bool = Field(
        default=False,
        description="Also feed the previous EDA value as a linear input (besides its level embedding), "
        "so the network reads the trend of the last steps as a difference.",
    )
    eda_level_embedding: bool = Field(
        default=True,
        description="Embed the previous EDA value by its quantization level (a learned vector per "
        "level). false: the value enters through the linear input only (needs eda_value_input), so "
        "neighbouring levels condition the network alike.",
    )
    eda_memory_seconds: float = Field(
        default=0.0,
        ge=0.0,
        le=LIMITS["context_size_in_seconds"],
        description="When > 0, the network also reads a slow summary of the whole EDA history: the "
        "exponentially weighted mean of the one-step change and of its size over about this many "
        "seconds (causal, models/eda_memory.py), so a sample keeps the gain and trend it started "
        "with after they leave the receptive field. 0: the receptive field is all the model sees.",
    )
    eda_trend_lags: list[PositiveInt] = Field(
        default_factory=list,
        max_length=8,
        description="Steps k over which the network also reads each EDA signal's recent change of "
        "level, level(t-1) - level(t-1-k), beside the level itself (models/eda_memory.py), e.g. "
        "[1, 2, 4]. [] (the default of configs written before it): the network assembles trends "
        "from its gates alone.",
    )
    mixture_components: PositiveInt = Field(
        default=4, description="Logistic components of the logistic_mixture head."
    )
    max_stack_receptive_field: PositiveInt = Field(
        default=512,
        le=LIMITS["samples_per_frame"],
        description="Cap on one stack's receptive field (frames); a power of two.",
    )
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout on gated activations.")

    # --- validation ---------------------------------------------------------------------
    @model_validator(mode="after")
    def _check_rules(self) -> WavenetConfig:
        errors: list[str] = []
        if self.mfcc_window_size < self.mfcc_hop_size:
            errors.append(
                f"mfcc_window_size ({self.mfcc_window_size}) must be >= mfcc_hop_size "
                f"({self.mfcc_hop_size}): frames would skip audio samples"
            )
        spf = _fraction(self.audio_sample_rate) / (_fraction(self.eda_sample_rate) * self.mfcc_hop_size)
        if not _whole(spf) or spf < 1:
            errors.append(
                "spectral_frames_per_eda_step = audio_sample_rate / (eda_sample_rate * "
                f"mfcc_hop_size) = {self.audio_sample_rate} / ({self.eda_sample_rate} * "
                f"{self.mfcc_hop_size}) = {float(spf):.6g} must be a whole number >= 1; "
                "change mfcc_hop_size, audio_sample_rate or eda_sample_rate"
            )
        steps = _fraction(self.context_size_in_seconds) * _fraction(self.eda_sample_rate)
        if not _whole(steps):
            errors.append(
                f"context_size_in_seconds * eda_sample_rate = {self.context_size_in_seconds} * "
                f"{self.eda_sample_rate} = {float(steps):.6g} must be a whole number of EDA steps"
            )
        cap = self.max_stack_receptive_field
        if cap < 2 or cap & (cap - 1):
            errors.append(
                f"max_stack_receptive_field ({cap}) must be a power of two >= 2 "
                "(a stack of L kernel-2 layers has receptive field 2^L)"
            )
        if self.quantization_levels < 2:
            errors.append(f"quantization_levels ({self.quantization_levels}) must be >= 2")
        if len(set(self.eda_trend_lags)) != len(self.eda_trend_lags):
            errors.append(f"eda_trend_lags ({self.eda_trend_lags}) must not repeat a lag")
        if not self.eda_level_embedding and not self.eda_value_input:
            errors.append(
                "eda_level_embedding: false needs eda_value_input: true (else the network never "
                "reads the past EDA)"
            )
        if not errors and self.num_layers > LIMITS["num_layers"]:
            errors.append(
                f"context_size_in_seconds ({self.context_size_in_seconds:g}) needs {self.num_layers} "
                f"residual layers ({self.num_stacks} stacks of {self.layers_per_stack}), more than "
                f"{LIMITS['num_layers']}; shorten the context or raise max_stack_receptive_field"
            )
        if errors:
            raise ValueError("; ".join(errors))
        return self

    # --- derived, read-only -----------------------------------------------------------
    @property
    def spectral_frames_per_eda_step(self) -> int:
        """MFCC frames per EDA step: audio_sample_rate / (eda_sample_rate * mfcc_hop_size)."""
        return int(_fraction(self.audio_sample_rate) / (_fraction(self.eda_sample_rate) * self.mfcc_hop_size))

    @property
    def contrast_frames(self) -> int:
        """MFCC frames averaged for the contrast features (0 when `mfcc_contrast_seconds` is 0)."""
        if self.mfcc_contrast_seconds <= 0:
            return 0
        frame_rate = _fraction(self.audio_sample_rate) / self.mfcc_hop_size
        return max(2, int(round(self.mfcc_contrast_seconds * frame_rate)))

    @property
    def features_per_frame(self) -> int:
        """Audio features per channel and frame the model reads: the MFCCs, then their contrasts if on."""
        return self.num_mfccs * (2 if self.contrast_frames else 1)

    @property
    def audio_time_steps_per_spectral_frame(self) -> int:
        """Audio samples between consecutive MFCC frames (the hop)."""
        return self.mfcc_hop_size

    @property
    def context_size_in_eda_steps(self) -> int:
        return int(_fraction(self.context_size_in_seconds) * _fraction(self.eda_sample_rate))

    @property
    def context_size_in_frames(self) -> int:
        return self.context_size_in_eda_steps * self.spectral_frames_per_eda_step

    @property
    def upsampling_factor(self) -> int:
        """EDA steps → frames: the causal upsampler repeats each step over its frames."""
        return self.spectral_frames_per_eda_step

    @property
    def downsampling_factor(self) -> int:
        """Frames → EDA steps: the attention downsampler pools each step's frames."""
        return self.spectral_frames_per_eda_step

    @property
    def _stacks(self) -> tuple[int, int]:
        # The downsampler already spans one step's frames; the stacks cover the rest.
        needed = self.context_size_in_frames - self.spectral_frames_per_eda_step
        return derive_stacks(needed, self.max_stack_receptive_field)

    @property
    def layers_per_stack(self) -> int:
        return self._stacks[0]

    @property
    def num_stacks(self) -> int:
        return self._stacks[1]

    @property
    def num_layers(self) -> int:
        return self.layers_per_stack * self.num_stacks

    @property
    def stack_receptive_field(self) -> int:
        """Receptive field of one stack in frames: 2^layers_per_stack."""
        return 2**self.layers_per_stack

    @property
    def receptive_field_frames(self) -> int:
        """Exact number of MFCC frames that one EDA step's logits depend on.

        Stacks add: 1 + num_stacks * (2^L - 1) frames; the attention downsampler pools the
        step's own `spectral_frames_per_eda_step` frames, adding spf - 1 more.
        """
        stacks = 1 + self.num_stacks * (self.stack_receptive_field - 1)
        return stacks + self.spectral_frames_per_eda_step - 1

    @property
    def receptive_field_seconds(self) -> float:
        return self.receptive_field_frames * self.mfcc_hop_size / self.audio_sample_rate

    @property
    def receptive_field_eda_steps(self) -> int:
        """EDA steps whose frames the receptive field touches (rounded up)."""
        return math.ceil(self.receptive_field_frames / self.spectral_frames_per_eda_step)

    @property
    def first_full_step(self) -> int:
        """First step of a window whose whole receptive field lies inside the window.

        Step t sees frames [(t+1)*spf - receptive_field_frames, (t+1)*spf); that starts at
        frame >= 0 from t = ceil(receptive_field_frames / spf) - 1 on. Training windows are
        `first_full_step + target_steps` steps long and the loss covers the last target_steps.
        """
        return self.receptive_field_eda_steps - 1

    @property
    def memory_features_per_signal(self) -> int:
        """Numbers per EDA signal and step in the EDA memory (models/eda_memory.py): the slow
        memory's MEMORY_FEATURES when `eda_memory_seconds` > 0, plus one per trend lag."""
        from wavenet_lib.models.eda_memory import MEMORY_FEATURES

        return (MEMORY_FEATURES if self.eda_memory_seconds > 0 else 0) + len(self.eda_trend_lags)

    @property
    def memory_decay(self) -> float:
        """Per-step decay of the EDA memory's weights, exp(-1 / (eda_memory_seconds * eda_sample_rate));
        0 when the memory is off."""
        if self.eda_memory_seconds <= 0:
            return 0.0
        return math.exp(-1.0 / (self.eda_memory_seconds * self.eda_sample_rate))

    @property
    def gate_width(self) -> int:
        return self.gate_channels or self.hidden_channels

    @property
    def skip_width(self) -> int:
        return self.skip_channels or self.hidden_channels

    @property
    def postnet_width(self) -> int:
        return self.postnet_channels or self.skip_width


def validate_wavenet_config(data: Mapping[str, Any]) -> WavenetConfig:
    """Validate a mapping (e.g. a YAML section) and return the config.

    Raises pydantic.ValidationError naming every offending field and rule.
    """
    return WavenetConfig.model_validate(dict(data))
