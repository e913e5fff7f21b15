"""Generation contract: fast (cached) and reference paths equal the teacher-forced forward.

The fast path runs its layers either compiled (models/fused_step.py) or as PyTorch calls
(the fallback without a compiler); the `step_path` fixture runs the contract on both.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from wavenet_lib.models import fused_step
from wavenet_lib.models.incremental import Stepper
from wavenet_lib.models.quantization import dequantize, quantize
from wavenet_lib.models.wavenet import Wavenet

from .test_wavenet import CONFIGS, make_config, randomize_memory

GEN_CONFIGS = [
    "spf1",
    "spf25",
    "spf7_stereo_2eda",
    "multistack",
    "mixture",
    "mixture_value_stereo_2eda",
    "value_multistack",
    "contrast",
    "value_only",
    "value_only_stereo_2eda",
    "memory",
    "memory_stereo_2eda",
    "trend",
    "trend_memory_stereo_2eda",
]
HAVE_COMPILER = fused_step._compiler() is not None


@pytest.fixture(params=["fused", "torch"])
def step_path(request, monkeypatch):
    """Run the test with the compiled layers, then with the PyTorch fallback."""
    if request.param == "fused" and not HAVE_COMPILER:
        pytest.skip("no C++ compiler: the compiled step cannot be built here")
    monkeypatch.setenv("WAVENET_EDA_FUSED", "1" if request.param == "fused" else "0")
    return request.param


def model_and_audio(name: str, steps: int = 14, batch: int = 2, seed: int = 0):
    cfg = make_config(**CONFIGS[name])
    torch.manual_seed(seed)
    model = randomize_memory(Wavenet(cfg)).eval()
    g = torch.Generator().manual_seed(seed)
    mfcc = torch.randn(
        batch, cfg.in_channels, steps * cfg.spectral_frames_per_eda_step, cfg.features_per_frame, generator=g
    )
    return model, mfcc


def teacher_forced_logits(model: Wavenet, mfcc: torch.Tensor, eda: torch.Tensor) -> torch.Tensor:
    start = torch.zeros_like(eda[..., :1])
    with torch.no_grad():
        return model(mfcc, torch.cat([start, eda[..., :-1]], dim=-1))


def check_generated_logits_equal_forward(name: str, incremental: bool) -> None:
    model, mfcc = model_and_audio(name)
    gen = torch.Generator().manual_seed(3)
    eda, logits = model.generate(mfcc, generator=gen, incremental=incremental, return_logits=True)
    cfg = model.config
    assert eda.shape == (2, cfg.out_channels, 14)
    assert logits.shape == (2, cfg.quantization_levels, cfg.out_channels, 14)
    # every generated value is a bin centre in [-1, 1]
    levels = cfg.quantization_levels
    assert torch.allclose(dequantize(quantize(eda, levels), levels), eda, atol=1e-6)
    torch.testing.assert_close(logits, teacher_forced_logits(model, mfcc, eda), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", GEN_CONFIGS)
def test_fast_path_logits_equal_forward(name, step_path):
    check_generated_logits_equal_forward(name, incremental=True)


@pytest.mark.parametrize("name", GEN_CONFIGS)
def test_reference_path_logits_equal_forward(name):
    check_generated_logits_equal_forward(name, incremental=False)


@pytest.mark.parametrize("name", GEN_CONFIGS)
def test_fast_and_reference_paths_sample_the_same_sequence(name, step_path):
    model, mfcc = model_and_audio(name)
    assert (Stepper(model, mfcc).fused is not None) == (step_path == "fused")
    fast = model.generate(mfcc, generator=torch.Generator().manual_seed(5))
    slow = model.generate(mfcc, generator=torch.Generator().manual_seed(5), incremental=False)
    assert torch.equal(fast, slow)


def test_same_seed_same_output_and_different_seed_differs():
    model, mfcc = model_and_audio("spf25", steps=20)
    a = model.generate(mfcc, generator=torch.Generator().manual_seed(1))
    b = model.generate(mfcc, generator=torch.Generator().manual_seed(1))
    c = model.generate(mfcc, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", ["spf25", "trend", "spf7_stereo_2eda"])
def test_one_generator_per_group_of_rows_draws_what_separate_calls_draw(name):
    """Three clips x 2 samples in one batch, each clip with its own generator, equal three calls."""
    model, mfcc = model_and_audio(name, steps=16, batch=3, seed=3)
    prime = torch.rand(3, model.config.out_channels, 4) * 2 - 1
    kwargs = dict(top_p=0.98, audio_guidance=0.1)
    separate = [
        model.generate(
            mfcc[i : i + 1].expand(2, -1, -1, -1), prime=prime[i : i + 1].expand(2, -1, -1),
            generator=torch.Generator().manual_seed(10 + i), **kwargs,
        )
        for i in range(3)
    ]  # fmt: skip
    together = model.generate(
        mfcc.repeat_interleave(2, dim=0),
        prime=prime.repeat_interleave(2, dim=0),
        generator=[torch.Generator().manual_seed(10 + i) for i in range(3)],
        **kwargs,
    )
    assert torch.equal(together, torch.cat(separate))
    assert not torch.equal(separate[0], separate[1])  # the clips differ, so a mix-up would show


def test_generators_that_cannot_share_the_batch_are_refused():
    model, mfcc = model_and_audio("spf25", batch=3)
    with pytest.raises(ValueError, match="generator: 2 generators cannot share a batch of 3"):
        model.generate(mfcc, generator=[torch.Generator(), torch.Generator()])
    with pytest.raises(ValueError, match="generator: 0 generators"):
        model.generate(mfcc, generator=[])


def test_nothing_stale_between_calls_or_after_load_state_dict(step_path):
    model, mfcc = model_and_audio("multistack")
    other_mfcc = torch.randn_like(mfcc)
    first = model.generate(mfcc, greedy=True)
    model.generate(other_mfcc, greedy=True)  # a different clip in between
    assert torch.equal(model.generate(mfcc, greedy=True), first)

    other, _ = model_and_audio("multistack", seed=7)
    model.load_state_dict(other.state_dict())
    eda, logits = model.generate(mfcc, greedy=True, return_logits=True)
    assert torch.equal(eda, other.generate(mfcc, greedy=True))
    torch.testing.assert_close(logits, teacher_forced_logits(model, mfcc, eda), atol=1e-4, rtol=0)


def test_prime_is_teacher_forced(step_path):
    model, mfcc = model_and_audio("spf7_stereo_2eda")
    prime = torch.rand(2, 2, 5) * 2 - 1
    eda, logits = model.generate(
        mfcc, prime=prime, generator=torch.Generator().manual_seed(0), return_logits=True
    )
    levels = model.config.quantization_levels
    assert torch.equal(eda[..., :5], dequantize(quantize(prime, levels), levels))
    torch.testing.assert_close(logits, teacher_forced_logits(model, mfcc, eda), atol=1e-4, rtol=0)


def test_greedy_takes_the_argmax_and_temperature_is_checked():
    model, mfcc = model_and_audio("spf1")
    eda, logits = model.generate(mfcc, greedy=True, return_logits=True)
    levels = model.config.quantization_levels
    assert torch.equal(quantize(eda, levels), logits.argmax(dim=1))
    with pytest.raises(ValueError, match="temperature"):
        model.generate(mfcc, temperature=0.0)


def test_generate_restores_training_mode():
    model, mfcc = model_and_audio("spf1")
    model.train()
    model.generate(mfcc[:, :, :4], greedy=True)
    assert model.training


def test_sampling_follows_the_softmax():
    model, _ = model_and_audio("spf1")
    q = model.config.quantization_levels
    logits = torch.randn(1, q, 1)
    logits[0, 3, 0] = -float("inf")  # a level with probability zero is never drawn
    draws = model._sample(logits.expand(20000, q, 1), 1.5, False, torch.Generator().manual_seed(0))
    counts = torch.bincount(draws.flatten(), minlength=q).float() / draws.numel()
    expected = torch.softmax(logits[0, :, 0] / 1.5, dim=0)
    assert counts[3] == 0
    assert (counts - expected).abs().max() < 0.01


# Widths past the compiled kernel's 64-column register tiles, with 16-wide and scalar remainders.
WIDE = dict(hidden_channels=64, gate_channels=72, skip_channels=70, condition_channels=16)


@pytest.mark.skipif(not HAVE_COMPILER, reason="no C++ compiler")
@pytest.mark.parametrize(
    "name,batch,head",
    [("multistack", 1, True), ("multistack", 3, True), ("wide", 2, True), ("multistack", 3, False),
     ("mixture", 2, True), ("wide", 2, False)],
)  # fmt: skip
def test_compiled_step_equals_pytorch_step_on_one_and_two_threads(name, batch, head, monkeypatch):
    """Every step's head parameters (or, for a head the kernel does not implement, its skip sum),
    many steps in (the history buffers wrap), rows and samples split over threads."""
    if name == "wide":
        cfg = make_config(**CONFIGS["multistack"], **WIDE)
        torch.manual_seed(0)
        model, mfcc = Wavenet(cfg).eval(), torch.randn(batch, 1, 12 * cfg.spectral_frames_per_eda_step, 5)
    else:
        model, mfcc = model_and_audio(name, steps=12, batch=batch)
    if not head:
        monkeypatch.setattr(model, "HEAD_KIND", "a head the kernel does not implement")
    cfg, n = model.config, model.spf
    with torch.no_grad():
        one, two = Stepper(model, mfcc), Stepper(model, mfcc)
        assert one.fused.head is head
        monkeypatch.setenv("WAVENET_EDA_FUSED", "0")
        ref = Stepper(model, mfcc)
        assert ref.fused is None
        one.fused.threads, two.fused.threads = 1, 2
        g = torch.Generator().manual_seed(0)
        for t in range(12):
            prev = dequantize(
                torch.randint(cfg.quantization_levels, (batch,), generator=g), cfg.quantization_levels
            )
            c = model.upsampler.step(prev[:, None])
            expected = ref._layers(t, c)
            if head:  # (B, C_out, P) as the kernel lays them out
                skips = expected.view(n, batch, -1).permute(1, 2, 0)
                expected = model.head_params(skips)[..., 0].transpose(1, 2)
            torch.testing.assert_close(one.fused(t, c), expected, atol=1e-4, rtol=1e-4)
            # the same rows from the conditioning table at the previous level
            level = quantize(prev, cfg.quantization_levels)
            torch.testing.assert_close(two.fused(t, None, level), expected, atol=1e-4, rtol=1e-4)


def test_without_a_compiler_generation_falls_back_with_one_warning(tmp_path, monkeypatch):
    model, mfcc = model_and_audio("spf25")
    monkeypatch.setenv("WAVENET_EDA_FUSED", "0")
    expected = model.generate(mfcc, greedy=True)
    monkeypatch.delenv("WAVENET_EDA_FUSED")
    monkeypatch.setenv("WAVENET_EDA_CACHE", str(tmp_path))  # nothing built there yet
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setattr(fused_step, "_library", None)
    monkeypatch.setattr(fused_step, "_tried", False)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler.*PyTorch step"):
        first = model.generate(mfcc, greedy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning is given once per process
        second = model.generate(mfcc, greedy=True)
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert not list(tmp_path.rglob("*.so"))


@pytest.mark.skipif(not HAVE_COMPILER, reason="no C++ compiler")
def test_compiled_step_is_built_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WAVENET_EDA_CACHE", str(tmp_path))
    for _ in range(2):
        monkeypatch.setattr(fused_step, "_library", None)
        monkeypatch.setattr(fused_step, "_tried", False)
        assert fused_step.load_library() is not None
    built = list((tmp_path / "fused_step").glob("*.so"))
    assert len(built) == 1
    mtime = built[0].stat().st_mtime_ns
    monkeypatch.setattr(fused_step, "_tried", False)
    fused_step.load_library()
    assert built[0].stat().st_mtime_ns == mtime


def test_top_p_draws_only_from_the_nucleus_renormalized():
    model, _ = model_and_audio("spf1")
    q = model.config.quantization_levels
    probs = torch.zeros(q)
    probs[[4, 9, 1, 7]] = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.clamp_min(1e-30).log().view(1, q, 1).expand(20000, q, 1)
    g = torch.Generator().manual_seed(0)
    draws = model._sample(logits, 1.0, False, g, top_p=0.8).flatten()
    counts = torch.bincount(draws, minlength=q).float() / draws.numel()
    assert set(draws.unique().tolist()) == {4, 9}  # 0.5 + 0.3 reach 0.8: levels 1 and 7 are cut
    assert abs(counts[4] - 0.5 / 0.8) < 0.01 and abs(counts[9] - 0.3 / 0.8) < 0.01
    assert set(model._sample(logits, 1.0, False, g, top_p=0.3).unique().tolist()) == {4}  # the mode stays
    mfcc = torch.randn(1, 1, 4 * model.spf, model.config.num_mfccs)
    with pytest.raises(ValueError, match="top_p"):
        model.generate(mfcc, top_p=0.0)


def test_samples_of_the_same_audio_differ_at_the_default_settings():
    model, mfcc = model_and_audio("mixture")
    eda = model.generate(mfcc[:1].expand(4, -1, -1, -1), generator=torch.Generator().manual_seed(0))
    assert all(not torch.equal(eda[0], eda[i]) for i in range(1, 4))


def test_logistic_mixture_head_gives_normalized_log_probs_around_the_previous_level():
    cfg = make_config(head="logistic_mixture", mixture_components=2)
    head = Wavenet(cfg).downsampler
    q, k = cfg.quantization_levels, 2
    params = torch.zeros(1, 3 * k, 1, 3)
    params[0, 0, 0] = 20.0  # component 0 takes all the weight
    params[0, k, 0] = torch.tensor([2.0, 0.0, 50.0]) / head.scale  # mean change, in levels
    params[0, 2 * k] = -2.0  # narrow: scale e^-2 levels
    prev = torch.tensor([[[5, 5, 12]]])
    log_probs = head.to_levels(params, prev)  # (1, Q, 1, 3)
    torch.testing.assert_close(log_probs.exp().sum(dim=1), torch.ones(1, 1, 3))
    # +2 levels from 5 → 7; no change → 5; +50 from 12 runs past the top: folded into Q-1.
    assert log_probs.argmax(dim=1).flatten().tolist() == [7, 5, q - 1]
    assert log_probs[0, q - 1, 0, 2].exp() > 0.999
    # A symmetric component gives symmetric masses around the previous level.
    p = log_probs[0, :, 0, 1].exp()
    torch.testing.assert_close(p[4], p[6])


def test_min_prob_drops_the_unlikely_levels_only_and_keeps_the_mode():
    model, _ = model_and_audio("spf1")
    q = model.config.quantization_levels
    probs = torch.full((q,), 1e-4)
    probs[[4, 9, 1]] = torch.tensor([0.6, 0.3, 0.03])
    probs /= probs.sum()
    logits = probs.log().view(1, q, 1).expand(20000, q, 1)
    g = torch.Generator().manual_seed(0)
    draws = model._sample(logits, 1.0, False, g, min_prob=0.02).flatten()
    assert set(draws.unique().tolist()) == {1, 4, 9}  # 0.03 stays (top-p 0.9 would cut it), 1e-4 go
    counts = torch.bincount(draws, minlength=q).float() / draws.numel()
    expected = probs * (probs >= 0.02)
    assert (counts - expected / expected.sum()).abs().max() < 0.01
    spread = torch.zeros(1, q, 1)
    spread[0, 7] = 1.0  # the mode, yet below min_prob: it stays, and only it
    assert model._sample(spread.expand(50, q, 1), 1.0, False, g, min_prob=0.5).eq(7).all()
    with pytest.raises(ValueError, match="min_prob"):
        model.generate(torch.zeros(1, 1, 4, model.config.features_per_frame), min_prob=1.0)


@pytest.mark.parametrize("reference", ["silent", "running_mean"])
@pytest.mark.parametrize("incremental", [True, False])
@pytest.mark.parametrize("name", ["spf25", "mixture_value_stereo_2eda", "contrast", "memory", "trend"])
def test_audio_guidance_draws_from_the_amplified_distribution(name, incremental, reference, step_path):
    """With audio_guidance w, each step is drawn from log p + w (log p - log p_ref): the
    teacher-forced logits of the generated sequence with the audio and with the reference input
    (silent, or the audio's running mean), combined, on both paths."""
    from wavenet_lib.models.wavenet import guidance_reference_input, guided_logits

    model, mfcc = model_and_audio(name)
    eda, logits = model.generate(
        mfcc, generator=torch.Generator().manual_seed(3), incremental=incremental, return_logits=True,
        audio_guidance=0.7, guidance_reference=reference,
    )  # fmt: skip
    ref = guidance_reference_input(mfcc, reference, model.config.num_mfccs)
    assert not torch.equal(ref, mfcc)
    expected = guided_logits(
        teacher_forced_logits(model, mfcc, eda), teacher_forced_logits(model, ref, eda), 0.7
    )
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)


def test_running_mean_guidance_starts_its_mean_at_the_first_sampled_step():
    """With a prime of P steps the running-mean reference averages the audio from step P on
    (a prime's lead-in, e.g. the silent frames `generate_from_audio` puts before the stimulus,
    is not part of "the sound so far"); the prime's own frames are left as they are."""
    from wavenet_lib.data.features import running_mean_mfcc_like
    from wavenet_lib.models.wavenet import guided_logits

    model, mfcc = model_and_audio("spf25", steps=20)
    g = torch.Generator().manual_seed(1)
    prime = torch.rand(mfcc.shape[0], model.config.out_channels, 6, generator=g)
    eda, logits = model.generate(
        mfcc, prime=prime, generator=torch.Generator().manual_seed(3), return_logits=True,
        audio_guidance=0.7, guidance_reference="running_mean",
    )  # fmt: skip
    ref = running_mean_mfcc_like(mfcc, model.config.num_mfccs, first_frame=6 * model.spf)
    expected = guided_logits(
        teacher_forced_logits(model, mfcc, eda), teacher_forced_logits(model, ref, eda), 0.7
    )
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)


def test_audio_guidance_zero_is_the_model_and_changes_nothing_without_audio():
    from wavenet_lib.data.features import silent_mfcc_like

    model, mfcc = model_and_audio("spf25", steps=20)

    def draw(x, **kw):
        return model.generate(x, generator=torch.Generator().manual_seed(4), **kw)

    assert torch.equal(draw(mfcc, audio_guidance=0.0), draw(mfcc))
    _, plain = draw(mfcc, return_logits=True)
    _, guided = draw(mfcc, return_logits=True, audio_guidance=2.0)
    assert (guided - plain).abs().max() > 1e-3  # an untrained model's audio effect is small, not 0
    silent = silent_mfcc_like(mfcc, model.config.num_mfccs)  # nothing to amplify over silence
    torch.testing.assert_close(draw(silent, audio_guidance=2.0), draw(silent))
    # nor over a steady sound, its own running mean
    steady = mfcc[:, :, :1].expand_as(mfcc).clone()
    assert torch.equal(draw(steady, audio_guidance=2.0, guidance_reference="running_mean"), draw(steady))
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="audio_guidance"):
            model.generate(mfcc, audio_guidance=bad)
    with pytest.raises(ValueError, match="guidance_reference must be one of silent, running_mean, got 'cl"):
        model.generate(mfcc, audio_guidance=1.0, guidance_reference="clip")


@pytest.mark.parametrize(
    "name", ["spf25", "value_only_stereo_2eda", "memory_stereo_2eda", "trend", "trend_memory_stereo_2eda"]
)
def test_the_level_stepper_is_the_upsamplers_step(name):
    """`Upsampler.LevelStepper` (the incremental path's conditioning for memory models) gives the
    rows `Upsampler.step` gives through its Conv1d layers, for any levels and memory."""
    cfg = make_config(**CONFIGS[name])
    model = randomize_memory(Wavenet(cfg)).eval()
    g = torch.Generator().manual_seed(3)
    levels = torch.randint(cfg.quantization_levels, (5, cfg.out_channels), generator=g)
    memory = None
    if model.reads_memory:
        memory = 4 * torch.randn(5, model.upsampler.memory.in_features, generator=g)
    with torch.no_grad():
        expected = model.upsampler.step(dequantize(levels, cfg.quantization_levels), memory)
        got = model.upsampler.level_stepper()(levels, memory)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
