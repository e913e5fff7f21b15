"""Invertible µS ↔ model-unit normalization of EDA.

The model works on [-1, 1] (then quantized by `wavenet_lib.models.quantization`). `MinMaxNormalizer`
maps `[lo - m*range, hi + m*range]` linearly onto [-1, 1], where lo/hi are the fitted minimum
and maximum and `m` the margin (0.1 by default), so generated EDA can go a little beyond what
was seen before being clipped. It is a few plain floats: `to_dict()` goes into a checkpoint
that loads with `torch.load(weights_only=True)`, and `from_dict()` brings it back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["MinMaxNormalizer"]


@dataclass(frozen=True)
class MinMaxNormalizer:
    """Linear map of µS onto model units; `lo`/`hi` are the fitted extremes in µS.

    Attributes:
        lo: fitted minimum (µS).
        hi: fitted maximum (µS); must exceed `lo`.
        margin: fraction of hi - lo added on both sides before mapping onto [-1, 1].
    """

    lo: float
    hi: float
    margin: float = 0.1

    def __post_init__(self) -> None:
        if not (np.isfinite(self.lo) and np.isfinite(self.hi) and self.hi > self.lo):
            raise ValueError(f"MinMaxNormalizer needs finite lo < hi, got lo={self.lo}, hi={self.hi}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")

    @classmethod
    def fit(cls, *traces: np.ndarray, margin: float = 0.1) -> MinMaxNormalizer:
        """Fit on one or more µS traces (any shapes); NaNs are ignored."""
        values = np.concatenate([np.ravel(np.asarray(t, dtype=np.float64)) for t in traces])
        return cls(float(np.nanmin(values)), float(np.nanmax(values)), float(margin))

    @property
    def low(self) -> float:
        """µS value mapped to -1."""
        return self.lo - self.margin * (self.hi - self.lo)

    @property
    def high(self) -> float:
        """µS value mapped to +1."""
        return self.hi + self.margin * (self.hi - self.lo)

    @property
    def us_per_unit(self) -> float:
        """µS per model unit: the slope of `denormalize` (the map is linear)."""
        return (self.high - self.low) / 2.0

    def normalize(self, us: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """µS → model units (any shape; not clipped)."""
        return (us - self.low) * (2.0 / (self.high - self.low)) - 1.0

    def denormalize(self, units: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Model units → µS (any shape)."""
        return (units + 1.0) * self.us_per_unit + self.low

    def to_dict(self) -> dict[str, float | str]:
        """Plain floats (and the kind), safe for `torch.save` / `weights_only=True` loading."""
        return {"kind": "minmax", "lo": float(self.lo), "hi": float(self.hi), "margin": float(self.margin)}

    @classmethod
    def from_dict(cls, data: dict) -> MinMaxNormalizer:
        """Inverse of `to_dict`."""
        if data.get("kind", "minmax") != "minmax":
            raise ValueError(f"not a min-max normalizer: {data!r}")
        return cls(float(data["lo"]), float(data["hi"]), float(data.get("margin", 0.1)))
