"""The EDA memory's recurrence (models/eda_memory.py) against its definition, on known traces."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wavenet_lib.models.eda_memory import MEMORY_FEATURES, MemoryTracker, eda_memory


def weighted_means(levels: np.ndarray, decay: float) -> np.ndarray:
    """The definition, written out: at step t, sum_k decay^(t-k) f(d_k) / sum_k decay^(t-k), with
    d_0 = 0 and d_k = levels[k] - levels[k-1]; f = (d, |d|); then the coverage 1 - decay^(t+1).
    levels (T,) → (3, T)."""
    d = np.diff(levels, prepend=levels[0]).astype(np.float64)
    out = np.empty((3, levels.size))
    for t in range(levels.size):
        w = decay ** (t - np.arange(t + 1))
        out[0, t] = (w * d[: t + 1]).sum() / w.sum()
        out[1, t] = (w * np.abs(d[: t + 1])).sum() / w.sum()
        out[2, t] = 1 - decay ** (t + 1)
    return out


def test_memory_is_the_exponentially_weighted_mean_of_the_change_and_its_size():
    rng = np.random.default_rng(0)
    levels = np.clip(128 + np.cumsum(rng.integers(-3, 4, size=(2, 3, 200)), axis=-1), 0, 255)
    decay = math.exp(-1 / 40)
    got = eda_memory(torch.from_numpy(levels), decay, torch.float64).numpy()
    assert got.shape == (2, 3 * MEMORY_FEATURES, 200)
    for b in range(2):
        for c in range(3):
            expected = weighted_means(levels[b, c], decay)
            np.testing.assert_allclose(got[b, 3 * c : 3 * c + 3], expected, atol=1e-12)


def test_known_traces_read_as_their_trend_and_activity():
    decay = math.exp(-1 / 20)
    rising = torch.arange(0, 400, 2)[None, None]  # +2 levels every step
    flicker = torch.tensor([100, 101] * 100)[None, None]  # ±1 every step, no trend
    quiet_after_burst = torch.cat([torch.arange(0, 200, 5), torch.full((160,), 200)])[None, None]
    r = eda_memory(rising, decay)[0, :, -1]
    f = eda_memory(flicker, decay)[0, :, -1]
    q = eda_memory(quiet_after_burst, decay)[0]
    torch.testing.assert_close(r, torch.tensor([2.0, 2.0, 1.0]), atol=1e-3, rtol=0)
    assert abs(float(f[0])) < 0.05 and float(f[1]) == pytest.approx(1.0, abs=1e-3)
    assert float(q[2, 0]) == pytest.approx(1 - decay) and float(q[2, 19]) == pytest.approx(1 - math.exp(-1))
    # After the burst the activity fades with the time constant: e^-1 of it 20 steps later.
    assert float(q[1, 39 + 20] / q[1, 39]) == pytest.approx(math.exp(-1), rel=0.05)


def test_tracker_steps_equal_the_whole_clip_and_bad_decay_is_refused():
    levels = torch.randint(0, 256, (3, 2, 50), generator=torch.Generator().manual_seed(1))
    tracker = MemoryTracker(3, 2, 0.9, torch.float32, torch.device("cpu"))
    steps = torch.stack([tracker.update(levels[..., t]) for t in range(50)], dim=-1)
    assert torch.equal(steps, eda_memory(levels, 0.9))
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="decay"):
            MemoryTracker(1, 1, bad, torch.float32, torch.device("cpu"))
