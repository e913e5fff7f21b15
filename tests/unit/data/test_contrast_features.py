"""The model's audio input: standardized MFCCs and their causal contrast against the recent past."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wavenet_lib.data.features import mfcc_statistics, model_features, silent_mfcc_like, standardize_mfcc
from wavenet_lib.data.recordings import load_recording

from .conftest import tiny_experiment, tiny_model


def random_mfcc(frames: int = 300, channels: int = 1, coefficients: int = 8, seed: int = 0) -> np.ndarray:
    return (
        np.random.default_rng(seed).normal(size=(channels, frames, coefficients)).astype(np.float32) * 3 + 1
    )


def test_contrast_off_is_the_standardized_mfcc():
    cfg = tiny_model()
    assert cfg.contrast_frames == 0 and cfg.features_per_frame == cfg.num_mfccs
    mfcc = random_mfcc()
    out = model_features(mfcc, *mfcc_statistics(mfcc), cfg)
    np.testing.assert_array_equal(out, standardize_mfcc(mfcc, *mfcc_statistics(mfcc)))


def test_contrast_of_a_step_falls_linearly_to_zero_over_the_window():
    cfg = tiny_model(mfcc_contrast_seconds=0.5)  # 40 frames/s → 20 frames
    n = cfg.contrast_frames
    assert n == 20 and cfg.features_per_frame == 2 * cfg.num_mfccs
    mfcc = np.zeros((1, 100, cfg.num_mfccs), np.float32)
    mfcc[:, 50:, 0] = 6.0  # c0 rises by 6 at frame 50
    out = model_features(
        mfcc, np.zeros((1, cfg.num_mfccs), np.float32), np.ones((1, cfg.num_mfccs), np.float32), cfg
    )
    contrast = out[0, :, cfg.num_mfccs]
    np.testing.assert_allclose(contrast[:50], 0.0, atol=1e-6)  # a constant has no contrast
    j = np.arange(n)
    np.testing.assert_allclose(contrast[50 : 50 + n], 6.0 * (1 - (j + 1) / n), atol=1e-5)
    np.testing.assert_allclose(contrast[50 + n :], 0.0, atol=1e-5)
    np.testing.assert_array_equal(out[..., : cfg.num_mfccs], mfcc)  # the MFCCs pass unchanged


def test_contrast_is_causal():
    cfg = tiny_model(mfcc_contrast_seconds=1.0)
    mfcc = random_mfcc()
    stats = mfcc_statistics(mfcc)
    changed = mfcc.copy()
    changed[:, 150:] += 10.0
    a, b = model_features(mfcc, *stats, cfg), model_features(changed, *stats, cfg)
    np.testing.assert_array_equal(a[:, :150], b[:, :150])
    assert not np.allclose(a[:, 150:], b[:, 150:])


@pytest.mark.parametrize("first,last", [(0, 40), (5, 60), (37, 300), (200, 260)])
def test_a_window_read_with_its_history_equals_the_whole_recording(first, last):
    cfg = tiny_model(mfcc_contrast_seconds=1.0)  # 40 frames of history
    mfcc = random_mfcc()
    stats = mfcc_statistics(mfcc)
    whole = model_features(mfcc, *stats, cfg)
    np.testing.assert_allclose(
        model_features(mfcc, *stats, cfg, first, last), whole[:, first:last], atol=1e-5
    )


def test_silent_input_has_no_contrast():
    features = torch.randn(2, 50, 16)
    silent = silent_mfcc_like(features, num_mfccs=8)
    torch.testing.assert_close(
        silent[:, :, :8], features[:, :, :8].amin(dim=1, keepdim=True).expand(-1, 50, -1)
    )
    assert silent[:, :, 8:].abs().max() == 0


def test_training_windows_and_whole_recordings_carry_the_same_contrast(tmp_path):
    from wavenet_lib.data.bundle import build_datasets

    cfg = tiny_experiment(tmp_path, model=tiny_model(mfcc_contrast_seconds=1.5))
    bundle = build_datasets(cfg)
    spf = cfg.model.spectral_frames_per_eda_step
    for index in (0, 3):
        item = bundle.val[index]
        full = load_recording(bundle.recordings[item["recording_id"]], cfg)
        s, W = item["start_step"], item["target"].shape[-1]
        assert item["mfcc"].shape[-1] == 2 * cfg.model.num_mfccs
        torch.testing.assert_close(item["mfcc"], full.mfcc[:, s * spf : (s + W) * spf], atol=1e-5, rtol=0)
