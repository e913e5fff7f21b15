"""Attribution of an audio file (`attribute_file`, `wavenet-eda attribute`): histories, EDA files, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.unit.test_cli import write_audio
from wavenet_lib.attribute_file import attribute_file, write_attribution_csv
from wavenet_lib.attribution import attribute_audio
from wavenet_lib.cli import main
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.data.prime import read_prime
from wavenet_lib.data.recordings import audio_features
from wavenet_lib.generation import generate_from_audio
from wavenet_lib.train.checkpoints import load_model


def test_without_eda_the_attribution_is_the_mean_over_generated_histories(tmp_path, checkpoint):
    audio = write_audio(tmp_path / "a.wav", 6.0)  # 24 steps at 4 Hz
    result = attribute_file(checkpoint, audio, samples=3, seed=1, n_steps=8)
    assert not result.recorded and result.attribution.n_histories == 3
    assert result.history_us.shape == (3, 24) and result.attribution.unit == "us"
    generated = generate_from_audio(checkpoint, audio, samples=3, seed=1, progress=False)
    model, _, _ = load_model(checkpoint)
    expected = attribute_audio(
        model, generated.features, generated.eda_units, normalizer=generated.normalizer, n_steps=8
    )
    np.testing.assert_allclose(result.attribution.frame_attribution, expected.frame_attribution, rtol=1e-5)
    np.testing.assert_allclose(result.history_us, generated.values[:, 0])
    times = [t for t, _ in result.top_moments(24)]
    values = [v for _, v in result.top_moments(24)]
    assert values == sorted(values, reverse=True) and sorted(times) == list(np.arange(24) / 4.0)


def test_recorded_eda_at_another_rate_is_the_history_in_its_own_range(tmp_path, checkpoint):
    audio = write_audio(tmp_path / "a.wav", 6.0)
    eda = tmp_path / "EDA.csv"  # an E4 export at 8 Hz, 5 s: shorter than the audio
    values = 4.0 + 0.5 * np.sin(np.arange(40) / 6.0)
    eda.write_text("1600000000.0\n8.0\n" + "\n".join(f"{v:.5f}" for v in values) + "\n")
    result = attribute_file(checkpoint, audio, eda=eda, n_steps=8)
    assert result.recorded and result.attribution.n_histories == 1
    assert result.attribution.step_attribution.size == 20  # cut to the EDA's 5 s
    eda_us = read_prime(eda, 4.0)
    np.testing.assert_allclose(result.history_us, eda_us[None, :20])
    model, cfg, _ = load_model(checkpoint)
    norm = MinMaxNormalizer.fit(eda_us[:20], margin=cfg.data.normalization_margin)
    mfcc = audio_features(audio, cfg)[:, : 20 * model.spf]
    expected = attribute_audio(model, mfcc, norm.normalize(eda_us[:20]), normalizer=norm, n_steps=8)
    np.testing.assert_allclose(result.attribution.frame_attribution, expected.frame_attribution, rtol=1e-5)
    out = write_attribution_csv(result, tmp_path / "out" / "attribution.csv")
    table = pd.read_csv(out)
    assert list(table.columns) == ["time_s", "attribution_us"] and len(table) == 20
    np.testing.assert_allclose(table["attribution_us"], result.attribution.step_attribution, rtol=1e-5)


def test_attribute_command_writes_the_csv_and_the_figure(tmp_path, checkpoint, capsys):
    audio = write_audio(tmp_path / "a.wav", 6.0)
    out, plot = tmp_path / "att.csv", tmp_path / "fig" / "att.png"
    argv = ["attribute", "--checkpoint", str(checkpoint), "--audio", audio, "--out", str(out)]
    assert main([*argv, "--samples", "2", "--plot", str(plot), "--device", "cpu"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["time_s", "attribution_us"] and len(table) == 24
    assert plot.is_file() and plot.stat().st_size > 0
    printed = capsys.readouterr().out
    assert "with 2 generated histories" in printed and "strongest moments: " in printed


def test_attribute_command_baseline_choice(tmp_path, checkpoint):
    audio = write_audio(tmp_path / "a.wav", 6.0)
    eda = tmp_path / "eda.csv"
    eda.write_text("time,eda\n" + "".join(f"{t / 4:.2f},{4 + 0.3 * np.sin(t / 3):.4f}\n" for t in range(24)))
    tables = {}
    for baseline in ("recent_past", "silent"):
        out = tmp_path / f"{baseline}.csv"
        argv = ["attribute", "--checkpoint", str(checkpoint), "--audio", audio, "--out", str(out)]
        assert main([*argv, "--eda", str(eda), "--baseline", baseline, "--device", "cpu"]) == 0
        tables[baseline] = pd.read_csv(out)["attribution_us"].to_numpy()
    silent = attribute_file(checkpoint, audio, eda=eda, baseline="silent")
    np.testing.assert_allclose(tables["silent"], silent.attribution.step_attribution, rtol=1e-4, atol=1e-9)
    assert silent.attribution.baseline == "silent"
    assert not np.allclose(tables["silent"], tables["recent_past"])
    with pytest.raises(ValueError, match="baseline must be one of"):
        attribute_file(checkpoint, audio, eda=eda, baseline="zeros")


def test_cli_choices_are_the_library_names():
    from wavenet_lib.attribution import BASELINES
    from wavenet_lib.cli import build_parser
    from wavenet_lib.evoked import REFERENCES

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    option = {a.dest: a for a in sub["attribute"]._actions}["baseline"]
    assert tuple(option.choices) == BASELINES and option.default == BASELINES[0]
    option = {a.dest: a for a in sub["screen"]._actions}["reference"]
    assert tuple(option.choices) == REFERENCES and option.default == REFERENCES[0]


@pytest.mark.parametrize(
    "problem", ["missing_audio", "nan_eda", "samples", "rate_without_eda", "out_is_folder"]
)
def test_attribute_command_user_errors_are_one_line(tmp_path, checkpoint, capsys, problem):
    audio = write_audio(tmp_path / "a.wav", 6.0)
    eda = tmp_path / "eda.csv"
    eda.write_text("time_s,eda_us\n0,5\n0.25,nan\n0.5,5\n")
    out = tmp_path / "att.csv"
    argv = ["attribute", "--checkpoint", str(checkpoint), "--out", str(out)]
    if problem == "missing_audio":
        argv, expected = [*argv, "--audio", str(tmp_path / "nope.wav")], "nope.wav"
    elif problem == "nan_eda":
        argv, expected = [*argv, "--audio", audio, "--eda", str(eda)], "eda.csv: EDA has 1 NaN/inf value(s)"
    elif problem == "samples":
        argv, expected = [*argv, "--audio", audio, "--samples", "0"], "--samples must be >= 1, got 0"
    elif problem == "rate_without_eda":
        argv, expected = [*argv, "--audio", audio, "--eda-rate", "4"], "--eda-rate needs --eda"
    else:  # refused before any work, as generate and screen refuse it
        argv = ["attribute", "--checkpoint", str(checkpoint), "--out", str(tmp_path), "--audio", audio]
        expected = f"--out: {tmp_path} is a folder"
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and expected in err, err
    assert not out.exists()


def test_an_eda_array_gets_the_checks_a_file_gets(tmp_path, checkpoint):
    from wavenet_lib.errors import DataError

    audio = write_audio(tmp_path / "a.wav", 6.0)
    with pytest.raises(DataError, match="EDA has 1 NaN/inf value"):
        attribute_file(checkpoint, audio, eda=np.r_[np.full(10, 5.0), np.nan])
    with pytest.raises(DataError, match="EDA value -1 at sample 3 is not a positive µS value"):
        attribute_file(checkpoint, audio, eda=np.r_[np.full(3, 5.0), -1.0, np.full(6, 5.0)])
    with pytest.raises(DataError, match="EDA holds no values"):
        attribute_file(checkpoint, audio, eda=np.zeros(0))
