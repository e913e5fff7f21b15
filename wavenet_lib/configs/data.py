"""Where the data comes from: `DataConfig`, and `SyntheticDataConfig` for the embedded dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

__all__ = ["SyntheticDataConfig", "DataConfig"]


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
    event_selection: Literal["first", "strongest"] = Field(
        default="first",
        description="Which of the feature peaks closer than min_event_gap_s become events: the "
        "first (causal: a refractory period after each event) or the strongest (the rule before "
        "this option: may wait for a later, higher peak); see wavenet_lib.data.listener.feature_events.",
    )
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
    split_seed: int | None = Field(
        default=None,
        ge=0,
        lt=2**32,
        description="Seed of the train/val/test split. null: the experiment's seed. Set it to compare "
        "trainings that differ in their seed on the same held-out recordings.",
    )
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
    mfcc_standardize: Literal["per_recording", "dataset", "none"] = Field(
        default="per_recording",
        description="How the MFCCs are scaled (true / false read as per_recording / none): "
        "per_recording subtracts each recording's mean and divides by its own std (cepstral mean "
        "and variance normalization); dataset subtracts each recording's mean but divides every "
        "recording by the same per-coefficient scale (`mfcc_scale`, by default the median std of "
        "the training recordings), so a loudness change of so many dB reads the same in every "
        "recording; none feeds the raw MFCCs.",
    )
    mfcc_scale: tuple[tuple[PositiveFloat, ...], ...] | None = Field(
        default=None,
        description="With mfcc_standardize: dataset, the divisor of each input channel's "
        "coefficients (in_channels rows of num_mfccs values). null: measured on the training "
        "recordings when the data is built; a trained run's checkpoint stores the values used.",
    )
    epoch_size: PositiveInt | None = Field(
        default=None, description="Random training windows per epoch (default: ~one pass over the steps)."
    )
    event_oversampling: float = Field(
        default=1.0,
        ge=1.0,
        le=100.0,
        description="Draw training windows whose scored steps hold an SCR onset (found in the "
        "recording's own EDA by the SCR detector, no labels) this many times as often as the "
        "others, and weight each window's loss by how much less or more often it is drawn than "
        "uniformly, so the objective stays the same and only its sampling changes. 1 = uniform.",
    )

    @field_validator("mfcc_standardize", mode="before")
    @classmethod
    def _legacy_bool(cls, value: object) -> object:
        # Configs and checkpoints before the dataset option said true / false.
        if value is True:
            return "per_recording"
        if value is False:
            return "none"
        return value

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
        if self.mfcc_scale is not None and self.mfcc_standardize != "dataset":
            errors.append(
                f"mfcc_scale is only used with mfcc_standardize: dataset (got {self.mfcc_standardize!r})"
            )
        if errors:
            raise ValueError("; ".join(errors))
        return self
