"""Pydantic configs for the audio → EDA WaveNet.

`WavenetConfig` holds the architecture's hyperparameters and derives everything the model
needs (time bases, stacks, receptive field). Every rule is checked when the config is built,
and `validate_wavenet_config` checks a plain mapping (what a YAML file gives); both raise
pydantic's `ValidationError` naming the field(s) and the rule broken.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

__all__ = [
    "LIMITS",
    "WavenetConfig",
    "validate_wavenet_config",
    "derive_stacks",
    "SyntheticDataConfig",
    "DataConfig",
    "TrainConfig",
    "SamplingConfig",
    "ExperimentConfig",
    "load_config",
]


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


# ======================================================================================
# Data, training and experiment configs
# ======================================================================================


class SyntheticDataConfig(BaseModel):
    """The embedded default dataset: listening sessions cut from real music, and the EDA of a
    simulated listener (see wavenet_lib.data.synthetic, .playlists and .listener)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    n_recordings: PositiveInt = 8
    n_subjects: PositiveInt = 4
    duration_s: PositiveFloat = 120.0
    seed: int = Field(default=0, ge=0, lt=2**32, description="Seed of the synthetic dataset.")
    listener: Literal["loudness_rise", "spectral_novelty"] = Field(
        default="loudness_rise",
        description="The listener's rule: SCRs after rises of loudness over the last seconds "
        "(loudness_rise) or after changes of timbre (spectral_novelty); see wavenet_lib.data.listener.",
    )
    latency_s: tuple[PositiveFloat, PositiveFloat] | None = Field(
        default=None,
        description="Range (s) of event → SCR-onset latencies (default: the rule's own, "
        "1.0-2.5 s for loudness_rise, 2.5-4.0 s for spectral_novelty).",
    )
    threshold: PositiveFloat | None = Field(
        default=None, description="Feature threshold (dB) for an event (default: the rule's own)."
    )
    evoked_probability: float = Field(
        default=0.9, ge=0.0, le=1.0, description="Chance that a feature event evokes an SCR."
    )
    min_event_gap_s: PositiveFloat = Field(default=5.0, description="Least time (s) between feature events.")
    spontaneous_per_min: tuple[float, float] = Field(
        default=(1.0, 3.0), description="Range of each subject's spontaneous SCR rate (per minute)."
    )
    excerpt_s: tuple[PositiveFloat, PositiveFloat] = Field(
        default=(12.0, 45.0), description="Range of excerpt lengths (s) in a listening session."
    )
    pause_s: tuple[float, float] = Field(
        default=(0.0, 4.0), description="Range of pauses (s) between excerpts (and before the first)."
    )
    gain_db: tuple[float, float] = Field(
        default=(-18.0, 0.0), description="Range of excerpt levels (dB; 0 dB plays a piece at -20 dBFS RMS)."
    )
    level_change_probability: float = Field(
        default=0.3, ge=0.0, le=1.0, description="Chance that an excerpt's level is changed part-way."
    )
    varispeed: float = Field(
        default=0.05,
        ge=0.0,
        lt=0.5,
        description="Excerpts play at a speed in [1 - varispeed, 1 + varispeed].",
    )

    @model_validator(mode="after")
    def _check(self) -> SyntheticDataConfig:
        errors = []
        ranges = {
            "latency_s": self.latency_s,
            "spontaneous_per_min": self.spontaneous_per_min,
            "excerpt_s": self.excerpt_s,
            "pause_s": self.pause_s,
            "gain_db": self.gain_db,
        }
        for name, pair in ranges.items():
            if pair is not None and pair[0] > pair[1]:
                errors.append(f"{name} must be (low, high) with low <= high, got {tuple(pair)}")
        for name in ("spontaneous_per_min", "pause_s"):
            low_high = ranges[name]
            if low_high is not None and low_high[0] < 0:
                errors.append(f"{name} must be non-negative, got {tuple(low_high)}")
        if self.gain_db[1] > 12.0:
            errors.append(f"gain_db must stay <= 12 dB (the audio would clip), got {tuple(self.gain_db)}")
        if errors:
            raise ValueError("; ".join(errors))
        return self


class DataConfig(BaseModel):
    """Where the paired audio + EDA comes from and how it becomes training windows."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    source: Literal["synthetic", "manifest", "pmemo2019", "hku956", "e4"] = "synthetic"
    path: Path | None = Field(
        default=None,
        description="Manifest CSV (source=manifest) or dataset root folder (pmemo2019, hku956, e4).",
    )
    data_dir: Path = Field(
        default=Path("data/synthetic"), description="Where the synthetic dataset is written."
    )
    cache_dir: Path = Field(default=Path(".cache/features"), description="MFCC feature cache.")
    synthetic: SyntheticDataConfig = SyntheticDataConfig()
    target_steps: PositiveInt = Field(
        default=32, le=1 << 20, description="EDA steps per training window trained on, after the context."
    )
    split_by: Literal["subject", "recording"] = "subject"
    val_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    test_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    normalization: Literal["per_recording", "per_dataset"] = "per_recording"
    on_bad_recording: Literal["error", "skip"] = "error"
    duration_tolerance_s: float = Field(
        default=1.0,
        ge=0.0,
        description="How far a stated playback span (E4 tags.csv end mark, HKU956 play_duration) "
        "may exceed the audio (s) before the recording is rejected. Audio and EDA that merely "
        "differ in length are cropped to their overlap.",
    )
    num_workers: int = Field(default=0, ge=0)
    max_nan_gap_s: float = Field(
        default=1.0, ge=0.0, description="Longest NaN run (s) inside an EDA trace that is interpolated."
    )
    min_eda_range_us: PositiveFloat = Field(
        default=1e-3, description="An EDA trace whose max - min (µS) is below this is rejected as flat."
    )
    eda_min_us: float = Field(
        default=0.01,
        ge=0.0,
        allow_inf_nan=False,
        description="Smallest plausible skin conductance (µS); a lower value in the used span is rejected.",
    )
    eda_max_us: float = Field(
        default=100.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Largest plausible skin conductance (µS); a higher value in the used span is rejected.",
    )
    max_eda_jump_us: PositiveFloat | None = Field(
        default=5.0,
        allow_inf_nan=False,
        description="Largest change between two consecutive EDA samples (µS, at the file's rate); a "
        "larger one is an artifact and the recording is rejected. null: not checked.",
    )
    normalization_margin: float = Field(
        default=0.1, ge=0.0, description="Min-max margin: [lo - m*range, hi + m*range] maps to [-1, 1]."
    )
    mfcc_standardize: bool = Field(
        default=True, description="Per-recording cepstral mean and variance normalization of the MFCCs."
    )
    epoch_size: PositiveInt | None = Field(
        default=None, description="Random training windows per epoch (default: ~one pass over the steps)."
    )

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        errors = []
        if self.source != "synthetic" and self.path is None:
            errors.append(f"path is required when source is {self.source!r}")
        if self.eda_min_us >= self.eda_max_us:
            errors.append(f"eda_min_us ({self.eda_min_us:g}) must be < eda_max_us ({self.eda_max_us:g})")
        if self.val_fraction + self.test_fraction >= 1.0:
            errors.append(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} "
                "must be < 1 (nothing left to train on)"
            )
        if errors:
            raise ValueError("; ".join(errors))
        return self


class TrainConfig(BaseModel):
    """Optimisation settings."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    batch_size: PositiveInt = Field(default=16, le=1 << 20)
    max_steps: PositiveInt = Field(default=2000, le=10**9)
    learning_rate: PositiveFloat = 1e-3
    weight_decay: float = Field(default=0.01, ge=0.0)
    warmup_steps: int = Field(default=100, ge=0)
    grad_clip: PositiveFloat | None = 1.0
    val_every: PositiveInt = 100
    val_batches: PositiveInt = 8
    early_stopping_patience: int | None = Field(
        default=None, ge=1, description="Validations without improvement before stopping."
    )
    checkpoint_every: PositiveInt = Field(default=500, description="Steps between last.pt saves.")
    checkpoint_every_minutes: PositiveFloat = Field(
        default=5.0,
        description="Also save last.pt when it is this old (minutes): a crash loses at most this.",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    bf16: bool = Field(default=True, description="bf16 autocast when training on CUDA.")
    min_lr_ratio: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Cosine decay ends at learning_rate * min_lr_ratio."
    )
    adam_betas: tuple[float, float] = Field(default=(0.9, 0.999), description="AdamW (beta1, beta2).")
    history_noise_levels: float = Field(
        default=0.0,
        ge=0.0,
        le=64.0,
        description="Gaussian noise (sd, in quantization levels) added to the past EDA the model "
        "reads during training, not to the targets: generation feeds back its own samples, "
        "which wander by a level or two where the real trace does not (exposure bias). 0 = off.",
    )
    scheduled_sampling: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of the past EDA values the model reads in training that are replaced by "
        "its own sample of them (drawn from a first, gradient-free pass with the `sampling` "
        "section's settings), against exposure bias; the targets stay real. 0 = off.",
    )
    log_every: PositiveInt = Field(
        default=10, description="Steps between rows of metrics_history.csv (validations add rows too)."
    )
    early_stopping_min_delta: float = Field(
        default=0.0, ge=0.0, description="Val loss must drop by more than this (nats/step) to count."
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        errors = []
        if self.warmup_steps >= self.max_steps:
            errors.append(f"warmup_steps ({self.warmup_steps}) must be < max_steps ({self.max_steps})")
        if not all(0.0 <= b < 1.0 for b in self.adam_betas):
            errors.append(f"adam_betas {self.adam_betas} must both lie in [0, 1)")
        if errors:
            raise ValueError("; ".join(errors))
        return self


class SamplingConfig(BaseModel):
    """How generation draws each EDA step from the model's distribution over levels.

    The pipeline (held-out evaluation, notebook 03) and `wavenet-eda generate` use these values
    unless told otherwise, and the reported realism numbers are measured with them. Greedy
    decoding is never the default: samples of the same audio must differ.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    temperature: float = Field(
        default=1.0, ge=1e-3, description="Softmax temperature (>= 0.001, the library's minimum)."
    )
    top_p: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="Nucleus sampling: draw from the most likely levels holding this much probability "
        "(1.0 = the full distribution). Removes the far tails that make one-step cliffs.",
    )
    min_prob: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Epsilon sampling: drop levels less likely than this (the most likely always "
        "stays; 0 = keep all). Removes the far tails without cutting a near level of a skewed "
        "distribution, as top-p does in slow recoveries.",
    )


class ExperimentConfig(BaseModel):
    """One experiment: a name, a seed, and the model, data and training sections."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(description="Run folder name: letters, digits, _ . - (not starting with . or -).")
    seed: int = Field(default=0, ge=0, lt=2**32, description="Seeds weights, data order and sampling.")
    model: WavenetConfig
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    sampling: SamplingConfig = SamplingConfig()

    @field_validator("name")
    @classmethod
    def _plain_folder_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", name):
            raise ValueError(
                f"{name!r} is not a plain folder name: use 1 to 100 letters, digits, '_', '.' or '-', "
                "starting with a letter, digit or '_' (no '/', no '..')"
            )
        return name


def load_config(path: str | Path) -> ExperimentConfig:
    """Read an experiment YAML (safe_load) and validate it.

    Relative paths in the `data` section (path, data_dir, cache_dir) are relative to the
    config file's folder, so a config means the same files whatever the working directory
    (repo root for the CLI, notebooks/ for JupyterLab, nbmake and papermill).

    Raises FileNotFoundError for a missing file, ValueError for YAML that is not a mapping,
    and pydantic.ValidationError (field paths such as ``model.mfcc_hop_size``) for bad values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start}); "
            "save the config as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    experiment = ExperimentConfig.model_validate(data)
    base = path.resolve().parent
    data_cfg = experiment.data
    moved: dict[str, Any] = {
        name: base / value
        for name in ("path", "data_dir", "cache_dir")
        if name in data_cfg.model_fields_set  # defaults stay relative to the working directory
        and (value := getattr(data_cfg, name)) is not None
        and not Path(value).is_absolute()
    }
    return experiment.model_copy(update={"data": data_cfg.model_copy(update=moved)})
