"""Stimulus screening, audio attribution, primed generation, and their checks against known events."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from torch import nn

from tests.tiny_configs import TINY_MODEL
from tests.unit.test_cli import NORMALIZER, write_audio
from wavenet_lib.attribution import RECENT_PAST_SECONDS, attribute_audio, expected_eda
from wavenet_lib.cli import main
from wavenet_lib.configs import ExperimentConfig, WavenetConfig
from wavenet_lib.data.features import mean_mfcc_like, recent_past_mfcc_like, running_mean_mfcc_like
from wavenet_lib.data.prime import prime_normalizer, read_prime
from wavenet_lib.errors import DataError
from wavenet_lib.evaluate.stimulus_validation import (
    add_metrics_section,
    onset_mass_fraction,
    onset_profile,
    screening_correlation,
    true_events,
)
from wavenet_lib.generation import generate_from_audio
from wavenet_lib.models.quantization import dequantize
from wavenet_lib.models.wavenet import Wavenet
from wavenet_lib.screening import (
    find_audio_files,
    ranking_reliability,
    samples_for_reliability,
    screen_stimuli,
)

SR = 1600  # TINY_MODEL audio rate


def experiment(tmp_path, model=TINY_MODEL) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {"name": "stim", "model": model, "data": {"target_steps": 4, "cache_dir": str(tmp_path / "cache")}}
    )


def write_bursts(path, onsets_s, seconds: float = 30.0, seed: int = 0) -> str:
    """Quiet noise with loud 0.5 s noise bursts at `onsets_s`."""
    rng = np.random.default_rng(seed)
    y = 0.005 * rng.standard_normal(int(seconds * SR))
    for onset in onsets_s:
        i = int(onset * SR)
        y[i : i + SR // 2] += 0.8 * rng.standard_normal(SR // 2) * np.exp(-np.arange(SR // 2) / (0.2 * SR))
    sf.write(path, np.clip(y, -1, 1).astype(np.float32), SR)
    return str(path)


# --- a model whose response is known ----------------------------------------------------------
class BurstResponder(nn.Module):
    """Generates an SCR 1 s after every loud EDA step (standardized c0 above 1), plus small noise.

    Stands in for a trained Wavenet in `generate_from_audio`: same `generate` signature.
    """

    def __init__(self, config: WavenetConfig) -> None:
        super().__init__()
        self.config, self.spf = config, config.spectral_frames_per_eda_step
        self.dummy = nn.Parameter(torch.zeros(1))
        self.seen_frames: list[int] = []

    def generate(
        self, mfcc, prime=None, temperature=1.0, greedy=False, generator=None, progress=False, top_p=1.0,
        min_prob=0.0,
    ):  # fmt: skip
        b, _, frames, _ = mfcc.shape
        self.seen_frames.append(frames)
        steps = frames // self.spf
        loud = mfcc[:, 0, :, 0].reshape(b, steps, self.spf).mean(-1) > 1.0  # (B, T)
        onsets = loud & ~torch.cat([torch.zeros_like(loud[:, :1]), loud[:, :-1]], dim=1)
        t = torch.arange(steps, dtype=torch.float32)
        out = torch.full((b, 1, steps), -0.5)
        for i in range(b):
            for s in torch.nonzero(onsets[i]).flatten().tolist():
                lag = (t - s - 4) / 4.0  # seconds after the SCR onset (1 s after the sound)
                out[i, 0] += 0.3 * torch.where(
                    lag > 0, (torch.exp(-lag / 3) - torch.exp(-lag / 0.7)) / 0.5, 0.0
                )
        out += 0.0005 * torch.randn(out.shape, generator=generator)
        if prime is not None:  # persistence after the prime: continue at its last value
            p = prime.shape[-1]
            out[..., :p] = prime
            out[..., p:] = prime[..., -1:]
        return out


def test_screening_ranks_files_by_their_number_of_loud_events(tmp_path):
    folder = tmp_path / "stimuli"
    folder.mkdir()
    write_bursts(folder / "none.wav", [])
    write_bursts(folder / "two.wav", [5, 17])
    write_bursts(folder / "four.wav", [3, 9, 15, 21])
    (folder / "broken.wav").write_bytes(b"not audio at all")
    exp = experiment(tmp_path)
    result = screen_stimuli(
        BurstResponder(exp.model),
        [folder],
        samples=3,
        seed=0,
        config=exp,
        normalizer=NORMALIZER,
        progress=False,
    )
    names = [p.split("/")[-1] for p in result.ranking["file"]]
    assert names == ["four.wav", "two.wav", "none.wav"]
    assert list(result.ranking["rank"]) == [1, 2, 3]
    per_min = dict(zip(names, result.ranking["scr_per_min"], strict=True))
    assert per_min["four.wav"] == pytest.approx(4 / 0.5, abs=0.01)  # 4 SCRs in 30 s, every sample
    assert per_min["two.wav"] == pytest.approx(2 / 0.5, abs=0.01)
    assert per_min["none.wav"] == 0
    four = result.ranking.iloc[0]
    assert four["frac_with_scr"] == 1 and four["frac_with_scr_se"] == 0
    assert four["scr_amplitude_us"] == pytest.approx(0.3 * 6.0, rel=0.2)  # 0.3 units x 6 µS per unit
    assert four["duration_s"] == 30 and four["samples"] == 3
    assert np.isfinite(four["scr_per_min_se"])
    assert [p.name for p, _ in result.skipped] == ["broken.wav"]
    assert result.skipped[0][1].startswith("unreadable audio (")  # with the decoder's reason
    assert result.reliability == pytest.approx(1.0)  # every half of the samples gives the same order
    assert len(result.per_sample) == 9


def per_sample_table(values: np.ndarray) -> pd.DataFrame:
    """(files, samples) statistic values as `ScreeningResult.per_sample` rows."""
    files, samples = values.shape
    return pd.DataFrame(
        {
            "file": np.repeat([f"f{i}.wav" for i in range(files)], samples),
            "sample": np.tile(np.arange(samples), files),
            "evoked_rise_us_per_min": values.ravel(),
        }
    )


def test_ranking_reliability_known_answers():
    rng = np.random.default_rng(0)
    effect = rng.normal(size=(300, 1))
    exact = ranking_reliability(per_sample_table(np.repeat(effect, 8, axis=1)))
    assert exact == pytest.approx(1.0)  # no sampling noise: any samples give the same order
    noise = ranking_reliability(per_sample_table(rng.normal(size=(300, 8))))
    assert abs(noise) < 0.35  # files that do not differ: the order is noise
    # File effect sd 1, sample noise sd 1, 4 samples per half: r_half = 1 / (1 + 1/4) = 0.8,
    # stepped up to 8 samples 2 r / (1 + r) = 0.89.
    mixed = ranking_reliability(per_sample_table(effect + rng.normal(size=(300, 8))))
    assert 0.84 < mixed < 0.93
    assert np.isnan(ranking_reliability(per_sample_table(rng.normal(size=(10, 1)))))  # one half only
    assert np.isnan(ranking_reliability(per_sample_table(rng.normal(size=(2, 8)))))  # two files
    with_nan = per_sample_table(np.repeat(effect[:5], 4, axis=1))
    with_nan.loc[0, "evoked_rise_us_per_min"] = np.nan  # a sample without a value is left out
    assert ranking_reliability(with_nan) == pytest.approx(1.0)


def test_samples_for_reliability_is_the_spearman_brown_prophecy():
    assert samples_for_reliability(0.5, 8, 0.9) == 72  # k = 0.9 * 0.5 / (0.5 * 0.1) = 9 times
    assert samples_for_reliability(0.9, 8, 0.9) == 8
    assert samples_for_reliability(0.95, 8, 0.9) == 4
    assert samples_for_reliability(1.0, 8) == 1
    assert samples_for_reliability(0.0, 8) is None and samples_for_reliability(float("nan"), 8) is None
    with pytest.raises(ValueError, match="target must be in"):
        samples_for_reliability(0.5, 8, 1.0)
    with pytest.raises(ValueError, match="samples must be >= 1"):
        samples_for_reliability(0.5, 0)


def test_find_audio_files_errors_name_the_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no audio files"):
        find_audio_files([tmp_path / "empty"])
    with pytest.raises(DataError, match="nope: no such file or folder"):
        find_audio_files([tmp_path / "nope"])
    with pytest.raises(DataError, match="no audio files or folders given"):
        find_audio_files([])


# --- attribution --------------------------------------------------------------------------------
def tiny_wavenet(seed: int = 0) -> Wavenet:
    torch.manual_seed(seed)
    return Wavenet(WavenetConfig(**TINY_MODEL)).eval()


def test_attribution_is_causal_exactly():
    model = tiny_wavenet()
    spf, steps = model.spf, 24
    mfcc = torch.randn(1, steps * spf, model.config.num_mfccs, generator=torch.Generator().manual_seed(1))
    history = torch.linspace(-0.2, 0.3, steps)
    for last in (5, 12):
        att = attribute_audio(model, mfcc, history, target_steps=slice(0, last + 1), n_steps=8)
        assert np.all(att.frame_attribution[(last + 1) * spf :] == 0.0), (
            "a later moment drove an earlier step"
        )
        assert np.any(att.frame_attribution[: (last + 1) * spf] != 0.0)
        assert att.step_attribution.shape == (steps,)
        assert att.step_attribution.sum() == pytest.approx(att.frame_attribution.sum())
        assert abs(att.convergence_delta) < 0.05 * max(abs(att.total), 1e-3)


class LaggedLoudness(nn.Module):
    """Expected EDA at step t rises with c0 of the first frame of step t-2, and nothing else."""

    def __init__(self, config: WavenetConfig) -> None:
        super().__init__()
        self.config, self.spf = config, config.spectral_frames_per_eda_step
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, mfcc, eda_prev):
        b, _, frames, _ = mfcc.shape
        steps = frames // self.spf
        drive = mfcc[:, 0, :: self.spf, 0]  # (B, T): c0 of each step's first frame
        drive = torch.cat([torch.zeros(b, 2), drive[:, :-2]], dim=1)  # two steps later
        q = self.config.quantization_levels
        centres = dequantize(torch.arange(q), q)
        return (drive[:, None, :] * centres[None, :, None] * 3.0)[:, :, None, :].expand(b, q, 1, steps)


def test_attribution_finds_the_moments_a_known_model_responds_to():
    cfg = WavenetConfig(**TINY_MODEL)
    model = LaggedLoudness(cfg)
    spf, steps = model.spf, 16
    mfcc = torch.zeros(1, steps * spf, cfg.num_mfccs)
    mfcc[0, 3 * spf, 0] = 2.0  # a loud moment at step 3 ...
    mfcc[0, 9 * spf, 0] = 1.0  # ... and a softer one at step 9
    att = attribute_audio(model, mfcc, torch.zeros(steps), baseline="silent", n_steps=64)
    assert att.baseline == "silent"
    nonzero = set(np.flatnonzero(att.frame_attribution).tolist())
    assert nonzero == {3 * spf, 9 * spf}
    assert att.frame_attribution[3 * spf] > att.frame_attribution[9 * spf] > 0
    # Completeness: the attributions add up to what the audio adds over silence.
    with torch.no_grad():
        silent = torch.zeros_like(mfcc)
        gain = (
            expected_eda(model(mfcc[None], torch.zeros(1, 1, steps))).sum()
            - expected_eda(model(silent[None], torch.zeros(1, 1, steps))).sum()
        )
    assert att.total == pytest.approx(float(gain), rel=1e-5)
    assert att.frame_attribution.sum() == pytest.approx(att.total, rel=1e-3)
    # A moment whose effect falls after the target steps gets nothing.
    early = attribute_audio(
        model, mfcc, torch.zeros(steps), baseline="silent", target_steps=slice(0, 10), n_steps=16
    )
    assert set(np.flatnonzero(early.frame_attribution).tolist()) == {3 * spf}


def test_recent_past_baseline_credits_the_change_not_the_sound_that_goes_on():
    cfg = WavenetConfig(**TINY_MODEL)
    model = LaggedLoudness(cfg)
    spf, steps = model.spf, 40
    frame_rate = cfg.audio_sample_rate / cfg.mfcc_hop_size
    mfcc = torch.zeros(1, steps * spf, cfg.num_mfccs)
    mfcc[0, 10 * spf :, 0] = 1.0  # the sound gets louder at step 10 and stays so
    silent = attribute_audio(model, mfcc, torch.zeros(steps), baseline="silent", n_steps=16)
    recent = attribute_audio(model, mfcc, torch.zeros(steps), n_steps=16)  # the default
    assert recent.baseline == "recent_past"
    past = round(RECENT_PAST_SECONDS * frame_rate)  # frames in the recent past
    change = 10 * spf
    # Against silence every loud step is credited alike; against the recent past only the
    # moments after the change (until the past has caught up), most the first of them.
    loud_steps = silent.step_attribution[10 : steps - 2]
    np.testing.assert_allclose(loud_steps, loud_steps[0], rtol=1e-5)
    credited = np.flatnonzero(np.abs(recent.frame_attribution) > 1e-9)
    assert credited.min() >= change and credited.max() < change + past
    assert recent.frame_attribution[change] == recent.frame_attribution.max() > 0
    with pytest.raises(ValueError, match="baseline must be one of"):
        attribute_audio(model, mfcc, torch.zeros(steps), baseline="quiet")


def test_recent_past_and_clip_mean_inputs():
    x = torch.arange(12, dtype=torch.float32).reshape(1, 6, 2)  # frames 0..5, two columns
    past = recent_past_mfcc_like(x, 2)
    # frame f is the mean of frames f-2, f-1 (fewer at the start; frame 0 is itself)
    np.testing.assert_allclose(past[0, :, 0].numpy(), [0, 0, 1, 3, 5, 7])
    mean = mean_mfcc_like(x, num_mfccs=1)
    np.testing.assert_allclose(mean[0, :, 0].numpy(), 5.0)
    np.testing.assert_array_equal(mean[0, :, 1].numpy(), 0.0)  # a contrast column of a constant input
    np.testing.assert_allclose(mean_mfcc_like(x, first_frame=4)[0, 0, 0].item(), 9.0)  # prime frames left out
    assert recent_past_mfcc_like(x, 2, num_mfccs=1)[0, :, 1].abs().max() == 0
    with pytest.raises(ValueError, match="frames must be a whole number >= 1"):
        recent_past_mfcc_like(x, 0)


def test_running_mean_input_is_the_causal_mean_since_its_first_frame():
    x = torch.arange(12, dtype=torch.float32).reshape(1, 6, 2)  # column 0: frames 0, 2, 4, ..., 10
    np.testing.assert_allclose(running_mean_mfcc_like(x)[0, :, 0].numpy(), [0, 1, 2, 3, 4, 5])
    late = running_mean_mfcc_like(x, num_mfccs=1, first_frame=3)  # a prime's 3 frames left as they are
    np.testing.assert_allclose(late[0, :, 0].numpy(), [0, 2, 4, 6, 7, 8])
    np.testing.assert_array_equal(late[0, :3, 1].numpy(), x[0, :3, 1].numpy())
    assert late[0, 3:, 1].abs().max() == 0  # contrast columns of the averaged frames
    # causal: changing frame 4 changes nothing before it
    y = x.clone()
    y[0, 4] += 100.0
    assert torch.equal(running_mean_mfcc_like(y)[0, :4], running_mean_mfcc_like(x)[0, :4])
    steady = torch.full((1, 500, 3), 0.1)  # a constant input comes back exactly: guidance adds nothing
    assert torch.equal(running_mean_mfcc_like(steady), steady)
    for bad in (-1, 6, 1.5):
        with pytest.raises(ValueError, match="first_frame must be a whole number in"):
            running_mean_mfcc_like(x, first_frame=bad)


def test_attribution_in_microsiemens_scales_with_the_normalization():
    model = tiny_wavenet()
    mfcc = torch.randn(1, 10 * model.spf, model.config.num_mfccs, generator=torch.Generator().manual_seed(2))
    units = attribute_audio(model, mfcc, torch.zeros(10), n_steps=8)
    us = attribute_audio(model, mfcc, torch.zeros(10), n_steps=8, normalizer=NORMALIZER)
    assert units.unit == "units" and us.unit == "us"
    np.testing.assert_allclose(us.frame_attribution, units.frame_attribution * 6.0, rtol=1e-4, atol=1e-9)
    with pytest.raises(ValueError, match=r"eda_history must be \(1, 10\)"):
        attribute_audio(model, mfcc, torch.zeros(9))


def test_attribution_over_several_histories_is_their_mean():
    model = tiny_wavenet()
    steps = 12
    g = torch.Generator().manual_seed(3)
    mfcc = torch.randn(1, steps * model.spf, model.config.num_mfccs, generator=g)
    a = torch.linspace(-0.2, 0.3, steps)[None]
    b = 0.1 * torch.sin(torch.arange(steps, dtype=torch.float32))[None]
    one_a = attribute_audio(model, mfcc, a, n_steps=8)
    one_b = attribute_audio(model, mfcc, b, n_steps=8)
    both = attribute_audio(model, mfcc, torch.stack([a, b]), n_steps=8, internal_batch_size=3)
    assert one_a.n_histories == 1 and both.n_histories == 2
    assert not np.allclose(one_a.frame_attribution, one_b.frame_attribution)  # the history matters
    np.testing.assert_allclose(
        both.frame_attribution, (one_a.frame_attribution + one_b.frame_attribution) / 2, rtol=1e-4, atol=1e-7
    )
    assert both.total == pytest.approx((one_a.total + one_b.total) / 2, rel=1e-5)
    # The same history twice is that history.
    twice = attribute_audio(model, mfcc, torch.stack([a, a]), n_steps=8)
    np.testing.assert_allclose(twice.frame_attribution, one_a.frame_attribution, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match=r"or \(S, 1, 12\) for S histories"):
        attribute_audio(model, mfcc, torch.zeros(2, 2, steps))


@pytest.mark.parametrize(
    "memory",
    [{}, {"eda_memory_seconds": 3.0}, {"eda_trend_lags": [1, 4]}],
    ids=["plain", "eda_memory", "trend"],
)
def test_attribution_in_chunks_is_the_one_pass_answer(memory):
    """Long recordings are attributed a chunk of targets at a time (bounded memory); Integrated
    Gradients adds up over the targets, so the chunks' sum is the one-pass attribution, also for a
    model whose EDA memory reaches back to the clip's start."""
    torch.manual_seed(0)
    model = Wavenet(WavenetConfig(**(TINY_MODEL | memory))).eval()
    steps, rate = 40, model.config.eda_sample_rate
    g = torch.Generator().manual_seed(5)
    mfcc = torch.randn(1, steps * model.spf, model.config.num_mfccs, generator=g)
    wave, ramp = 0.3 * torch.sin(torch.arange(steps) / 3.0), torch.linspace(-0.5, 0.2, steps)
    history = torch.stack([wave, ramp])[:, None]  # two histories
    # 7-step chunks: the later ones start more than a receptive field into the clip
    assert 7 + model.config.receptive_field_eda_steps < steps
    for target in (None, slice(3, 33)):
        whole = attribute_audio(model, mfcc, history, target_steps=target, n_steps=8, chunk_seconds=None)
        chunked = attribute_audio(
            model, mfcc, history, target_steps=target, n_steps=8, chunk_seconds=7 / rate
        )
        np.testing.assert_allclose(chunked.frame_attribution, whole.frame_attribution, rtol=1e-4, atol=1e-6)
        assert chunked.total == pytest.approx(whole.total, rel=1e-4, abs=1e-6)
        assert chunked.convergence_delta == pytest.approx(whole.convergence_delta, abs=1e-4)
    with pytest.raises(ValueError, match="chunk_seconds must be > 0"):
        attribute_audio(model, mfcc, history, chunk_seconds=0.0)
    with pytest.raises(ValueError, match="contiguous slice"):
        attribute_audio(model, mfcc, history, target_steps=slice(0, 40, 2))


def test_attribution_without_eda_averages_generated_histories():
    model = tiny_wavenet()
    steps = 10
    g = torch.Generator().manual_seed(4)
    mfcc = torch.randn(1, steps * model.spf, model.config.num_mfccs, generator=g)
    att = attribute_audio(model, mfcc, samples=3, seed=7, n_steps=8)
    assert att.n_histories == 3
    drawn = model.generate(mfcc[None].expand(3, -1, -1, -1), generator=torch.Generator().manual_seed(7))
    given = attribute_audio(model, mfcc, drawn, n_steps=8)
    np.testing.assert_allclose(att.frame_attribution, given.frame_attribution, rtol=1e-5, atol=1e-8)
    assert attribute_audio(model, mfcc, samples=1, seed=7, n_steps=8).n_histories == 1
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="samples must be a whole number >= 1"):
            attribute_audio(model, mfcc, samples=bad)


# --- primes ------------------------------------------------------------------------------------
def test_read_prime_e4_and_csv_at_any_rate(tmp_path):
    e4 = tmp_path / "EDA.csv"
    e4.write_text("1600000000.0\n8.0\n" + "\n".join(["5.0"] * 40) + "\n")
    out = read_prime(e4, target_rate=4.0)
    assert out.shape == (20,) and np.allclose(out, 5.0)
    csv = tmp_path / "rest.csv"
    t = np.arange(64) / 16.0
    pd.DataFrame({"time_s": t, "eda_us": 3.0 + 0.1 * t}).to_csv(csv, index=False)
    out = read_prime(csv, target_rate=4.0)
    assert out.shape == (16,)
    assert out[8] == pytest.approx(3.0 + 0.1 * 2.0, abs=0.01)  # resampled, not decimated blindly
    bare = tmp_path / "bare.csv"
    bare.write_text("eda\n" + "\n".join(["4.0"] * 8) + "\n")
    assert read_prime(bare, target_rate=4.0, sample_rate=2.0).shape == (16,)


@pytest.mark.parametrize(
    "problem, content, rate, expected",
    [
        (
            "nan",
            "time_s,eda_us\n0,5\n0.25,\n0.5,5\n0.75,5\n",
            None,
            "1 NaN/inf value(s), the first at sample 1",
        ),
        ("wrong_rate", "1600000000.0\n8.0\n5\n5\n5\n5\n", 4.0, "the file says 8 Hz, expected 4 Hz"),
        ("no_rate", "eda\n5\n5\n5\n", None, "no time column and no sample rate given"),
        ("gap", "time_s,eda_us\n0,5\n0.25,5\n0.5,5\n1.5,5\n", None, "jumps from 0.5 s to 1.5 s"),
        (
            "uneven",
            "time_s,eda_us\n0,5\n0.25,5\n0.5,5\n0.8,5\n1.05,5\n",
            None,
            "is not evenly spaced: step 0.3 s at row 5 vs the usual 0.25 s",
        ),
        ("bad_rate", "1600000000.0\n0\n5\n5\n", None, "must be a rate > 0"),
        ("negative_us", "time_s,eda_us\n0,5\n0.25,-1\n", None, "is not a positive µS value"),
    ],
)
def test_bad_primes_raise_one_line_naming_the_file(tmp_path, problem, content, rate, expected):
    path = tmp_path / f"{problem}.csv"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        read_prime(path, target_rate=4.0, sample_rate=rate)
    message = str(info.value)
    assert expected in message and f"{problem}.csv" in message and "\n" not in message


def test_primed_generation_starts_from_the_listeners_level(tmp_path):
    exp = experiment(tmp_path)
    model = BurstResponder(exp.model)
    audio = write_bursts(tmp_path / "a.wav", [], seconds=5.0)
    prime = np.full(40, 5.3)  # 10 s at 4 Hz, far from the typical range's middle (7 µS)
    result = generate_from_audio(
        model, audio, samples=2, config=exp, normalizer=NORMALIZER, prime=prime, progress=False
    )
    assert result.values.shape == (2, 1, 20)  # the stimulus only, not the prime
    rf = exp.model.receptive_field_eda_steps
    assert model.seen_frames[-1] == (20 + min(40, rf)) * exp.model.spectral_frames_per_eda_step
    half_bin = 12.0 / 15 / 2  # the primed range keeps the stored 12 µS span; 16 levels
    assert np.all(np.abs(result.values - 5.3) <= half_bin + 0.02)
    plain = generate_from_audio(model, audio, samples=1, config=exp, normalizer=NORMALIZER, progress=False)
    assert np.allclose(plain.values, 7.0 - 0.5 * 6.0, atol=0.05)  # unprimed: start at unit 0, here -0.5
    with pytest.raises(DataError, match="NaN"):
        generate_from_audio(model, audio, config=exp, normalizer=NORMALIZER, prime=np.array([5.0, np.nan]))


def test_prime_normalizer_keeps_the_stored_span_and_centres_the_prime():
    primed = prime_normalizer(np.array([4.0, 5.0]), NORMALIZER)
    assert (primed.lo, primed.hi) == (-0.5, 9.5)  # span 10 µS around 4.5
    assert prime_normalizer(np.array([4.0, 5.0]), NORMALIZER, per_recording=False) == NORMALIZER
    wide = prime_normalizer(np.array([0.5, 30.0]), NORMALIZER)
    assert (wide.lo, wide.hi) == (0.5, 30.0)


# --- validation against known events ---------------------------------------------------------------
def test_onset_mass_fraction_known_answer():
    times = np.arange(100) / 10.0  # 10 s at 10 frames/s
    attribution = np.zeros(100)
    attribution[20] = 3.0  # at an onset (2.0 s)
    attribution[70] = 1.0  # far from any onset
    attribution[50] = -5.0  # negative: lowers, not counted in the positive mass
    out = onset_mass_fraction([attribution], [times], [np.array([2.0])], window_s=0.5)
    assert out["mass_fraction"] == pytest.approx(0.75)
    assert out["abs_mass_fraction"] == pytest.approx(3 / 9)
    assert out["window_coverage"] == pytest.approx(11 / 100)  # 1.5 .. 2.5 s inclusive


def test_onset_profile_finds_a_late_spread_response():
    # Two recordings at 4 steps/s (step centres); every onset is followed 0.5-1.0 s later by
    # positive attribution (peak at +0.75 s), with a negative dip just before it.
    times = np.arange(200) / 4.0 + 0.125
    values, onsets = [], []
    for first in (5.0, 7.0):
        a = np.zeros(200)
        o = np.arange(first, 45.0, 10.0) + 0.1  # off the step centres: the nearest step is taken
        for onset in o:
            i = int(np.argmin(np.abs(times - onset)))
            a[i + 2], a[i + 3], a[i + 4] = 1.0, 2.0, 1.0  # +0.5, +0.75, +1.0 s
            a[i - 1] = -3.0
        values.append(a)
        onsets.append(o)
    onsets[1] = np.append(onsets[1], 49.5)  # too near the end for the span: left out
    profile = onset_profile(values, [times, times], onsets, span_s=(-2.0, 2.0))
    assert profile.n_onsets == 8
    assert profile.lags_s[0] == pytest.approx(-2.0) and profile.lags_s[-1] == pytest.approx(2.0)
    assert profile.peak_lag_s == pytest.approx(0.75)
    assert profile.half_width_s == pytest.approx(0.75)  # +0.5 .. +1.0 s: three steps of 0.25 s
    assert profile.positive[profile.lags_s == -0.25][0] == 0.0  # the dip is not positive mass
    assert profile.signed[np.isclose(profile.lags_s, -0.25)][0] == pytest.approx(-3.0)
    assert profile.positive.sum() == pytest.approx(4.0)


def test_onset_profile_rejects_bad_spans_and_mixed_clocks():
    times = np.arange(40) / 4.0
    with pytest.raises(ValueError, match="span_s"):
        onset_profile([np.zeros(40)], [times], [np.array([5.0])], span_s=(1.0, 3.0))
    with pytest.raises(ValueError, match="one clock"):
        onset_profile([np.zeros(40), np.zeros(80)], [times, np.arange(80) / 8.0], [np.array([5.0])] * 2)
    empty = onset_profile([np.zeros(40)], [times], [np.array([0.5])])  # no onset fits the span
    assert empty.n_onsets == 0 and np.isnan(empty.peak_lag_s)


def test_true_events_strength_fallback_and_screening_correlation(tmp_path):
    files = []
    for i, (column, values) in enumerate(
        [("strength", [1, 1]), ("loudness", [1, 1, 1]), ("amplitude_us", [2, 2])]
    ):
        audio = tmp_path / f"r{i}.wav"
        pd.DataFrame({"onset_s": np.arange(len(values)) * 5.0, column: values}).to_csv(
            tmp_path / f"r{i}_events.csv", index=False
        )
        files.append(str(audio))
    assert list(true_events(files[2])["strength"]) == [2, 2]
    assert true_events(tmp_path / "none.wav") is None
    ranking = pd.DataFrame({"file": files, "scr_per_min": [1.0, 2.0, 3.0]})  # truth: 2, 3, 4
    assert screening_correlation(ranking)["spearman_rho"] == pytest.approx(1.0)
    (tmp_path / "bad_events.csv").write_text("time\n1\n")
    with pytest.raises(ValueError, match="no onset_s column"):
        true_events(tmp_path / "bad.wav")


def test_add_metrics_section_keeps_the_other_keys(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"test_cross_entropy": 2.1, "nested": {"a": 1}}))
    add_metrics_section(path, "stimuli", {"rho": np.float64(0.7), "missing": float("nan"), "n": np.int64(3)})
    data = json.loads(path.read_text())
    assert data == {
        "test_cross_entropy": 2.1,
        "nested": {"a": 1},
        "stimuli": {"rho": 0.7, "missing": None, "n": 3},
    }
    add_metrics_section(tmp_path / "new" / "metrics.json", "stimuli", {"x": 1.0})
    assert json.loads((tmp_path / "new" / "metrics.json").read_text()) == {"stimuli": {"x": 1.0}}


# --- command line ------------------------------------------------------------------------------


def test_screen_command_writes_a_ranking_and_lists_skipped_files(tmp_path, checkpoint, capsys):
    folder = tmp_path / "stimuli"
    folder.mkdir()
    write_audio(folder / "a.wav", 6.0)
    write_audio(folder / "b.wav", 5.0)
    (folder / "c.wav").write_text("garbage")
    out, plots = tmp_path / "ranking.csv", tmp_path / "plots"
    argv = [
        "screen",
        "--checkpoint",
        str(checkpoint),
        "--audio",
        str(folder),
        "--samples",
        "2",
        "--out",
        str(out),
    ]
    assert main([*argv, "--plots", str(plots), "--no-progress"]) == 0
    ranking = pd.read_csv(out)
    assert sorted(ranking["file"].str.rsplit("/", n=1).str[-1]) == ["a.wav", "b.wav"]
    assert list(ranking["rank"]) == [1, 2]
    assert {"scr_per_min", "scr_per_min_se", "scr_amplitude_us", "eda_rise_us", "frac_with_scr"} <= set(
        ranking
    )
    assert sorted(ranking["duration_s"]) == [5.0, 6.0]
    assert len(list(plots.glob("*.png"))) == 2
    captured = capsys.readouterr()
    assert f"warning: skipped {folder / 'c.wav'}: unreadable audio" in captured.err
    assert "ranking reliability" not in captured.out  # two files: too few to rank-correlate
    # Ranked by the evoked rise by default (the checkpoint is a Wavenet), or by any column.
    evoked = ranking["evoked_rise_us_per_min"].to_numpy()
    assert list(evoked) == sorted(evoked, reverse=True) and "by evoked_rise_us_per_min" in captured.out
    assert main([*argv, "--rank-by", "scr_per_min", "--no-progress"]) == 0
    by_rate = pd.read_csv(out)["scr_per_min"].to_numpy()
    assert list(by_rate) == sorted(by_rate, reverse=True) and "by scr_per_min" in capsys.readouterr().out


@pytest.mark.parametrize(
    "problem",
    [
        "empty_folder",
        "all_unreadable",
        "nan_prime",
        "wrong_rate_prime",
        "samples",
        "rank_by",
        "generate_rate_without_prime",
        "screen_rate_without_prime",
    ],
)
def test_screen_and_generate_user_errors_are_one_line(tmp_path, checkpoint, capsys, problem):
    folder = tmp_path / "in"
    folder.mkdir()
    audio = write_audio(tmp_path / "a.wav", 3.0)
    prime = tmp_path / "prime.csv"
    prime.write_text("time_s,eda_us\n0,5\n0.25,nan\n0.5,5\n")
    if problem == "wrong_rate_prime":
        prime.write_text("1600000000.0\n32.0\n5\n5\n5\n5\n")
    out = tmp_path / "o.csv"
    if problem == "empty_folder":
        argv, expected = ["screen", "--audio", str(folder)], "in: no audio files"
    elif problem == "all_unreadable":
        (folder / "x.wav").write_text("garbage")
        argv, expected = ["screen", "--audio", str(folder)], "none of the 1 audio file(s) could be screened"
    elif problem == "nan_prime":
        argv, expected = (
            ["generate", "--audio", audio, "--prime", str(prime)],
            "prime.csv: prime has 1 NaN/inf",
        )
    elif problem == "wrong_rate_prime":
        argv = ["screen", "--audio", audio, "--prime", str(prime), "--prime-rate", "4"]
        expected = "prime.csv: prime sample-rate mismatch: the file says 32 Hz, expected 4 Hz"
    elif problem.endswith("rate_without_prime"):
        argv = [problem.split("_")[0], "--audio", audio, "--prime-rate", "4"]
        expected = "--prime-rate needs --prime"
    elif problem == "rank_by":
        argv, expected = ["screen", "--audio", audio, "--rank-by", "loudness"], "rank_by must be one of"
    else:
        argv, expected = ["screen", "--audio", audio, "--samples", "0"], "--samples must be >= 1, got 0"
    assert main([*argv, "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert not out.exists()


def test_generate_command_with_a_prime_at_another_rate(tmp_path, checkpoint, capsys):
    audio = write_audio(tmp_path / "a.wav", 3.0)  # 12 steps
    prime = tmp_path / "EDA.csv"
    prime.write_text("1600000000.0\n32.0\n" + "\n".join(f"{5 + 0.001 * i:.4f}" for i in range(320)) + "\n")
    out = tmp_path / "eda.csv"
    argv = [
        "generate",
        "--checkpoint",
        str(checkpoint),
        "--audio",
        audio,
        "--out",
        str(out),
        "--prime",
        str(prime),
    ]
    assert main([*argv, "--samples", "2", "--no-progress"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["time_s", "eda_us_s0", "eda_us_s1"] and len(table) == 12
    # The primed µS range keeps the stored 10 µS span (±10 % margin) around the prime's level.
    assert table[["eda_us_s0", "eda_us_s1"]].to_numpy().min() >= 5.16 - 6.0 - 1e-6
    assert table[["eda_us_s0", "eda_us_s1"]].to_numpy().max() <= 5.16 + 6.0 + 1e-6
