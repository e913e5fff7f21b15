"""One experiment: `ExperimentConfig` (name, seed, model, data, training, sampling) and `load_config`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args

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

from wavenet_lib.configs.data import DataConfig
from wavenet_lib.configs.model import WavenetConfig

__all__ = ["TrainConfig", "SamplingConfig", "ExperimentConfig", "load_config"]


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
    audio_dropout: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of training windows whose audio is replaced by the silent input "
        "(each MFCC at its minimum over the window), so that the model also learns what EDA does "
        "without sound: the p_silent that audio guidance compares against is then a trained "
        "distribution rather than an extrapolation (conditioning dropout, as classifier-free "
        "guidance trains it). 0 = off. 1 trains an audio-blind model, the fair control for "
        "'does the model use the audio?': every window, validation included, reads the silent "
        "input, and its `audio_blind` rows in `metrics.json` are then a model trained as such "
        "(its `generated` rows feed it audio it never trained on: read the `audio_blind` ones).",
    )
    ema_decay: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Keep an exponential moving average of the weights (Polyak averaging), "
        "updated after every optimizer step with this decay; validation, best.pt's choice and "
        "inference use the average, resume restores it. 0.998 averages over ~500 steps. 0 = off.",
    )
    log_every: PositiveInt = Field(
        default=10, description="Steps between rows of metrics_history.csv (validations add rows too)."
    )
    early_stopping_min_delta: float = Field(
        default=0.0, ge=0.0, description="Val loss must drop by more than this (nats/step) to count."
    )
    best_checkpoint: Literal["validation", "final"] = Field(
        default="validation",
        description="What best.pt (the checkpoint evaluation and generation load) holds: "
        "'validation', the state of the lowest validation loss; 'final', the state after max_steps "
        "(validation is still logged). A model's samples can keep getting more realistic after "
        "its validation loss stops falling (docs/design.md).",
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        errors = []
        if self.warmup_steps >= self.max_steps:
            errors.append(f"warmup_steps ({self.warmup_steps}) must be < max_steps ({self.max_steps})")
        if not all(0.0 <= b < 1.0 for b in self.adam_betas):
            errors.append(f"adam_betas {self.adam_betas} must both lie in [0, 1)")
        if self.best_checkpoint == "final" and self.early_stopping_patience is not None:
            errors.append(
                "early_stopping_patience must be unset (null) with best_checkpoint: final: the run "
                "keeps its state after max_steps, so nothing may stop it earlier"
            )
        if errors:
            raise ValueError("; ".join(errors))
        return self


# The largest audio guidance weight accepted (config, library and command line): at 0.5 the
# quickstart's samples already have 1.7x the real SCR rate (notebook 05).
MAX_AUDIO_GUIDANCE = 5.0
# What audio guidance amplifies the audio's effect over (`SamplingConfig.guidance_reference`);
# generation and the command line check names against the tuple derived from it.
GuidanceReference = Literal["silent", "running_mean"]
GUIDANCE_REFERENCES: tuple[str, ...] = get_args(GuidanceReference)


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
    audio_guidance: float = Field(
        default=0.0,
        ge=0.0,
        le=MAX_AUDIO_GUIDANCE,
        description="Audio guidance w: draw from log p(audio) + w * (log p(audio) - log p(reference)), "
        "the model's next-step distribution with the audio's effect over `guidance_reference` "
        "amplified (classifier-free guidance; 0 = the model as trained). Costs a second pass per step.",
    )
    guidance_reference: GuidanceReference = Field(
        default="silent",
        description="What the audio's effect is amplified over: 'silent' (a silent input, an input "
        "never seen in training) or 'running_mean' (each frame replaced by the mean of the audio "
        "since sampling began: the same sound with nothing new in it; causal).",
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
