"""Pydantic configs for the audio → EDA WaveNet, one module a section.

- `model.py`: `WavenetConfig` (architecture, derived time bases and receptive field), `LIMITS`;
- `data.py`: `DataConfig` (sources, splits, normalization) and `SyntheticDataConfig`;
- `experiment.py`: `TrainConfig`, `SamplingConfig`, `ExperimentConfig` and `load_config`.

Every rule is checked when a config is built; errors are pydantic `ValidationError`s naming the
field path (``model.mfcc_hop_size``) and the rule broken.
"""

from wavenet_lib.configs.data import DataConfig, SyntheticDataConfig
from wavenet_lib.configs.experiment import (
    GUIDANCE_REFERENCES,
    MAX_AUDIO_GUIDANCE,
    ExperimentConfig,
    SamplingConfig,
    TrainConfig,
    load_config,
)
from wavenet_lib.configs.model import LIMITS, WavenetConfig, derive_stacks, validate_wavenet_config

__all__ = [
    "GUIDANCE_REFERENCES",
    "MAX_AUDIO_GUIDANCE",
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
