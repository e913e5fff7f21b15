"""`data.mfcc_standardize: dataset`: every recording's MFCCs divided by one shared scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from wavenet_lib.configs import DataConfig
from wavenet_lib.data.bundle import build_datasets
from wavenet_lib.data.features import mfcc_divisor, mfcc_statistics
from wavenet_lib.data.recordings import audio_features

from .conftest import noise, tiny_experiment, write_wav


def test_legacy_booleans_and_bad_values_name_the_field():
    assert DataConfig(mfcc_standardize=True).mfcc_standardize == "per_recording"
    assert DataConfig(mfcc_standardize=False).mfcc_standardize == "none"
    with pytest.raises(ValidationError, match="mfcc_standardize"):
        DataConfig(mfcc_standardize="global")
    with pytest.raises(ValidationError, match="mfcc_scale is only used with mfcc_standardize: dataset"):
        DataConfig(mfcc_scale=((1.0, 2.0),))
    with pytest.raises(ValidationError, match=r"mfcc_scale\.0\.1"):
        DataConfig(mfcc_standardize="dataset", mfcc_scale=((1.0, -2.0),))


def test_divisor_is_the_recordings_own_std_or_the_shared_scale():
    own = np.array([[2.0, 3.0]], np.float32)
    assert mfcc_divisor(DataConfig(), own) is own
    shared = DataConfig(mfcc_standardize="dataset", mfcc_scale=((5.0, 7.0),))
    np.testing.assert_array_equal(mfcc_divisor(shared, own), [[5.0, 7.0]])
    with pytest.raises(ValueError, match="data.mfcc_scale is not set"):
        mfcc_divisor(DataConfig(mfcc_standardize="dataset"), own)
    with pytest.raises(ValueError, match=r"must be 1 row\(s\) of 3 values"):
        mfcc_divisor(shared, np.ones((1, 3), np.float32))


def test_dataset_scale_is_the_median_training_std_and_keeps_level_differences(tmp_path):
    per_recording = build_datasets(tiny_experiment(tmp_path))
    cfg = tiny_experiment(tmp_path, mfcc_standardize="dataset")
    bundle = build_datasets(cfg)
    assert per_recording.mfcc_scale is None
    train_stds = np.stack([per_recording.recordings[r].mfcc_std for r in bundle.splits["train"]])
    np.testing.assert_allclose(bundle.mfcc_scale, np.median(train_stds, axis=0), rtol=1e-6)
    for rid in bundle.recordings:  # every recording, held out too, divided by the same scale
        np.testing.assert_array_equal(bundle.recordings[rid].mfcc_std, bundle.mfcc_scale)
    # Per recording, every coefficient ends with std 1; with the shared scale a recording with
    # more dynamics keeps more: the stds differ as the raw ones do.
    a, b = bundle.splits["train"][:2]
    for rid in (a, b):
        own = per_recording.load(rid, tiny_experiment(tmp_path)).mfcc.numpy()
        np.testing.assert_allclose(own.std(axis=1), 1.0, rtol=1e-3)
    ratio = bundle.load(a, cfg).mfcc.numpy().std(axis=1) / bundle.load(b, cfg).mfcc.numpy().std(axis=1)
    raw = per_recording.recordings[a].mfcc_std / per_recording.recordings[b].mfcc_std
    np.testing.assert_allclose(ratio, raw, rtol=1e-3)
    # The config the bundle hands on carries the scale; built again from it, the data is the same.
    carried = bundle.feature_config(cfg)
    np.testing.assert_allclose(np.asarray(carried.data.mfcc_scale), bundle.mfcc_scale, rtol=1e-6)
    assert per_recording.feature_config(tiny_experiment(tmp_path)) == tiny_experiment(tmp_path)
    again = build_datasets(carried)
    np.testing.assert_allclose(again.mfcc_scale, bundle.mfcc_scale, rtol=1e-6)


def test_new_audio_is_scaled_by_the_carried_scale_and_refused_without_it(tmp_path):
    cfg = tiny_experiment(tmp_path, mfcc_standardize="dataset")
    audio = write_wav(tmp_path / "new.wav", 3.0 * noise(12.0, seed=5))
    with pytest.raises(ValueError, match="data.mfcc_scale is not set"):
        audio_features(audio, cfg)
    carried = build_datasets(cfg).feature_config(cfg)
    features = audio_features(audio, carried).numpy()
    per_recording = audio_features(audio, tiny_experiment(tmp_path)).numpy()
    scale = np.asarray(carried.data.mfcc_scale, np.float32)
    # The same centred MFCCs, divided by the shared scale instead of the file's own std.
    own_std = per_recording.std(axis=1)  # 1 by construction
    np.testing.assert_allclose(own_std, 1.0, rtol=1e-3)
    mean, std = mfcc_statistics(features * scale[:, None, :])
    np.testing.assert_allclose(mean, 0.0, atol=1e-3)
    np.testing.assert_allclose(features * scale[:, None, :] / std[:, None, :], per_recording, atol=1e-3)


def test_a_trained_checkpoint_carries_the_scale_and_generates_from_new_audio(tmp_path):
    import yaml

    from wavenet_lib.configs import load_config
    from wavenet_lib.generation import generate_from_audio
    from wavenet_lib.train.checkpoints import load_model
    from wavenet_lib.train.loop import train_experiment

    tiny = Path(__file__).parents[2] / "notebooks" / "tiny.yaml"
    raw = yaml.safe_load(tiny.read_text())
    raw["data"].update(
        data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"), mfcc_standardize="dataset"
    )
    raw["train"].update({"max_steps": 2, "warmup_steps": 1, "val_every": 2, "checkpoint_every": 2})
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    assert cfg.data.mfcc_scale is None
    train_experiment(cfg, tmp_path / "run", progress=False)
    _, stored, _ = load_model(tmp_path / "run" / "best.pt")
    expected = build_datasets(cfg).mfcc_scale
    np.testing.assert_allclose(np.asarray(stored.data.mfcc_scale), expected, rtol=1e-6)
    audio = write_wav(tmp_path / "new.wav", noise(12.0, sr=cfg.model.audio_sample_rate, seed=3))
    out = generate_from_audio(tmp_path / "run" / "best.pt", audio, samples=2, seed=0, progress=False)
    assert out.eda_units.shape[0] == 2 and np.isfinite(out.eda_units).all()
