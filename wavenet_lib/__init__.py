"""wavenet_lib: an autoregressive multimodal WaveNet that generates EDA from audio."""

from wavenet_lib.configs import WavenetConfig, validate_wavenet_config

__all__ = ["WavenetConfig", "validate_wavenet_config"]
__version__ = "0.1.0"
