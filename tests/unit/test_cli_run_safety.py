"""Command-line run safety: every failure is one `error:` line, never a traceback or a lost run."""

from __future__ import annotations

import csv
import errno
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

import wavenet_lib.generation as generation
from tests.unit.test_cli import (
    SPF25,
    tiny_train_config,
    write_audio,
    write_config,
)
from wavenet_lib.cli import main
from wavenet_lib.configs import ExperimentConfig


def status_of(argv: list[str]) -> int:
    """main's exit status, also for argparse's own errors (which raise SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert "Traceback" not in "\n".join(err)
    return errors[0]


# --- configs -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, field",
    [
        ({"name": ".."}, "name: '..' is not a plain folder name"),
        ({"name": "runs/../x"}, "name: 'runs/../x' is not a plain folder name"),
        ({"name": ".hidden"}, "name: '.hidden' is not a plain folder name"),
        ({"seed": 10**30}, "seed: Input should be less than 4294967296"),
        ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
        ({"train": {"learning_rate": float("inf")}}, "train.learning_rate: Input should be a finite number"),
        ({"train": {"learning_rate": float("nan")}}, "train.learning_rate: Input should be a finite number"),
        (
            {"model": {**SPF25, "hidden_channels": 100_000}},
            "model.hidden_channels: Input should be less than",
        ),
        (
            {"model": {**SPF25, "context_size_in_seconds": 1e6}},
            "model.context_size_in_seconds: Input should be",
        ),
        ({"model": {**SPF25, "dropout": float("nan")}}, "model.dropout: Input should be a finite number"),
    ],
    ids=[
        "dotdot",
        "slash",
        "hidden",
        "huge_seed",
        "negative_seed",
        "lr_inf",
        "lr_nan",
        "width",
        "context",
        "dropout_nan",
    ],  # fmt: skip
)
@pytest.mark.parametrize("command", ["validate", "show"])
def test_bad_config_values_give_one_line_naming_the_field(tmp_path, capsys, change, field, command):
    path = write_config(tmp_path / "c.yaml", **change)
    assert main(["config", command, path]) == 2
    assert one_error_line(capsys).startswith(f"error: {path}: {field}")


def test_yaml_infinity_is_refused_as_written_by_a_user(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "model": SPF25}) + "train:\n  learning_rate: .inf\n")
    assert main(["config", "validate", str(path)]) == 2
    assert "train.learning_rate: Input should be a finite number" in one_error_line(capsys)


def test_a_context_needing_too_many_layers_is_refused_quickly(tmp_path, capsys):
    # 600 s at 4 Hz with 25 frames per step and stacks capped at 64 frames: 952 stacks.
    path = write_config(tmp_path / "c.yaml", model={**SPF25, "context_size_in_seconds": 600})
    start = time.perf_counter()
    assert main(["config", "show", path]) == 2
    assert time.perf_counter() - start < 30  # a hang would never return; any machine meets this
    line = one_error_line(capsys)
    assert "context_size_in_seconds (600) needs" in line and "more than 512" in line


def test_a_non_utf8_config_names_the_file(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert main(["config", "validate", str(path)]) == 2
    assert one_error_line(capsys) == (
        f"error: {path}: not UTF-8 text (byte 0xe9 at position 9); save the config as UTF-8"
    )


def test_config_show_prints_a_memory_estimate(tmp_path, capsys):
    assert main(["config", "show", write_config(tmp_path / "c.yaml")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("training memory"))
    assert "MiB per process" in line and "batch_size 16" in line


# --- generate ------------------------------------------------------------------------------------
def gen_args(tmp_path, checkpoint, out=None):
    audio = write_audio(tmp_path / "a.wav", 3.1)
    return [
        "generate",
        "--checkpoint",
        str(checkpoint),
        "--audio",
        audio,
        "--out",
        str(out or tmp_path / "o.csv"),
    ]


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--temperature", "1e-40"], "error: --temperature must be a finite number >= 0.001, got 1e-40"),
        (["--temperature", "0"], "error: --temperature must be a finite number >= 0.001, got 0"),
        (["--temperature", "inf"], "must be a finite number, got 'inf'"),
        (["--temperature", "nan"], "must be a finite number, got 'nan'"),
        (["--seed", str(2**70)], "--seed: must be between 0 and 2^32 - 1"),
        (["--samples", "0"], "error: --samples must be >= 1, got 0"),
    ],
    ids=[
        "tiny_temperature",
        "zero_temperature",
        "inf_temperature",
        "nan_temperature",
        "huge_seed",
        "samples",
    ],
)
def test_bad_sampling_arguments_give_one_line(tmp_path, checkpoint, capsys, extra, expected):
    assert status_of([*gen_args(tmp_path, checkpoint), *extra, "--no-progress"]) == 2
    assert expected in one_error_line(capsys)
    assert not (tmp_path / "o.csv").exists()


def test_tiny_temperature_in_the_library_is_refused_with_the_minimum():
    with pytest.raises(ValueError, match=r">= 0\.001, got 1e-40; use greedy"):
        generation.check_sampling(1, 1e-40, greedy=False)
    generation.check_sampling(1, 1e-40, greedy=True)  # greedy ignores the temperature


@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_unusable_out_is_refused_before_generating(tmp_path, checkpoint, capsys, monkeypatch, where):
    monkeypatch.setattr(generation, "generate_from_audio", lambda *a, **k: pytest.fail("generated first"))
    if where == "folder":
        out = tmp_path / "outdir"
        out.mkdir()
        expected = f"error: --out: {out} is a folder; give a file name"
    else:
        (tmp_path / "file.txt").write_text("x")
        out = tmp_path / "file.txt" / "eda.csv"
        expected = f"error: --out: cannot create the folder {out.parent} for {out}"
    assert main([*gen_args(tmp_path, checkpoint, out), "--no-progress"]) == 2
    assert one_error_line(capsys).startswith(expected)


def test_a_full_disk_while_writing_is_one_line_and_keeps_the_old_file(
    tmp_path, checkpoint, capsys, monkeypatch
):
    out = tmp_path / "o.csv"
    out.write_text("old\n")

    def full(fh, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out))

    monkeypatch.setattr(generation.csv, "writer", full)
    assert main([*gen_args(tmp_path, checkpoint, out), "--no-progress"]) == 1
    assert one_error_line(capsys) == f"error: cannot write {out}: {out}: No space left on device"
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_samples_are_generated_in_bounded_batches(tmp_path, checkpoint, monkeypatch):
    monkeypatch.setattr(generation, "MAX_SAMPLES_PER_BATCH", 2)
    from wavenet_lib.models.wavenet import Wavenet

    sizes = []
    original = Wavenet.generate

    def spy(self, mfcc, *a, **k):
        sizes.append(mfcc.shape[0])
        return original(self, mfcc, *a, **k)

    monkeypatch.setattr(Wavenet, "generate", spy)
    audio = write_audio(tmp_path / "a.wav", 3.1)
    a = generation.generate_from_audio(checkpoint, audio, samples=5, seed=3, progress=False)
    b = generation.generate_from_audio(checkpoint, audio, samples=5, seed=3, progress=False)
    assert sizes == [2, 2, 1, 2, 2, 1]
    assert a.eda_units.shape[0] == 5 and (a.eda_units == b.eda_units).all()
    assert not (a.eda_units[0] == a.eda_units[2]).all()  # batches continue the random stream


def test_a_damaged_checkpoint_is_one_line(tmp_path, checkpoint, capsys):
    from tests.unit.training.test_run_safety import _flip_a_weight_byte

    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(checkpoint.read_bytes())
    _flip_a_weight_byte(damaged)
    args = gen_args(tmp_path, damaged)
    assert main([*args, "--no-progress"]) == 2
    assert "damaged checkpoint, checksum mismatch" in one_error_line(capsys)


def test_a_malicious_checkpoint_message_keeps_its_reason(tmp_path, checkpoint, capsys):
    import argparse

    evil = tmp_path / "evil.pt"
    torch.save({"format": "wavenet-eda-checkpoint", "obj": argparse.Namespace(x=1)}, evil)
    assert main([*gen_args(tmp_path, evil), "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert line.endswith("GLOBAL argparse.Namespace was not an allowed global by default)")


# --- train ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_refuses_a_trained_run_folder_unless_told(tmp_path, capsys):
    path, run_dir = tiny_train_config(tmp_path), tmp_path / "run"
    argv = ["train", path, "--run-dir", str(run_dir), "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    before = (run_dir / "last.pt").read_bytes()
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {run_dir} already holds a trained run") and "--overwrite" in line
    assert (run_dir / "last.pt").read_bytes() == before
    assert main([*argv, "--overwrite"]) == 0
    assert status_of([*argv, "--overwrite", "--resume"]) == 2  # one or the other
    assert "not allowed with argument" in one_error_line(capsys)


@pytest.mark.slow
def test_ctrl_c_saves_and_says_how_to_resume(tmp_path):
    path = tiny_train_config(tmp_path, max_steps=100_000, log_every=1, val_every=1000, checkpoint_every=1000)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wavenet_lib", "train", path, "--run-dir", str(run_dir), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    history = run_dir / "metrics_history.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if history.is_file() and len(history.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert "Traceback" not in err
    assert lines[-1].startswith("error: training interrupted by SIGINT at step ")
    assert lines[-1].endswith(f"continue with: wavenet-eda train {path} --run-dir {run_dir} --resume")
    step = int(lines[-1].split(" at step ")[1].split(";")[0])
    assert torch.load(run_dir / "last.pt", weights_only=True)["step"] == step >= 2
    assert not (run_dir / ".lock").exists()
    with history.open() as fh:
        assert int(list(csv.DictReader(fh))[-1]["step"]) == step


def test_configs_reject_non_finite_floats_everywhere():
    # every float field of every section: allow_inf_nan is off for each config model
    for model in (ExperimentConfig, *(f.annotation for f in ExperimentConfig.model_fields.values())):
        if isinstance(model, type) and hasattr(model, "model_config"):
            assert model.model_config.get("allow_inf_nan") is False, model.__name__


def test_a_full_disk_during_training_is_one_line(tmp_path, capsys, monkeypatch):
    import wavenet_lib.train.loop as loop

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "run" / ".last.pt.x.tmp"))

    monkeypatch.setattr(loop, "train_experiment", full)
    path = write_config(tmp_path / "c.yaml")
    assert main(["train", path, "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 1
    line = one_error_line(capsys)
    assert line == (
        f"error: cannot write the run's files in {tmp_path / 'run'}: "
        f"{tmp_path / 'run' / '.last.pt.x.tmp'}: No space left on device"
    )


def test_training_a_config_too_large_for_the_machine_is_one_line(tmp_path, capsys, monkeypatch):
    import wavenet_lib.train.loop as loop

    monkeypatch.setattr(loop, "available_memory", lambda device: 1024)  # 1 KiB
    monkeypatch.setattr("wavenet_lib.data.bundle.build_datasets", lambda cfg: pytest.fail("data first"))
    path = tiny_train_config(tmp_path)
    assert main(["train", path, "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: training cli-tiny needs about ") and "lower " in line
    assert not (tmp_path / "run" / "last.pt").exists()
