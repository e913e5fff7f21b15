"""`compute_mfcc` (PyTorch FFT and matmuls) equals the librosa pipeline it replaced.

Tolerance, stated once: every coefficient within 2e-4 * (1 + |librosa's value|). The
differences are float32 rounding (FFT, summation order of the DCT); the largest are in c0 of
silent frames, about -1131 (the -100 dB floor over 128 bands), where float32's step is 1.2e-4.
A model trained on the old features gives the same logits on the new ones (atol 1e-3). The
reference is the previous implementation, kept in benchmarks/mfcc.py, which times both.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.mfcc import librosa_mfcc
from wavenet_lib.configs import WavenetConfig
from wavenet_lib.data.features import compute_mfcc, standardize_mfcc
from wavenet_lib.models.wavenet import Wavenet

from .conftest import tiny_model

RTOL = 2e-4


def mixed_audio(cfg: WavenetConfig, seconds: float, channels: int) -> np.ndarray:
    """Noise, a loud tone, digital silence and a click: every regime of the log-mel."""
    sr = cfg.audio_sample_rate
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    audio = 0.05 * rng.standard_normal((channels, t.size))
    audio[:, : t.size // 3] += 0.8 * np.sin(2 * np.pi * sr / 7 * t[: t.size // 3])
    audio[:, t.size // 2 : 2 * t.size // 3] = 0.0
    audio[:, 3 * t.size // 4] = 1.0
    return audio.astype(np.float32)


CASES = {
    "tiny": (tiny_model(), 6.3, 1),
    "e4_16k": (
        tiny_model(audio_sample_rate=16000, mfcc_window_size=400, mfcc_hop_size=160, num_mfccs=20),
        5.0,
        1,
    ),
    "stereo_8k": (
        tiny_model(audio_sample_rate=8000, mfcc_window_size=256, mfcc_hop_size=200, in_channels=2),
        4.0,
        2,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_features_equal_librosa_within_tolerance(name, monkeypatch):
    cfg, seconds, channels = CASES[name]
    import wavenet_lib.data.features as features

    monkeypatch.setattr(features, "_CHUNK_FRAMES", 37)  # many chunks, an uneven last one
    audio = mixed_audio(cfg, seconds, channels)
    steps = int(seconds * cfg.eda_sample_rate)
    new, old = compute_mfcc(audio, cfg, steps), librosa_mfcc(audio, cfg, steps)
    assert new.shape == old.shape and new.dtype == np.float32
    np.testing.assert_array_less(np.abs(new - old), RTOL * (1 + np.abs(old)))


def test_a_model_trained_on_librosa_features_gives_the_same_logits():
    cfg = tiny_model(audio_sample_rate=16000, mfcc_window_size=400, mfcc_hop_size=160, num_mfccs=20)
    audio = mixed_audio(cfg, 5.0, 1)
    old, new = librosa_mfcc(audio, cfg, 20), compute_mfcc(audio, cfg, 20)
    mean, std = old.mean(axis=1), old.std(axis=1)  # statistics saved with the "trained" model
    torch.manual_seed(0)
    model = Wavenet(cfg).eval()
    eda = torch.rand(1, 1, 20) * 2 - 1
    with torch.no_grad():
        logits = [model(torch.from_numpy(standardize_mfcc(m, mean, std))[None], eda) for m in (old, new)]
    torch.testing.assert_close(logits[1], logits[0], atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    ("sample_rate", "n_fft", "num_mfccs", "expected"),
    [(16000, 400, 20, 128), (1600, 32, 5, 30), (1600, 32, 31, 31)],
)
def test_n_mels_is_the_most_bands_without_an_empty_filter(sample_rate, n_fft, num_mfccs, expected):
    import warnings

    import librosa

    from wavenet_lib.data.features import n_mels_for

    n_mels = n_mels_for(sample_rate, n_fft, num_mfccs)
    assert n_mels == expected and n_mels >= num_mfccs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels + 1)
        empty_above = any("Empty filters" in str(w.message) for w in caught)
        caught.clear()
        librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
        empty_here = any("Empty filters" in str(w.message) for w in caught)
    if n_mels > num_mfccs:  # the most bands: one more would leave a filter empty (or it is 128)
        assert not empty_here and (empty_above or n_mels == 128)
    else:  # no count >= num_mfccs avoids empty filters: librosa's warning is left to say so
        assert empty_here
