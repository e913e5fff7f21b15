"""Which device a run uses: the config's `train.device`, or the best one available for "auto"."""

from __future__ import annotations

import torch

__all__ = ["select_device"]


def select_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """`preference` ("cpu", "cuda", "mps") or, for "auto", CUDA, then MPS, then CPU.

    Raises:
        RuntimeError: the requested device is not available.
    """
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu"
    if preference == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device is 'cuda' but CUDA is not available; use 'auto' or 'cpu'")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if preference == "mps":
        if not mps_ok:
            raise RuntimeError("train.device is 'mps' but MPS is not available; use 'auto' or 'cpu'")
        return torch.device("mps")
    if preference == "cpu":
        return torch.device("cpu")
    raise ValueError(f"train.device must be auto, cpu, cuda or mps, got {preference!r}")
