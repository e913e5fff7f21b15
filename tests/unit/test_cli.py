"""The wavenet-eda command line: config show/validate, train, generate, and its error messages."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from tests.tiny_configs import TINY_MODEL
from wavenet_lib.cli import main
from wavenet_lib.configs import ExperimentConfig
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.generation import eda_to_microsiemens
from wavenet_lib.models.wavenet import Wavenet

# 1600 Hz audio, hop 16, EDA 4 Hz → 25 frames per step; 2 s context.
SPF25 = TINY_MODEL
# 1600 Hz audio, hop 200, EDA 4 Hz → 2 frames per step (a window the MFCC filters fit at this rate).
SPF2 = {**SPF25, "mfcc_window_size": 400, "mfcc_hop_size": 200, "num_mfccs": 8}
NORMALIZER = MinMaxNormalizer(lo=2.0, hi=12.0, margin=0.1)


def write_config(path, **sections) -> str:
    data = {"name": "cli-tiny", "seed": 0, "model": SPF25, "data": {"target_steps": 4}}
    data.update(sections)
    path.write_text(yaml.safe_dump(data))
    return str(path)


def tiny_train_config(tmp_path, **train) -> str:
    """A synthetic-data experiment that trains in seconds (3 recordings, 2 steps); its YAML path."""
    return write_config(
        tmp_path / "c.yaml",
        model=SPF2,
        data={
            "data_dir": str(tmp_path / "data"),
            "cache_dir": str(tmp_path / "cache"),
            "synthetic": {"n_recordings": 3, "n_subjects": 3, "duration_s": 20},
            "target_steps": 4,
            "val_fraction": 0.34,
            "test_fraction": 0.0,
        },
        train={"batch_size": 4, "max_steps": 2, "warmup_steps": 1, "val_every": 2, "device": "cpu", **train},
    )


def test_config_show_prints_the_derived_architecture(tmp_path, capsys):
    path = write_config(tmp_path / "c.yaml")
    assert main(["config", "show", path]) == 0
    out = capsys.readouterr().out
    cfg = ExperimentConfig.model_validate(yaml.safe_load(open(path)))
    m = cfg.model
    # 2 s * 4 Hz * 25 = 200 frames; stacks cover 200 - 25 = 175 with per-stack cap 64 → 3 stacks of 6.
    assert (m.spectral_frames_per_eda_step, m.layers_per_stack, m.num_stacks) == (25, 6, 3)
    n_params = sum(p.numel() for p in Wavenet(m).parameters())
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "25 = audio_sample_rate / (eda_sample_rate * mfcc_hop_size)" in lines["frames per EDA step"]
    assert lines["layers per stack"].split()[3] == "6"
    assert lines["stacks"].split()[1] == "3"
    rf = m.receptive_field_frames  # 1 + 3 * 63 + 24 = 214
    assert rf == 214
    assert f"{rf} frames = {rf * 16 / 1600:.4g} s" in lines["receptive field"]
    assert "yes: 214 >= 200 frames (+14 frames excess)" in lines["context covered"]
    assert f"{n_params:,}" in lines["parameters"]


def test_config_validate_ok(tmp_path, capsys):
    path = write_config(tmp_path / "c.yaml")
    assert main(["config", "validate", path]) == 0
    assert capsys.readouterr().out.strip() == f"OK: {path}"


def test_config_validate_names_each_bad_field(tmp_path, capsys):
    path = write_config(
        tmp_path / "bad.yaml", model={**SPF25, "hidden_channels": 0}, train={"batch_size": -1}
    )
    assert main(["config", "validate", path]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: {path}: model.hidden_channels: ")
    assert err[1].startswith(f"error: {path}: train.batch_size: ")
    assert len(err) == 2


def test_config_validate_rule_error_from_a_subprocess_has_no_traceback(tmp_path):
    path = write_config(tmp_path / "bad.yaml", model={**SPF25, "mfcc_hop_size": 15})
    proc = subprocess.run(
        [sys.executable, "-m", "wavenet_lib", "config", "validate", path], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"error: {path}: model: spectral_frames_per_eda_step" in proc.stderr
    assert "mfcc_hop_size" in proc.stderr


@pytest.mark.parametrize("command", [["config", "show"], ["config", "validate"], ["train"]])
def test_missing_config_file(tmp_path, capsys, command):
    assert main([*command, str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err.strip() == f"error: config file not found: {tmp_path / 'nope.yaml'}"


def test_yaml_that_is_not_a_mapping(tmp_path, capsys):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    assert main(["config", "show", str(path)]) == 2
    assert "expected a mapping" in capsys.readouterr().err


# --- generate -------------------------------------------------------------------------------------
class _Windows(torch.utils.data.Dataset):
    def __init__(self, cfg: ExperimentConfig, n: int) -> None:
        m = cfg.model
        steps = m.first_full_step + cfg.data.target_steps
        g = torch.Generator().manual_seed(0)
        self.mfcc = torch.randn(n, 1, steps * m.spectral_frames_per_eda_step, m.num_mfccs, generator=g)
        self.target = torch.randint(0, m.quantization_levels, (n, 1, steps), generator=g)
        self.prev = self.target.roll(1, -1).float() / (m.quantization_levels - 1) * 2 - 1

    def __len__(self) -> int:
        return len(self.mfcc)

    def __getitem__(self, i: int) -> dict:
        return {"mfcc": self.mfcc[i], "eda_prev": self.prev[i], "target": self.target[i]}


def write_audio(path, seconds: float, sr: int = 1600) -> str:
    t = np.arange(int(round(seconds * sr))) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t) * (t % 1 < 0.4)).astype(np.float32), sr)
    return str(path)


def test_generate_writes_a_csv_in_microsiemens(tmp_path, checkpoint, capsys):
    audio = write_audio(tmp_path / "a.wav", 3.1)  # 3.1 s * 4 Hz → 12 whole steps
    out = tmp_path / "out" / "eda.csv"
    args = ["generate", "--checkpoint", str(checkpoint), "--audio", audio, "--out", str(out)]
    assert main([*args, "--samples", "3", "--seed", "1", "--no-progress"]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["time_s", "eda_us_s0", "eda_us_s1", "eda_us_s2"]
    assert len(rows) == 1 + 12
    assert [float(r[0]) for r in rows[1:]] == [t / 4 for t in range(12)]
    values = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    low, high = 2.0 - 1.0, 12.0 + 1.0  # the normalizer's [-1, 1] in µS (margin 0.1 of the 10 µS range)
    assert ((values >= low - 1e-6) & (values <= high + 1e-6)).all()
    assert "wrote 3 sample(s) x 12 steps" in capsys.readouterr().out
    # Same seed, same samples; the single-sample file has one value column.
    single = tmp_path / "one.csv"
    assert main([*args[:-1], str(single), "--seed", "1", "--no-progress"]) == 0
    one = list(csv.reader(single.open()))
    assert one[0] == ["time_s", "eda_us"] and len(one) == 13


def test_generate_e4_format(tmp_path, checkpoint):
    audio = write_audio(tmp_path / "a.wav", 3.0)
    out = tmp_path / "EDA.csv"
    argv = ["generate", "--checkpoint", str(checkpoint), "--audio", audio, "--out", str(out)]
    start = ["--start-time", "1600000000.5"]
    assert main([*argv, "--format", "e4", "--samples", "2", "--greedy", "--no-progress", *start]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "1600000000.500000, 1600000000.500000" and lines[1] == "4.000000, 4.000000"
    assert len(lines) == 2 + 12
    first = [float(v) for v in lines[2].split(",")]
    assert first[0] == first[1]  # greedy: both samples equal


def test_generate_e4_start_time_defaults_to_now(tmp_path, checkpoint):
    import time

    audio = write_audio(tmp_path / "a.wav", 3.0)
    out = tmp_path / "EDA.csv"
    before = time.time()
    argv = ["generate", "--checkpoint", str(checkpoint), "--audio", audio, "--out", str(out)]
    assert main([*argv, "--format", "e4", "--greedy", "--no-progress"]) == 0
    start = float(out.read_text().splitlines()[0])
    assert before - 1 <= start <= time.time() + 1


def test_generate_refuses_audio_shorter_than_the_receptive_field(tmp_path, checkpoint, capsys):
    audio = write_audio(tmp_path / "a.wav", 2.0)  # SPF2: receptive field 17 frames * 200 / 1600 s
    out = tmp_path / "o.csv"
    argv = ["generate", "--checkpoint", str(checkpoint), "--audio", audio, "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "a.wav: audio is 2.00 s long" in err[0]
    assert "shorter than the model's receptive field of 2.12 s" in err[0] and "--allow-short-audio" in err[0]
    assert not out.exists()
    assert main([*argv, "--allow-short-audio"]) == 0
    assert len(out.read_text().splitlines()) == 1 + 8


def test_start_time_needs_e4_format(tmp_path, checkpoint, capsys):
    audio = write_audio(tmp_path / "a.wav", 3.0)
    argv = ["generate", "--checkpoint", str(checkpoint), "--audio", audio, "--out", str(tmp_path / "o.csv")]
    assert main([*argv, "--start-time", "5", "--no-progress"]) == 2
    assert "--start-time is written by --format e4 only" in capsys.readouterr().err


@pytest.mark.parametrize("problem", ["missing_audio", "too_short", "not_a_checkpoint", "missing_checkpoint"])
def test_generate_user_errors(tmp_path, checkpoint, capsys, problem):
    audio = write_audio(tmp_path / "a.wav", 3.0)
    ckpt = str(checkpoint)
    argv_extra: list[str] = []
    if problem == "missing_audio":
        audio = str(tmp_path / "nope.wav")
    elif problem == "too_short":
        audio = write_audio(tmp_path / "short.wav", 0.1)
        argv_extra = ["--allow-short-audio"]
    elif problem == "not_a_checkpoint":
        ckpt = write_config(tmp_path / "c.yaml")
    else:
        ckpt = str(tmp_path / "nope.pt")
    argv = ["generate", "--checkpoint", ckpt, "--audio", audio, "--out", str(tmp_path / "o.csv")]
    assert main([*argv, "--no-progress", *argv_extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    expected = {
        "missing_audio": "nope.wav: audio file not found",
        "too_short": "shorter than one EDA step",
        "not_a_checkpoint": "c.yaml: not a wavenet-eda checkpoint",
        "missing_checkpoint": "checkpoint not found",
    }[problem]
    assert expected in err
    assert not (tmp_path / "o.csv").exists()


def test_eda_to_microsiemens():
    units = np.array([-1.0, 0.0, 1.0])
    assert np.allclose(eda_to_microsiemens(units, NORMALIZER), [1.0, 7.0, 13.0])
    t = eda_to_microsiemens(torch.tensor(units), NORMALIZER)
    assert isinstance(t, torch.Tensor) and torch.allclose(t, torch.tensor([1.0, 7.0, 13.0], dtype=t.dtype))
    with pytest.raises(ValueError, match="no EDA normalization"):
        eda_to_microsiemens(units, None)


# --- train end to end -------------------------------------------------------------------------------
@pytest.mark.slow
def test_train_then_resume_then_generate_from_the_command_line(tmp_path, capsys):
    """Synthetic data → `train` → `train --resume` (already done) → `generate`."""
    path = tiny_train_config(tmp_path)
    run_dir = tmp_path / "run"
    assert main(["train", path, "--run-dir", str(run_dir), "--no-progress"]) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    assert {"last.pt", "best.pt", "metrics_history.csv"} <= {p.name for p in run_dir.iterdir()}
    normalizer = torch.load(run_dir / "best.pt", weights_only=True)["normalizer"]
    assert normalizer["kind"] == "minmax" and normalizer["hi"] > normalizer["lo"]
    assert main(["train", path, "--run-dir", str(run_dir), "--resume", "--no-progress"]) == 0
    wav = sorted((tmp_path / "data").glob("*.wav"))[0]
    out = tmp_path / "gen.csv"
    argv = ["generate", "--checkpoint", str(run_dir / "best.pt"), "--audio", str(wav), "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    assert len(out.read_text().splitlines()) == 1 + 20 * 4


# --- data ------------------------------------------------------------------------------------------
def test_data_lists_recordings_used_and_left_out(tmp_path, capsys):
    from tests.unit.data.test_real_recordings import e4_session

    root = tmp_path / "e4"
    for i in range(3):
        e4_session(root / f"s0{i}" / "day1", song_s=12.0, before_s=2.0, after_s=20.0, seed=i)
    (root / "s00" / "day1" / "song.mp3").unlink()
    data = {
        "source": "e4",
        "path": str(root),
        "cache_dir": str(tmp_path / "cache"),
        "target_steps": 4,
        "split_by": "recording",
        "val_fraction": 0.0,
        "test_fraction": 0.0,
        "on_bad_recording": "skip",
    }
    path = write_config(tmp_path / "c.yaml", data=data)
    assert main(["data", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    used = [line.split() for line in lines if line.startswith("used ")]
    assert [u[1:5] for u in used] == [
        ["e4-s01-day1", "train", "12.00", "s"],
        ["e4-s02-day1", "train", "12.00", "s"],
    ]
    assert all(" ".join(u[5:]) == "crop: EDA 2.00 s before + 20.00 s after (played 12.00 s)" for u in used)
    left = [line for line in lines if line.startswith("left out")]
    assert (
        len(left) == 1
        and "e4-s00-day1" in left[0]
        and "s00/day1: no audio file in the session folder" in left[0]
    )
    assert lines[-1].startswith("2 recording(s) used (train 2, val 0, test 0; 0.4 min), 1 left out")
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2  # the MFCC cache is filled

    path = write_config(tmp_path / "c.yaml", data={**data, "on_bad_recording": "error"})
    assert main(["data", path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and err[0].startswith("error: ")
        and "s00/day1: no audio file in the session folder" in err[0]
    )


def test_generate_takes_its_sampling_defaults_from_the_config(tmp_path, checkpoint, capsys):
    from wavenet_lib.configs import SamplingConfig
    from wavenet_lib.generation import generate_from_audio
    from wavenet_lib.train.checkpoints import load_model

    audio = write_audio(tmp_path / "a.wav", 3.0)
    model, cfg, norm = load_model(checkpoint)
    nucleus_of_one = cfg.model_copy(update={"sampling": SamplingConfig(top_p=1e-6)})
    kwargs = dict(config=nucleus_of_one, normalizer=norm, samples=2, progress=False)
    greedy = generate_from_audio(model, audio, greedy=True, **kwargs).eda_units
    by_default = generate_from_audio(model, audio, **kwargs).eda_units  # top_p from the config
    np.testing.assert_array_equal(by_default, greedy)
    overridden = generate_from_audio(model, audio, top_p=1.0, **kwargs).eda_units
    assert not np.array_equal(overridden[0], overridden[1])  # full distribution: samples differ
    argv = ["generate", "--checkpoint", str(checkpoint), "--audio", audio, "--out", str(tmp_path / "o.csv")]
    assert main([*argv, "--top-p", "1.5", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == "error: --top-p must be in (0, 1], got 1.5"
    # min_prob the same way: a config whose min_prob leaves only the mode draws the greedy trace
    only_the_mode = cfg.model_copy(update={"sampling": SamplingConfig(min_prob=0.999)})
    kwargs["config"] = only_the_mode
    np.testing.assert_array_equal(generate_from_audio(model, audio, **kwargs).eda_units, greedy)
    spread = generate_from_audio(model, audio, min_prob=0.0, **kwargs).eda_units
    assert not np.array_equal(spread[0], spread[1])
    for command in (argv, ["screen", *argv[1:]]):
        assert main([*command, "--min-prob", "1", "--no-progress"]) == 2
        assert capsys.readouterr().err.strip() == "error: --min-prob must be in [0, 1), got 1"
    # audio_guidance too: the config's value is what a call without the argument draws with
    guided = cfg.model_copy(update={"sampling": cfg.sampling.model_copy(update={"audio_guidance": 1.5})})
    kwargs["config"] = guided
    from_config = generate_from_audio(model, audio, **kwargs).eda_units
    explicit = generate_from_audio(model, audio, audio_guidance=1.5, **{**kwargs, "config": cfg}).eda_units
    np.testing.assert_array_equal(from_config, explicit)
    for command in (argv, ["screen", *argv[1:]]):
        assert main([*command, "--audio-guidance", "6", "--no-progress"]) == 2
        assert capsys.readouterr().err.strip() == "error: --audio-guidance must be in [0, 5], got 6"
    # and what guidance compares the audio with: the config's reference unless told otherwise
    sampling = guided.sampling.model_copy(update={"guidance_reference": "running_mean"})
    running_config = guided.model_copy(update={"sampling": sampling})
    running = generate_from_audio(model, audio, **{**kwargs, "config": running_config})
    explicit = generate_from_audio(model, audio, guidance_reference="running_mean", **kwargs)
    np.testing.assert_array_equal(running.eda_units, explicit.eda_units)
    seen: list[dict] = []  # it reaches the model (this tiny model's draws barely depend on the audio)
    generate = model.generate

    def spy(*args, **kw):
        seen.append(kw)
        return generate(*args, **kw)

    model.generate = spy
    try:
        generate_from_audio(model, audio, guidance_reference="running_mean", **kwargs)
        generate_from_audio(model, audio, **kwargs)  # the config's: silent, the model's default
    finally:
        del model.generate
    assert seen[0]["guidance_reference"] == "running_mean" and "guidance_reference" not in seen[1]
    for command in (argv, ["screen", *argv[1:]]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--guidance-reference", "silence", "--no-progress"])
        assert exit_info.value.code == 2
        assert "--guidance-reference: invalid choice: 'silence'" in capsys.readouterr().err
