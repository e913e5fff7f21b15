"""The model contract of docs/design.md: shapes, exact causality, measured receptive field, learning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.tiny_configs import TINY_MODEL
from wavenet_lib.configs import WavenetConfig
from wavenet_lib.models.quantization import dequantize, quantize
from wavenet_lib.models.receptive_field import measure_receptive_field, naive_claimed_receptive_field
from wavenet_lib.models.wavenet import Wavenet


def make_config(**overrides) -> WavenetConfig:
    """Tiny config: 1600 Hz audio, hop 16, EDA 4 Hz → 25 frames per EDA step."""
    base = dict(TINY_MODEL)
    base.update(overrides)
    return WavenetConfig(**base)


# spf 7 (odd: 2800 Hz audio, hop 100, EDA 4 Hz) with stereo audio and two EDA signals.
STEREO_2EDA = dict(
    audio_sample_rate=2800, mfcc_hop_size=100, mfcc_window_size=200, in_channels=2, out_channels=2
)

# spf 1 (audio 400 Hz, hop 100, EDA 4 Hz), spf 25, spf 7
CONFIGS = {
    "spf1": dict(audio_sample_rate=400, mfcc_hop_size=100, mfcc_window_size=200, context_size_in_seconds=4),
    "spf25": dict(),
    "spf7_stereo_2eda": dict(STEREO_2EDA, skip_channels=6, gate_channels=5),
    "multistack": dict(max_stack_receptive_field=16, context_size_in_seconds=3),
    # The second head and the linear value input (config choices) go through the same contract.
    "mixture": dict(head="logistic_mixture", mixture_components=3),
    "mixture_value_stereo_2eda": dict(STEREO_2EDA, head="logistic_mixture", eda_value_input=True),
    "value_multistack": dict(max_stack_receptive_field=16, context_size_in_seconds=3, eda_value_input=True),
    # MFCCs plus their contrast against the last 0.5 s: twice the features per frame.
    "contrast": dict(mfcc_contrast_seconds=0.5, eda_value_input=True),
    # The past EDA through the linear value input alone (no level embedding).
    "value_only": dict(eda_value_input=True, eda_level_embedding=False),
    "value_only_stereo_2eda": dict(STEREO_2EDA, eda_value_input=True, eda_level_embedding=False),
    # A slow summary of the whole EDA history beside the receptive field (models/eda_memory.py).
    "memory": dict(eda_value_input=True, eda_memory_seconds=2),
    "memory_stereo_2eda": dict(STEREO_2EDA, eda_value_input=True, eda_memory_seconds=5),
    # The recent changes of level as inputs, alone and beside the slow memory.
    "trend": dict(eda_value_input=True, eda_trend_lags=[1, 2, 4]),
    "trend_memory_stereo_2eda": dict(
        STEREO_2EDA, eda_value_input=True, eda_memory_seconds=2, eda_trend_lags=[1, 3]
    ),
}


def inputs(cfg: WavenetConfig, batch: int, steps: int, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    spf = cfg.spectral_frames_per_eda_step
    mfcc = torch.randn(batch, cfg.in_channels, steps * spf, cfg.features_per_frame, generator=g, dtype=dtype)
    eda = torch.rand(batch, cfg.out_channels, steps, generator=g, dtype=dtype) * 2 - 1
    return mfcc, eda


def randomize_memory(model: Wavenet) -> Wavenet:
    """The EDA memory's projection starts at zero (a new model conditions as one without it):
    give it weights so that the tests see the memory's path."""
    if model.reads_memory:
        with torch.no_grad():
            model.upsampler.memory.weight.normal_()
    return model


def build(cfg: WavenetConfig, seed: int = 0) -> Wavenet:
    torch.manual_seed(seed)
    return randomize_memory(Wavenet(cfg)).double().eval()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_output_shape(name):
    cfg = make_config(**CONFIGS[name])
    model = build(cfg)
    mfcc, eda = inputs(cfg, batch=3, steps=11)
    logits = model(mfcc, eda)
    assert logits.shape == (3, cfg.quantization_levels, cfg.out_channels, 11)
    assert torch.isfinite(logits).all()
    target = quantize(eda, cfg.quantization_levels)
    loss = F.cross_entropy(logits, target)  # the documented loss contract
    assert loss.ndim == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_scored_log_probs_are_the_cross_entropy_of_the_logits(name):
    """forward(target=..., first_step=k), what training calls, gives log P(target) of steps >= k:
    the negative of the logits' cross-entropy there, for both heads (the mixture computes only
    the target's mass, the softmax normalizes all levels)."""
    cfg = make_config(**CONFIGS[name])
    model = build(cfg)
    mfcc, eda = inputs(cfg, batch=3, steps=11)
    target = torch.randint(0, cfg.quantization_levels, eda.shape, generator=torch.Generator().manual_seed(1))
    logits = model(mfcc, eda)
    for first in (0, 4):
        log_p = model(mfcc, eda, target=target, first_step=first)
        assert log_p.shape == (3, cfg.out_channels, 11 - first)
        expected = -F.cross_entropy(logits[..., first:], target[..., first:], reduction="none")
        torch.testing.assert_close(log_p, expected.to(log_p.dtype))  # the mixture works in float32


def test_scored_log_probs_reject_a_window_with_nothing_to_score_or_a_misshapen_target():
    cfg = make_config()
    model = build(cfg)
    mfcc, eda = inputs(cfg, batch=2, steps=6)
    target = quantize(eda, cfg.quantization_levels)
    with pytest.raises(ValueError, match="first_step=6"):
        model(mfcc, eda, target=target, first_step=6)
    with pytest.raises(ValueError, match="target must be"):
        model(mfcc, eda, target=target[..., :5])
    assert torch.equal(model(mfcc, eda, target=target[:, 0]), model(mfcc, eda, target=target))


def test_eda_prev_2d_and_3d_agree_for_one_channel():
    cfg = make_config()
    model = build(cfg)
    mfcc, eda = inputs(cfg, batch=2, steps=6)
    assert torch.equal(model(mfcc, eda), model(mfcc, eda[:, 0]))


def test_eda_prev_2d_rejected_for_two_channels():
    cfg = make_config(out_channels=2)
    model = build(cfg)
    mfcc, eda = inputs(cfg, batch=2, steps=6)
    with pytest.raises(ValueError, match="out_channels=2"):
        model(mfcc, eda[:, 0])


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda m, e: (m[:, :, :-1], e), "whole number of EDA steps"),
        (lambda m, e: (m, e[..., :-1]), "eda_prev has 5 steps"),
        (lambda m, e: (m[..., :-1], e), "features_per_frame=5"),
        (lambda m, e: (torch.cat([m, m], 1), e), "in_channels=1"),
    ],
)
def test_bad_shapes_give_clear_errors(bad, match):
    cfg = make_config()
    model = build(cfg)
    mfcc, eda = inputs(cfg, batch=2, steps=6)
    with pytest.raises(ValueError, match=match):
        model(*bad(mfcc, eda))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_exact_causality(name):
    cfg = make_config(**CONFIGS[name])
    model = build(cfg)
    spf = cfg.spectral_frames_per_eda_step
    steps, t = 12, 6
    mfcc, eda = inputs(cfg, batch=2, steps=steps)
    base = model(mfcc, eda)

    mfcc2, eda2 = inputs(cfg, batch=2, steps=steps, seed=1)
    future_mfcc = mfcc.clone()
    future_mfcc[:, :, (t + 1) * spf :] = mfcc2[:, :, (t + 1) * spf :]
    future_eda = eda.clone()
    future_eda[..., t + 1 :] = eda2[..., t + 1 :]
    changed = model(future_mfcc, future_eda)
    assert torch.equal(changed[..., : t + 1], base[..., : t + 1])
    assert not torch.allclose(changed[..., t + 1 :], base[..., t + 1 :])

    # Gradients from the first t+1 steps into future audio are exactly zero (EDA enters through
    # its quantization level, so for EDA the value changes above are the test).
    mfcc_g = mfcc.clone().requires_grad_(True)
    model(mfcc_g, eda)[..., : t + 1].sum().backward()
    assert torch.count_nonzero(mfcc_g.grad[:, :, (t + 1) * spf :]) == 0
    assert torch.count_nonzero(mfcc_g.grad[:, :, t * spf : (t + 1) * spf]) > 0  # its own frames count

    # ...and step t does depend on the previous EDA value eda_prev[..., t].
    moved = eda.clone()
    moved[..., t] = -moved[..., t]
    assert not torch.allclose(model(mfcc, moved)[..., t], base[..., t])
    assert torch.equal(model(mfcc, moved)[..., :t], base[..., :t])


@pytest.mark.parametrize(
    "name", ["spf1", "spf25", "spf7_stereo_2eda", "multistack", "mixture", "value_multistack", "memory"]
)
def test_receptive_field_measured_by_gradients(name):
    cfg = make_config(**CONFIGS[name])
    spf = cfg.spectral_frames_per_eda_step
    measured = measure_receptive_field(build(cfg))
    t = measured.step
    assert measured.first_frame > 0  # the window starts inside the input: nothing hidden by padding
    assert measured.last_frame == (t + 1) * spf - 1
    assert measured.frames == cfg.receptive_field_frames
    assert cfg.receptive_field_frames >= cfg.context_size_in_eda_steps * spf
    # every frame inside the window matters, none outside
    window = measured.frame_gradient[measured.first_frame : measured.last_frame + 1]
    assert torch.count_nonzero(window) == cfg.receptive_field_frames


def test_spec_formula_overstates_multistack_receptive_field():
    cfg = make_config(**CONFIGS["multistack"])
    assert naive_claimed_receptive_field(cfg) > measure_receptive_field(build(cfg)).frames


def test_multistack_config_really_has_several_stacks():
    cfg = make_config(**CONFIGS["multistack"])
    assert cfg.num_stacks > 1
    assert len(build(cfg).stacks) == cfg.num_stacks
    assert all(len(s.layers) == cfg.layers_per_stack for s in build(cfg).stacks)


def test_every_parameter_gets_a_gradient():
    cfg = make_config(out_channels=2, in_channels=2, dropout=0.1)
    torch.manual_seed(0)
    model = Wavenet(cfg).train()
    mfcc, eda = inputs(cfg, batch=3, steps=10, dtype=torch.float32)
    F.cross_entropy(model(mfcc, eda), quantize(eda, cfg.quantization_levels)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or torch.count_nonzero(p.grad) == 0]
    assert not missing, f"parameters without gradient: {missing}"


def test_overfits_one_small_batch():
    cfg = make_config(quantization_levels=32, hidden_channels=16)
    torch.manual_seed(0)
    model = Wavenet(cfg)
    g = torch.Generator().manual_seed(0)
    steps = 24
    mfcc = torch.randn(2, 1, steps * cfg.spectral_frames_per_eda_step, cfg.num_mfccs, generator=g)
    eda = torch.cumsum(torch.randn(2, 1, steps + 1, generator=g) * 0.2, dim=-1).clamp(-1, 1)
    target = quantize(eda[..., 1:], cfg.quantization_levels)
    eda_prev = dequantize(quantize(eda[..., :-1], cfg.quantization_levels), cfg.quantization_levels)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        opt.zero_grad()
        loss = F.cross_entropy(model(mfcc, eda_prev), target)
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * math.log(cfg.quantization_levels)


@pytest.mark.parametrize("name", ["memory", "memory_stereo_2eda"])
def test_memory_reaches_past_the_receptive_field_and_a_window_with_its_memory_equals_the_clip(name):
    """With the EDA memory, a change of the EDA long before the receptive field still moves the
    logits (and only through the memory: without it the model reads the receptive field alone);
    a window cut from a clip, given the clip's memory of its steps, gives the clip's logits
    from first_full_step on, as training windows rely on."""
    cfg = make_config(**CONFIGS[name])
    model = build(cfg)
    spf, first = cfg.spectral_frames_per_eda_step, cfg.first_full_step
    steps = 3 * cfg.receptive_field_eda_steps
    mfcc, eda = inputs(cfg, batch=2, steps=steps)
    base = model(mfcc, eda)
    moved = eda.clone()
    moved[..., 1] = -moved[..., 1]  # step 1's previous value, far outside the last steps' receptive field
    moved_last = model(mfcc, moved)[..., -1].detach()
    assert float((moved_last - base[..., -1].detach()).abs().max()) > 1e-9  # in float64: not rounding
    plain = build(make_config(**{k: v for k, v in CONFIGS[name].items() if k != "eda_memory_seconds"}))
    assert torch.equal(plain(mfcc, moved)[..., -1], plain(mfcc, eda)[..., -1])

    memory = model.memory_of(eda)
    start = steps - first - 5
    window = model(mfcc[:, :, start * spf :], eda[..., start:], eda_memory=memory[..., start:])
    torch.testing.assert_close(window[..., first:], base[..., start + first :], atol=1e-10, rtol=0)
    # ...and without the clip's memory the window reads as a clip that starts there: different.
    cold = model(mfcc[:, :, start * spf :], eda[..., start:])
    assert not torch.allclose(cold[..., first:], window[..., first:])
    with pytest.raises(ValueError, match="eda_memory must be"):
        model(mfcc, eda, eda_memory=memory[..., 1:])
