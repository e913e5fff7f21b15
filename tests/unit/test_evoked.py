"""The evoked rise: what a sound adds to the model's expected EDA rise, on known models and files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.tiny_configs import TINY_MODEL
from tests.unit.test_cli import NORMALIZER
from tests.unit.test_stimuli import BurstResponder, experiment, tiny_wavenet, write_bursts
from wavenet_lib.configs import WavenetConfig
from wavenet_lib.evoked import evoked_rise, evoked_rise_us, expected_rise, has_forward
from wavenet_lib.generation import generate_from_audio
from wavenet_lib.models.quantization import bin_width, dequantize, quantize
from wavenet_lib.screening import screen_stimuli

LEVELS = TINY_MODEL["quantization_levels"]


class LevelRiser(nn.Module):
    """Sure of its next level: `rise` levels above the previous one at steps whose c0 is above 1
    (a sign flip makes the loud steps the ones that stay), else the previous level again."""

    def __init__(self, config: WavenetConfig, rise: int = 2, flip: bool = False) -> None:
        super().__init__()
        self.config, self.spf, self.rise, self.flip = config, config.spectral_frames_per_eda_step, rise, flip
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, mfcc, eda_prev):
        b, _, frames, _ = mfcc.shape
        steps = frames // self.spf
        loud = mfcc[:, 0, :, 0].reshape(b, steps, self.spf).mean(-1) > 1.0  # (B, T)
        if self.flip:
            loud = ~loud
        target = quantize(eda_prev[:, 0], LEVELS) + self.rise * loud.long()
        logits = torch.full((b, LEVELS, 1, steps), -60.0)
        logits.scatter_(1, target.clamp(max=LEVELS - 1)[:, None, None, :], 60.0)
        return logits


def loud_steps_mfcc(cfg: WavenetConfig, steps: int, loud: list[int]) -> torch.Tensor:
    mfcc = torch.zeros(1, steps * cfg.spectral_frames_per_eda_step, cfg.num_mfccs)
    for s in loud:
        mfcc[0, s * cfg.spectral_frames_per_eda_step : (s + 1) * cfg.spectral_frames_per_eda_step, 0] = 3.0
    return mfcc


def test_expected_rise_is_the_mean_climb_above_the_previous_value():
    prev = dequantize(torch.tensor([[[5]]]), LEVELS)  # (1, 1, 1)
    logits = torch.full((1, LEVELS, 1, 1), -1e9)
    logits[0, [3, 7, 9], 0, 0] = 0.0  # 1/3 each: two levels down, two up, four up
    rise = expected_rise(logits, prev)
    assert float(rise) == pytest.approx((2 + 4) / 3 * bin_width(LEVELS), rel=1e-5)


def test_evoked_rise_counts_the_steps_the_sound_raises_exactly():
    cfg = WavenetConfig(**TINY_MODEL)
    steps, loud = 20, [3, 4, 11]
    mfcc = loud_steps_mfcc(cfg, steps, loud)
    history = np.full((3, 1, steps), -0.4)  # three flat traces at one level
    history[1, 0, 8:] = 0.2  # one jumps (the model's past, not its prediction)
    got = evoked_rise(LevelRiser(cfg), mfcc, history, batch_size=2)
    assert got.shape == (3,)
    np.testing.assert_allclose(got, len(loud) * 2 * bin_width(LEVELS), rtol=1e-5)
    # Leading (primed) steps are left out of the sum.
    skipped = evoked_rise(LevelRiser(cfg), mfcc, history, skip_steps=4)
    np.testing.assert_allclose(skipped, 2 * 2 * bin_width(LEVELS), rtol=1e-5)
    # A sound that lowers the expected rise below silence's evokes nothing (not less than nothing).
    lowering = evoked_rise(LevelRiser(cfg, flip=True), mfcc, history)
    np.testing.assert_allclose(lowering, 0.0, atol=1e-7)
    with pytest.raises(ValueError, match=r"mfcc must be \(in_channels, 500, features\) for 20 EDA steps"):
        evoked_rise(LevelRiser(cfg), mfcc[:, :-1], history)


def test_silence_evokes_nothing_in_a_real_wavenet(tmp_path):
    model = tiny_wavenet()
    with torch.no_grad():  # weights large enough for the audio to move the output visibly
        for p in model.parameters():
            p.normal_(0.0, 0.4, generator=torch.Generator().manual_seed(p.numel()))
    cfg = model.config
    steps = 30
    constant = torch.full((1, steps * model.spf, cfg.num_mfccs), 0.7)  # the silent input itself
    traces = torch.randn(4, 1, steps, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    np.testing.assert_array_equal(evoked_rise(model, constant, traces), 0.0)
    sound = torch.randn(1, steps * model.spf, cfg.num_mfccs, generator=torch.Generator().manual_seed(1))
    gain = evoked_rise(model, sound, traces)
    assert np.all(gain >= 0) and np.any(gain > 0)
    assert model.training is False


def test_screening_ranks_by_the_evoked_rise_of_a_wavenet_in_microsiemens(tmp_path):
    exp = experiment(tmp_path)
    torch.manual_seed(0)
    model = LevelRiser(exp.model)
    assert has_forward(model) and not has_forward(BurstResponder(exp.model))
    generated = generate_from_audio(
        tiny_wavenet(), write_bursts(tmp_path / "g.wav", [5]), samples=2, config=exp, normalizer=NORMALIZER,
        progress=False,
    )  # fmt: skip
    assert generated.features is not None and generated.normalizer == NORMALIZER
    us = evoked_rise_us(tiny_wavenet(), generated)
    units = evoked_rise(tiny_wavenet(), generated.features, generated.eda_units)
    np.testing.assert_allclose(us, units * 6.0, rtol=1e-6)  # 6 µS per unit
    # A Wavenet is ranked by its evoked rise; the column is there, finite and non-negative.
    folder = tmp_path / "stimuli"
    folder.mkdir()
    for name, onsets in (("none", []), ("three", [4, 12, 20])):
        write_bursts(folder / f"{name}.wav", onsets)
    result = screen_stimuli(
        tiny_wavenet(), [folder], samples=2, config=exp, normalizer=NORMALIZER, progress=False
    )
    assert result.rank_by == "evoked_rise_us_per_min" and result.reference == "clip_mean"
    values = result.ranking["evoked_rise_us_per_min"].to_numpy()
    assert np.all(np.isfinite(values)) and np.all(values >= 0)
    assert list(values) == sorted(values, reverse=True)
    # The samples are kept, their features are not (hundreds of long files would fill the GPU).
    kept = result.generated[result.ranking["file"][0]]
    assert kept.features is None and kept.eda_units.shape[0] == 2 and kept.normalizer == NORMALIZER
    # A stand-in without forward falls back to SCRs per minute, with the column left empty.
    stand_in = screen_stimuli(
        BurstResponder(exp.model), [folder], samples=2, config=exp, normalizer=NORMALIZER, progress=False
    )
    assert stand_in.rank_by == "scr_per_min"
    assert stand_in.ranking["evoked_rise_us_per_min"].isna().all()
    with pytest.raises(ValueError, match="rank_by must be one of"):
        screen_stimuli(tiny_wavenet(), [folder], config=exp, normalizer=NORMALIZER, rank_by="loudness")
    silent = screen_stimuli(
        tiny_wavenet(),
        [folder],
        samples=2,
        config=exp,
        normalizer=NORMALIZER,
        progress=False,
        reference="silent",
    )
    assert silent.reference == "silent"
    with pytest.raises(ValueError, match="reference must be one of"):
        screen_stimuli(tiny_wavenet(), [folder], config=exp, normalizer=NORMALIZER, reference="quiet")


def test_evoked_rise_of_a_primed_generation_leaves_the_prime_out(tmp_path):
    exp = experiment(tmp_path)
    audio = write_bursts(tmp_path / "a.wav", [2, 6], seconds=10.0)
    generated = generate_from_audio(
        tiny_wavenet(), audio, samples=2, config=exp, normalizer=NORMALIZER, prime=np.full(12, 4.0),
        progress=False,
    )  # fmt: skip
    p = min(12, exp.model.receptive_field_eda_steps)  # older history cannot reach the model
    assert generated.prime_units is not None and generated.prime_units.shape == (1, p)
    got = evoked_rise_us(LevelRiser(exp.model), generated)
    # Known answer: LevelRiser climbs two levels (less at the top) at each loud stimulus step.
    spf, steps = exp.model.spectral_frames_per_eda_step, generated.eda_units.shape[-1]
    c0 = generated.features[0, -steps * spf :, 0].reshape(steps, spf).mean(-1).numpy()
    assert (c0 > 1).sum() >= 2  # the bursts are loud steps
    prime = np.broadcast_to(generated.prime_units, (2, 1, p))
    history = np.concatenate([prime, generated.eda_units], axis=-1)
    prev = quantize(history[:, 0, p - 1 : -1], LEVELS)  # the level before each stimulus step
    climb = (np.minimum(prev + 2, LEVELS - 1) - prev) * (c0 > 1)
    span = generated.normalizer.high - generated.normalizer.low
    np.testing.assert_allclose(got, climb.sum(axis=1) * bin_width(LEVELS) * span / 2, rtol=1e-5)


def test_the_clip_mean_reference_credits_changes_not_loudness_throughout():
    cfg = WavenetConfig(**TINY_MODEL)
    steps = 20
    history = np.full((2, 1, steps), -0.4)
    throughout = loud_steps_mfcc(cfg, steps, list(range(1, steps)))  # loud after its first step
    width = bin_width(LEVELS)
    np.testing.assert_allclose(
        evoked_rise(LevelRiser(cfg), throughout, history, reference="silent"),
        (steps - 1) * 2 * width,
        rtol=1e-5,
    )
    np.testing.assert_allclose(evoked_rise(LevelRiser(cfg), throughout, history), 0.0, atol=1e-7)  # clip_mean
    # Loud onsets over a quiet file: the mean frame stays quiet, so both references agree.
    onsets = loud_steps_mfcc(cfg, steps, [3, 11])
    for reference in ("clip_mean", "silent"):
        np.testing.assert_allclose(
            evoked_rise(LevelRiser(cfg), onsets, history, reference=reference), 2 * 2 * width, rtol=1e-5
        )
    # With a primed lead-in the mean is over the stimulus only: a silent prime does not make a
    # stimulus loud throughout look like it changes.
    primed = torch.cat(
        [torch.zeros(1, 5 * cfg.spectral_frames_per_eda_step, cfg.num_mfccs), throughout], dim=1
    )
    lead = np.full((2, 1, steps + 5), -0.4)
    np.testing.assert_allclose(evoked_rise(LevelRiser(cfg), primed, lead, skip_steps=5), 0.0, atol=1e-7)
    with pytest.raises(ValueError, match="reference must be one of"):
        evoked_rise(LevelRiser(cfg), onsets, history, reference="quiet")
