"""Traces in µS: the shapes the metrics accept (`as_traces`), and free-running metrics of
generated vs real traces (RMSE, Pearson r, DTW)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def as_traces(traces_us: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """One trace (T,), a stack (S, T) or a sequence of (T_i,) traces → list of float64 (T_i,) arrays."""
    if isinstance(traces_us, np.ndarray):
        arr = np.asarray(traces_us, dtype=np.float64)
        if arr.ndim not in (1, 2):
            raise ValueError(f"traces must be (T,) or (S, T), got shape {arr.shape}")
        return [arr] if arr.ndim == 1 else list(arr)
    out = [np.asarray(t, dtype=np.float64).ravel() for t in traces_us]
    if not out:
        raise ValueError("need at least one trace")
    return out


def free_running_metrics(
    real_us: np.ndarray,
    generated_us: np.ndarray,
    band_rad: float | None = None,
    dtw_max_samples: int | None = 4000,
) -> dict[str, float]:
    """RMSE, Pearson r and DTW distance between a real and a generated trace.

    Args:
        real_us, generated_us: (T,) traces in µS at the same (EDA) rate and of the same length.
        band_rad: optional Sakoe-Chiba band radius for DTW, as a fraction of the length
            (librosa's `band_rad`: the warping path stays within band_rad * T samples of the
            diagonal).
        dtw_max_samples: DTW needs a T×T cost matrix; longer traces are block-averaged by the
            smallest integer factor that brings them under this (None: never).

    Returns:
        {"rmse_us", "pearson_r" (NaN if either trace is constant), "dtw_us" (accumulated
        |difference| along the optimal path divided by the path length, µS), "dtw_factor"}.
    """
    real = np.asarray(real_us, dtype=np.float64).ravel()
    gen = np.asarray(generated_us, dtype=np.float64).ravel()
    if real.shape != gen.shape or real.size == 0:
        raise ValueError(
            f"real and generated traces must have the same non-zero length, got {real.size}, {gen.size}"
        )
    rmse = float(np.sqrt(np.mean((real - gen) ** 2)))
    r = float(np.corrcoef(real, gen)[0, 1]) if real.std() > 0 and gen.std() > 0 else float("nan")
    factor = 1 if dtw_max_samples is None else max(1, math.ceil(real.size / dtw_max_samples))
    a, b = _block_mean(real, factor), _block_mean(gen, factor)
    import librosa  # imported here: slow to import, and only this function needs it

    kwargs = {"global_constraints": True, "band_rad": band_rad} if band_rad is not None else {}
    cost, path = librosa.sequence.dtw(X=a[None, :], Y=b[None, :], metric="euclidean", **kwargs)  # type: ignore[call-overload]
    return {
        "rmse_us": rmse,
        "pearson_r": r,
        "dtw_us": float(cost[-1, -1] / len(path)),
        "dtw_factor": float(factor),
    }


def _block_mean(x: np.ndarray, factor: int) -> np.ndarray:
    # Plain block means (not a filter): DTW only needs the trace's shape at a coarser step.
    if factor == 1:
        return x
    n = x.size // factor * factor
    return x[:n].reshape(-1, factor).mean(axis=1)
