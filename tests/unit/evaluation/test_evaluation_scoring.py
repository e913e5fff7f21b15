"""Teacher-forced scoring: one function for the model, the audio-blind model and persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from tests.tiny_configs import TINY_MODEL
from wavenet_lib.configs import WavenetConfig
from wavenet_lib.evaluate.scoring import (
    audio_blind_metrics,
    eda_prev_from_targets,
    evaluate_recording,
    fit_persistence_scale,
    model_log_probs,
    persistence_log_probs,
    persistence_metrics,
    score_log_probs,
    silent_mfcc_like,
    teacher_forced_metrics,
)
from wavenet_lib.models.quantization import dequantize, quantize
from wavenet_lib.models.wavenet import Wavenet

Q = 16


def tiny_model(seed: int = 0) -> Wavenet:
    """1600 Hz audio, hop 16, EDA 4 Hz: 25 frames per step, first_full_step 7."""
    cfg = WavenetConfig(**{**TINY_MODEL, "quantization_levels": Q})
    torch.manual_seed(seed)
    return Wavenet(cfg).eval()


def recording(model: Wavenet, steps: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    mfcc = torch.randn(1, steps * cfg.spectral_frames_per_eda_step, cfg.num_mfccs, generator=g)
    eda = (torch.cumsum(torch.randn(1, steps, generator=g) * 0.1, dim=-1)).clamp(-1, 1)
    return mfcc, eda


def test_scoring_matches_torch_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, Q, 2, 10, generator=g)
    targets = torch.randint(0, Q, (3, 2, 10), generator=g)
    got = score_log_probs(torch.log_softmax(logits, dim=1), targets, first_step=4)
    want = F.cross_entropy(logits[..., 4:], targets[..., 4:])
    assert got["cross_entropy_nats"] == pytest.approx(float(want), rel=1e-6)
    assert got["accuracy"] == pytest.approx(
        float((logits[..., 4:].argmax(1) == targets[..., 4:]).float().mean())
    )
    assert got["n_steps"] == 3 * 2 * 6


def test_eda_prev_is_shifted_dequantized_target():
    targets = torch.tensor([[[3, 7, 15]]])
    prev = eda_prev_from_targets(targets, Q)
    assert prev[0, 0, 0] == 0.0
    assert torch.allclose(prev[0, 0, 1:], dequantize(torch.tensor([3, 7]), Q))


def test_model_cross_entropy_equals_hand_computed_value():
    model = tiny_model()
    mfcc, eda = recording(model)
    first = model.config.first_full_step
    got = teacher_forced_metrics(model, mfcc, eda)  # default first_step: first_full_step
    # By hand: build eda_prev step by step, run forward, -log softmax at each target, average.
    target = [int(quantize(torch.tensor(float(v)), Q)) for v in eda[0]]
    eda_prev = torch.tensor([[[0.0] + [float(dequantize(torch.tensor(k), Q)) for k in target[:-1]]]])
    with torch.no_grad():
        logits = model(mfcc[None], eda_prev)[0, :, 0].double()  # (Q, T)
    nll = [float(torch.logsumexp(logits[:, t], 0) - logits[target[t], t]) for t in range(first, len(target))]
    assert got["cross_entropy_nats"] == pytest.approx(sum(nll) / len(nll), rel=1e-5)
    assert got["n_steps"] == len(target) - first


def test_model_cross_entropy_of_a_bias_only_head_is_analytic():
    model = tiny_model()
    with torch.no_grad():
        model.downsampler.proj_weight.zero_()
        # logits are scored per change of level (2Q - 1 of them); a linear ramp over changes is the
        # same ramp over absolute levels, shifted by a constant that the softmax ignores
        model.downsampler.proj_bias.copy_(torch.arange(2 * Q - 1, dtype=torch.float32)[:, None] * 0.1)
    mfcc, _ = recording(model, steps=12)
    eda = torch.full((1, 12), float(dequantize(torch.tensor(5), Q)))  # always bin 5
    got = teacher_forced_metrics(model, mfcc, eda, first_step=0)
    log_z = math.log(sum(math.exp(0.1 * k) for k in range(Q)))
    assert got["cross_entropy_nats"] == pytest.approx(log_z - 0.5, rel=1e-5)
    assert got["accuracy"] == 0.0  # argmax is the last bin


def test_chunked_forward_gives_the_full_forward():
    model = tiny_model()
    mfcc, eda = recording(model, steps=30)
    full = model_log_probs(model, mfcc, eda)
    chunked = model_log_probs(model, mfcc, eda, chunk_steps=9)
    assert full.shape == (1, Q, 1, 30)
    torch.testing.assert_close(chunked, full, atol=1e-5, rtol=1e-5)


def test_silent_mfcc_is_the_per_coefficient_minimum_repeated():
    mfcc = torch.randn(2, 50, 5)
    silent = silent_mfcc_like(mfcc)
    assert silent.shape == mfcc.shape
    torch.testing.assert_close(silent[:, 17], mfcc.amin(dim=1))
    assert (silent == silent[:, :1]).all()


def test_audio_blind_metrics_feed_the_silent_mfcc():
    model = tiny_model()
    mfcc, eda = recording(model)
    blind = audio_blind_metrics(model, mfcc, eda)
    assert blind == teacher_forced_metrics(model, silent_mfcc_like(mfcc), eda)
    assert blind != teacher_forced_metrics(model, mfcc, eda)


def test_persistence_log_probs_are_normalized_and_centred_on_the_previous_bin():
    eda = torch.tensor([[-1.0, -1.0, 0.0, 1.0, 1.0, 0.5]])
    lp = persistence_log_probs(eda, Q, scale_bins=1.5)
    assert lp.shape == (1, Q, 1, 6)
    torch.testing.assert_close(lp.double().exp().sum(dim=1), torch.ones(1, 1, 6, dtype=torch.float64))
    prev_bins = quantize(eda_prev_from_targets(quantize(eda[None], Q), Q), Q)[0, 0]
    assert torch.equal(lp[0, :, 0].argmax(dim=0), prev_bins)
    # Interior bins follow scipy's discrete Laplace with a = 1 / scale.
    a = 1 / 1.5
    want = stats.dlaplace.logpmf(np.arange(1, Q - 1) - int(prev_bins[3]), a)
    np.testing.assert_allclose(lp[0, 1:-1, 0, 3].numpy(), want, rtol=1e-5)


def test_persistence_scale_is_the_maximum_likelihood_fit():
    rng = np.random.default_rng(0)
    trace = np.clip(np.cumsum(rng.laplace(0, 0.02, 400)), -1, 1)
    scale = fit_persistence_scale([trace], 256)
    deltas = np.diff(quantize(trace, 256))
    nll = lambda s: -stats.dlaplace.logpmf(deltas, 1 / s).sum()  # noqa: E731
    assert nll(scale) <= min(nll(scale * 0.9), nll(scale * 1.1))


def test_persistence_is_confident_on_a_constant_trace_and_not_on_noise():
    constant = persistence_metrics(np.full(200, 0.3), 256, first_step=1)
    assert constant["cross_entropy_nats"] < 0.01 and constant["accuracy"] == 1.0
    noise = np.random.default_rng(0).uniform(-1, 1, 200)
    noisy = persistence_metrics(noise, 256, first_step=1)
    assert noisy["cross_entropy_nats"] > math.log(256)  # worse than uniform over the bins
    # A scale fitted on other (training) traces is used when given.
    fitted = persistence_metrics(noise, 256, train_traces=[np.full(50, 0.1)], first_step=1)
    assert fitted["scale_bins"] == pytest.approx(1e-3) and fitted["cross_entropy_nats"] > 100


def test_evaluate_recording_scores_all_rows_on_the_same_steps():
    model = tiny_model()
    mfcc, eda = recording(model)
    rows = evaluate_recording(model, mfcc, eda)
    assert set(rows) == {"model", "audio_blind", "persistence"}
    assert len({r["n_steps"] for r in rows.values()}) == 1
    assert rows["model"]["n_steps"] == eda.shape[-1] - model.config.first_full_step
