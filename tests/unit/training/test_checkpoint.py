"""Checkpoints: atomic writes, weights_only loading, clear errors, config mismatch, load_model."""

from __future__ import annotations

import argparse
import random

import numpy as np
import pytest
import torch

import wavenet_lib.train.checkpoints as ckpt
from tests.unit.training.helpers import assert_same_weights, datasets, tiny_experiment
from wavenet_lib.configs import ExperimentConfig
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.models.wavenet import Wavenet
from wavenet_lib.train.checkpoints import (
    CheckpointError,
    ConfigMismatchError,
    atomic_torch_save,
    capture_rng_state,
    load_model,
    read_checkpoint,
    restore_rng_state,
)
from wavenet_lib.train.loop import train

NORMALIZER = MinMaxNormalizer(lo=2.0, hi=12.0, margin=0.1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    cfg = tiny_experiment(max_steps=2, warmup_steps=1, val_every=2)
    result = train(cfg, *datasets(cfg), run_dir, normalizer=NORMALIZER, progress=False)
    return cfg, run_dir, result


def test_checkpoint_contents_load_with_weights_only(trained):
    cfg, run_dir, result = trained
    payload = torch.load(run_dir / "last.pt", weights_only=True)
    assert payload["format"] == ckpt.CHECKPOINT_FORMAT and payload["step"] == 2
    assert {"model", "optimizer", "scheduler", "rng", "train_state"} <= payload.keys()
    assert payload["config"] == cfg.model_dump(mode="json")
    assert payload["normalizer"] == {"kind": "minmax", "lo": 2.0, "hi": 12.0, "margin": 0.1}
    assert payload["train_state"]["best_val_loss"] == result.best_val_loss
    assert payload["train_state"]["bad_validations"] == 0
    assert {"torch", "numpy", "python", "cuda"} <= payload["rng"][0].keys()


def test_load_model_rebuilds_the_trained_model(trained):
    cfg, run_dir, result = trained
    model, loaded_cfg, normalizer = load_model(run_dir / "best.pt")
    assert isinstance(model, Wavenet) and not model.training
    assert loaded_cfg == cfg and isinstance(loaded_cfg, ExperimentConfig)
    assert normalizer == NORMALIZER
    assert_same_weights(model.state_dict(), result.model.state_dict())


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    atomic_torch_save({"rng": capture_rng_state()}, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random(), np.random.standard_normal())
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random(), np.random.standard_normal())
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1])
    assert expected[2:] == again[2:]


def test_failed_write_leaves_old_file_and_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    atomic_torch_save({"x": torch.ones(3)}, target)
    before = target.read_bytes()

    def broken_save(obj, fh):
        fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"x": torch.zeros(3)}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_write_then_replace(tmp_path):
    target = tmp_path / "sub" / "best.pt"
    atomic_torch_save({"x": 1}, target)
    atomic_torch_save({"x": 2}, target)
    assert torch.load(target, weights_only=True) == {"x": 2}
    assert [p.name for p in target.parent.iterdir()] == ["best.pt"]


@pytest.mark.parametrize(
    "content",
    ["text", "torch_other", "state_dict"],
    ids=["text_file", "torch_dict_without_marker", "bare_state_dict"],
)
def test_a_file_that_is_not_our_checkpoint_is_a_clear_error(tmp_path, content):
    path = tmp_path / "model.pt"
    if content == "text":
        path.write_text("name: not a checkpoint\n")
    elif content == "torch_other":
        torch.save({"weights": torch.ones(2)}, path)
    else:
        torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"model\.pt: not a wavenet-eda checkpoint"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="not a wavenet-eda checkpoint"):
        load_model(path)


def test_a_pickled_object_is_refused_not_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": ckpt.CHECKPOINT_FORMAT, "obj": argparse.Namespace(x=1)}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        read_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_model(tmp_path / "nope.pt")


def test_resume_with_a_different_model_config_names_the_fields(trained, tmp_path):
    cfg, run_dir, _ = trained
    other = tiny_experiment(max_steps=4, model={"hidden_channels": 12, "quantization_levels": 32})
    with pytest.raises(ConfigMismatchError) as info:
        train(other, *datasets(other), run_dir, resume=True, progress=False)
    message = str(info.value)
    assert "hidden_channels (checkpoint: 8, config: 12)" in message
    assert "quantization_levels (checkpoint: 16, config: 32)" in message
    assert "num_mfccs" not in message
    assert torch.load(run_dir / "last.pt", weights_only=True)["step"] == 2  # untouched


def test_resume_with_changed_training_settings_warns(trained, tmp_path):
    cfg, run_dir, _ = trained
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "last.pt").write_bytes((run_dir / "last.pt").read_bytes())
    longer = tiny_experiment(max_steps=3, warmup_steps=1, val_every=2)
    with pytest.warns(UserWarning, match="train.max_steps"):
        result = train(longer, *datasets(longer), copy, resume=True, progress=False)
    assert result.step == 3
