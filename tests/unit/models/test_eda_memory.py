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
    for bad in (1.0, -0.5):
        with pytest.raises(ValueError, match="decay"):
            MemoryTracker(1, 1, bad, torch.float32, torch.device("cpu"))
    with pytest.raises(ValueError, match="needs a decay in \\(0, 1\\), trend lags, or both"):
        MemoryTracker(1, 1, 0.0, torch.float32, torch.device("cpu"))
    with pytest.raises(ValueError, match="trend lags must be whole numbers of steps >= 1"):
        MemoryTracker(1, 1, 0.0, torch.float32, torch.device("cpu"), lags=[0, 2])


def test_trend_features_are_the_changes_of_level_over_each_lag():
    """level(t) - level(t - k) per lag k, the start level standing in before the clip's start;
    per signal, lags side by side."""
    trace = np.array([5, 7, 10, 10, 4, 4, 9])
    levels = torch.from_numpy(np.stack([trace, trace[::-1].copy()]))[None]  # (1, 2, 7)
    lags = [1, 2, 4]
    got = eda_memory(levels, 0.0, torch.float64, lags).numpy()[0]  # (2 * 3, 7)
    assert got.shape == (6, 7)
    for c in range(2):
        x = levels[0, c].numpy()
        padded = np.concatenate([np.full(4, x[0]), x])
        for j, k in enumerate(lags):
            expected = x - padded[4 - k : 4 - k + len(x)]
            np.testing.assert_array_equal(got[c * 3 + j], expected)
    # signal 0 by hand: t=2 is 10 - 7, 10 - 5, 10 - 5 (the start level before the clip)
    np.testing.assert_array_equal(got[:3, 2], [3, 5, 5])
    np.testing.assert_array_equal(got[:3, 6], [5, 5, -1])  # 9 - 4, 9 - 4, 9 - 10


def test_slow_memory_and_trend_side_by_side_and_step_by_step():
    levels = torch.randint(0, 256, (3, 2, 40), generator=torch.Generator().manual_seed(2))
    both = eda_memory(levels, 0.9, lags=[1, 3])
    assert both.shape == (3, 2 * MEMORY_FEATURES + 2 * 2, 40)
    assert torch.equal(both[:, : 2 * MEMORY_FEATURES], eda_memory(levels, 0.9))
    assert torch.equal(both[:, 2 * MEMORY_FEATURES :], eda_memory(levels, 0.0, lags=[1, 3]))
    tracker = MemoryTracker(3, 2, 0.9, torch.float32, torch.device("cpu"), lags=[1, 3])
    steps = torch.stack([tracker.update(levels[..., t]) for t in range(40)], dim=-1)
    assert torch.equal(steps, both)


def test_trend_lags_in_the_config():
    from tests.tiny_configs import TINY_MODEL
    from wavenet_lib.configs import WavenetConfig

    assert WavenetConfig(**TINY_MODEL).eda_trend_lags == []  # configs written before it
    cfg = WavenetConfig(**TINY_MODEL, eda_trend_lags=[1, 2, 4])
    assert cfg.memory_features_per_signal == 3
    both = WavenetConfig(**TINY_MODEL, eda_trend_lags=[2], eda_memory_seconds=3)
    assert both.memory_features_per_signal == 4
    for bad, message in (([1, 1], "must not repeat a lag"), ([0], "greater than 0")):
        with pytest.raises(ValueError, match=f"eda_trend_lags(.|\\n)*{message}"):
            WavenetConfig(**TINY_MODEL, eda_trend_lags=bad)
