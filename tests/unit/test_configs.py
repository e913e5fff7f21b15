"""WavenetConfig and friends: derived values and one test per validation rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from wavenet_lib.configs import (
    DataConfig,
    ExperimentConfig,
    TrainConfig,
    WavenetConfig,
    derive_stacks,
    load_config,
    validate_wavenet_config,
)

E4 = dict(
    context_size_in_seconds=8,
    audio_sample_rate=16000,
    eda_sample_rate=4,
    mfcc_window_size=400,
    mfcc_hop_size=160,
    num_mfccs=20,
    hidden_channels=64,
)


def cfg(**overrides) -> dict:
    return {**E4, **overrides}


def errors_of(data: dict) -> str:
    with pytest.raises(ValidationError) as info:
        validate_wavenet_config(data)
    return str(info.value)


# --- derived values --------------------------------------------------------------------


def test_e4_time_bases():
    c = WavenetConfig(**E4)
    assert c.spectral_frames_per_eda_step == 25  # 16000 / (4 * 160)
    assert c.audio_time_steps_per_spectral_frame == 160
    assert c.context_size_in_eda_steps == 32
    assert c.upsampling_factor == c.downsampling_factor == 25
    # 800 frames needed; downsampler covers 25, stacks must add 775 with 511 per stack at most
    assert (c.layers_per_stack, c.num_stacks) == (9, 2)
    assert c.receptive_field_frames == 25 + 2 * 511 == 1047
    assert c.receptive_field_frames >= c.context_size_in_frames
    assert c.receptive_field_seconds == pytest.approx(1047 * 160 / 16000)


def test_single_stack_uses_fewest_layers():
    # 50 Hz EDA, 44.1 kHz audio, hop 441 → 2 frames per step; 2 s context = 100 steps = 200 frames
    c = WavenetConfig(
        **cfg(
            audio_sample_rate=44100,
            eda_sample_rate=50,
            mfcc_hop_size=441,
            mfcc_window_size=1024,
            context_size_in_seconds=2,
        )
    )
    assert c.spectral_frames_per_eda_step == 2
    assert (c.layers_per_stack, c.num_stacks) == (8, 1)  # 255 >= 198 > 127
    assert c.receptive_field_frames == 2 + 255


@pytest.mark.parametrize("needed", [1, 2, 3, 100, 511, 512, 775, 1022, 1023, 5000])
@pytest.mark.parametrize("cap", [2, 16, 512])
def test_derive_stacks_is_minimal(needed, cap):
    layers, stacks = derive_stacks(needed, cap)
    assert 2**layers <= cap
    assert stacks * (2**layers - 1) >= needed
    # fewest stacks the cap allows, and with that many stacks one layer fewer would not reach
    assert (stacks - 1) * (cap - 1) < needed
    assert layers == 1 or stacks * (2 ** (layers - 1) - 1) < needed


def test_derived_values_are_read_only():
    c = WavenetConfig(**E4)
    with pytest.raises((AttributeError, ValidationError)):
        c.num_stacks = 3
    assert c.num_stacks == 2
    with pytest.raises(ValidationError):
        c.hidden_channels = 3  # frozen model


# --- one test per rule -------------------------------------------------------------------


def test_rule_frames_per_step_must_be_whole():
    msg = errors_of(cfg(audio_sample_rate=22050, mfcc_hop_size=512))
    assert "spectral_frames_per_eda_step" in msg
    assert "22050" in msg and "512" in msg and "10.7666" in msg


def test_rule_frames_per_step_at_least_one():
    msg = errors_of(cfg(audio_sample_rate=16000, mfcc_hop_size=8000, mfcc_window_size=8000))
    assert "spectral_frames_per_eda_step" in msg and "0.5" in msg


def test_rule_context_whole_number_of_eda_steps():
    msg = errors_of(cfg(context_size_in_seconds=0.3))
    assert "context_size_in_seconds" in msg and "eda_sample_rate" in msg and "1.2" in msg


def test_rule_window_not_shorter_than_hop():
    msg = errors_of(cfg(mfcc_window_size=100))
    assert "mfcc_window_size (100)" in msg and "mfcc_hop_size (160)" in msg


@pytest.mark.parametrize(
    "field",
    [
        "audio_sample_rate",
        "eda_sample_rate",
        "mfcc_window_size",
        "mfcc_hop_size",
        "num_mfccs",
        "hidden_channels",
        "in_channels",
        "out_channels",
        "context_size_in_seconds",
    ],
)
@pytest.mark.parametrize("value", [0, -4])
def test_rule_sizes_and_rates_positive(field, value):
    msg = errors_of(cfg(**{field: value}))
    assert field in msg and "greater than 0" in msg


@pytest.mark.parametrize("value", [0, 1, 3, 500, 768])
def test_rule_stack_cap_power_of_two(value):
    msg = errors_of(cfg(max_stack_receptive_field=value))
    assert "max_stack_receptive_field" in msg


@pytest.mark.parametrize("value", [1, 0, -256])
def test_rule_quantization_levels_at_least_two(value):
    msg = errors_of(cfg(quantization_levels=value))
    assert "quantization_levels" in msg and ">= 2" in msg


def test_rule_past_eda_needs_an_input():
    msg = errors_of(cfg(eda_level_embedding=False))
    assert "eda_level_embedding: false needs eda_value_input: true" in msg
    assert not WavenetConfig(**cfg(eda_level_embedding=False, eda_value_input=True)).eda_level_embedding


def test_rule_unknown_fields_rejected():
    msg = errors_of(cfg(hiden_channels=32))
    assert "hiden_channels" in msg and "Extra inputs are not permitted" in msg


def test_rule_missing_required_field():
    data = cfg()
    del data["num_mfccs"]
    msg = errors_of(data)
    assert "num_mfccs" in msg and "Field required" in msg


def test_rule_dropout_range():
    assert "dropout" in errors_of(cfg(dropout=1.0))


def test_several_broken_rules_reported_together():
    msg = errors_of(cfg(audio_sample_rate=22050, mfcc_hop_size=512, quantization_levels=1))
    assert "spectral_frames_per_eda_step" in msg and "quantization_levels" in msg


def test_validation_runs_when_built_directly():
    with pytest.raises(ValidationError, match="spectral_frames_per_eda_step"):
        WavenetConfig(**cfg(mfcc_hop_size=150))


def test_validate_accepts_mapping_and_returns_config():
    c = validate_wavenet_config(cfg())
    assert isinstance(c, WavenetConfig) and c.num_stacks == 2


# --- data, train, experiment -----------------------------------------------------------------


def test_data_config_needs_path_for_real_sources():
    with pytest.raises(ValidationError, match="path is required"):
        DataConfig(source="e4")


def test_data_config_fractions_leave_training_data():
    with pytest.raises(ValidationError, match="val_fraction \\+ test_fraction"):
        DataConfig(val_fraction=0.5, test_fraction=0.5)


def test_train_config_warmup_below_max_steps():
    with pytest.raises(ValidationError, match="warmup_steps"):
        TrainConfig(max_steps=10, warmup_steps=10)


def test_load_config_reads_yaml_and_names_nested_fields(tmp_path: Path):
    good = tmp_path / "good.yaml"
    good.write_text("name: demo\nseed: 3\nmodel:\n" + "".join(f"  {k}: {v}\n" for k, v in E4.items()))
    exp = load_config(good)
    assert isinstance(exp, ExperimentConfig) and exp.model.num_stacks == 2 and exp.seed == 3

    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("mfcc_hop_size: 160", "mfcc_hop_size: -1"))
    with pytest.raises(ValidationError) as info:
        load_config(bad)
    assert info.value.errors()[0]["loc"] == ("model", "mfcc_hop_size")


def test_load_config_rejects_missing_file_and_non_mapping(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(listy)
    python_tag = tmp_path / "tag.yaml"
    python_tag.write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(python_tag)


def test_relative_data_paths_are_relative_to_the_config_file(tmp_path: Path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    text = "name: demo\nmodel:\n" + "".join(f"  {k}: {v}\n" for k, v in E4.items())
    (folder / "a.yaml").write_text(
        text + "data:\n  source: manifest\n  path: ../data/m.csv\n  cache_dir: /abs/cache\n"
    )
    monkeypatch.chdir(tmp_path.parent)  # the working directory must not matter
    exp = load_config(folder / "a.yaml")
    assert exp.data.path.resolve() == (tmp_path / "data" / "m.csv").resolve()
    assert exp.data.cache_dir == Path("/abs/cache")
    assert exp.data.data_dir == DataConfig().data_dir  # a default stays as it is


@pytest.mark.parametrize(
    "section,field,value,fine",
    [
        ("sampling", "audio_guidance", -0.1, 0.1),
        ("sampling", "audio_guidance", 5.5, 0.1),
        ("sampling", "guidance_reference", "silence", "running_mean"),
        ("train", "audio_dropout", -0.1, 0.2),
        ("train", "audio_dropout", 1.5, 1.0),  # 1: an audio-blind model
    ],
)
def test_guidance_and_audio_dropout_outside_their_range_name_the_field(
    tmp_path: Path, section, field, value, fine
):
    path = tmp_path / "audio.yaml"
    body = "".join(f"  {k}: {v}\n" for k, v in E4.items())
    path.write_text(f"name: demo\nmodel:\n{body}{section}:\n  {field}: {value}\n")
    with pytest.raises(ValidationError) as info:
        load_config(path)
    assert info.value.errors()[0]["loc"] == (section, field)
    path.write_text(f"name: demo\nmodel:\n{body}{section}:\n  {field}: {fine}\n")
    assert getattr(getattr(load_config(path), section), field) == fine


def test_the_guidance_references_the_config_accepts_are_the_ones_generation_knows():
    from typing import get_args

    from wavenet_lib.configs import GUIDANCE_REFERENCES, SamplingConfig

    assert get_args(SamplingConfig.model_fields["guidance_reference"].annotation) == GUIDANCE_REFERENCES
    assert SamplingConfig().guidance_reference == "silent"  # checkpoints saved before it sample as they did
