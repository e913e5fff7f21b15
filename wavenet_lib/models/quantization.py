"""The one EDA quantizer shared by the data pipeline and the model.

EDA travels in normalized units on [-1, 1]. `quantization_levels` bins have evenly spaced
centres that include both ends: centre_i = -1 + 2 i / (levels - 1). Quantizing picks the
nearest centre, so a round trip moves a value by at most half a bin, 1 / (levels - 1).
Values outside [-1, 1] are clipped first.
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
import torch

__all__ = ["START_VALUE", "quantize", "dequantize", "bin_width", "level_centres"]

# The EDA value every clip is read as starting from (step 0's previous value, in normalized
# units): the middle of the range. Training windows that start a recording, teacher-forced
# scoring, generation and the evoked rise all use it; the model sees its level.
START_VALUE = 0.0


def bin_width(levels: int) -> float:
    """Distance between neighbouring bin centres in normalized units."""
    if levels < 2:
        raise ValueError(f"quantization levels must be >= 2, got {levels}")
    return 2.0 / (levels - 1)


@overload
def quantize(x: torch.Tensor, levels: int) -> torch.Tensor: ...
@overload
def quantize(x: np.ndarray, levels: int) -> np.ndarray: ...
def quantize(x: torch.Tensor | np.ndarray, levels: int) -> torch.Tensor | np.ndarray:
    """Normalized EDA in [-1, 1] → class indices in [0, levels) (int64)."""
    scale = (levels - 1) / 2.0
    if isinstance(x, torch.Tensor):
        return torch.round((x.clamp(-1.0, 1.0) + 1.0) * scale).long()
    return np.rint((np.clip(x, -1.0, 1.0) + 1.0) * scale).astype(np.int64)


@overload
def dequantize(idx: torch.Tensor, levels: int, dtype: Any = None) -> torch.Tensor: ...
@overload
def dequantize(idx: np.ndarray, levels: int, dtype: Any = None) -> np.ndarray: ...
def dequantize(idx: torch.Tensor | np.ndarray, levels: int, dtype: Any = None) -> torch.Tensor | np.ndarray:
    """Class indices → bin centres in normalized units (float32 unless `dtype` given)."""
    width = bin_width(levels)
    if isinstance(idx, torch.Tensor):
        return idx.to(dtype or torch.float32) * width - 1.0
    return (np.asarray(idx).astype(dtype or np.float32) * width - 1.0).astype(dtype or np.float32)


def level_centres(levels: int, device: torch.device | str | None = None, dtype: Any = None) -> torch.Tensor:
    """Every bin centre, (levels,) in normalized units: what the softmax's classes stand for."""
    return dequantize(torch.arange(levels, device=device), levels, dtype)
