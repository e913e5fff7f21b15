"""The network's two layouts are one function, and the row layout's dropout is dropout.

`Wavenet.layout = "rows"` (what training and evaluation run: time-major matrix products) and
`"conv"` (the textbook nn.Conv1d layout) share every parameter; the contract tests of
test_wavenet.py run the rows layout, these hold it to the conv layout value for value.
"""

from __future__ import annotations

import pytest
import torch

from tests.unit.models.test_wavenet import CONFIGS, build, inputs, make_config
from wavenet_lib.models.layers import dropout_rows
from wavenet_lib.models.quantization import quantize


def _logits_and_grads(model, mfcc, eda, target, first_step):
    model.zero_grad()
    logits = model(mfcc, eda)
    log_p = model(mfcc, eda, target, first_step=first_step)
    (-log_p.mean()).backward()
    return logits.detach(), log_p.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("steps", [3, 12])  # 3 steps: some dilations reach past the clip's start
def test_rows_layout_is_the_conv_layout(name, steps):
    cfg = make_config(**CONFIGS[name])
    model = build(cfg)  # float64, eval: no dropout
    mfcc, eda = inputs(cfg, batch=2, steps=steps)
    target = quantize(torch.roll(eda, -1, dims=-1), cfg.quantization_levels)
    assert model.layout == "rows"  # the default
    rows = _logits_and_grads(model, mfcc, eda, target, first_step=1)
    model.layout = "conv"
    conv = _logits_and_grads(model, mfcc, eda, target, first_step=1)
    torch.testing.assert_close(rows[0], conv[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(rows[1], conv[1], rtol=0, atol=1e-10)
    for n, grad in conv[2].items():
        # score.bias shifts every frame's attention score alike: its true gradient is 0
        torch.testing.assert_close(rows[2][n], grad, rtol=1e-8, atol=1e-10, msg=lambda m, n=n: f"{n}: {m}")


def test_an_unknown_layout_is_named():
    cfg = make_config()
    model = build(cfg)
    model.layout = "channels_last"
    mfcc, eda = inputs(cfg, batch=1, steps=4)
    with pytest.raises(ValueError, match="layout must be one of .*'channels_last'"):
        model(mfcc, eda)


def test_dropout_rows_zeroes_a_fraction_p_and_scales_the_rest():
    z = torch.rand(1000, 1000) + 0.5  # no zeros of its own
    p = 0.1
    torch.manual_seed(0)
    out = dropout_rows(z, p, training=True)
    dropped = out == 0
    # 10^6 Bernoulli(0.1) draws: sd 3e-4, so 5 sd is 0.0015
    assert abs(dropped.double().mean().item() - p) < 0.0015
    torch.testing.assert_close(out[~dropped], z[~dropped] / (1 - p), rtol=1e-6, atol=0)
    # independent of position: each half of the rows and of the columns drops about p too
    for part in (dropped[:500], dropped[500:], dropped[:, :500], dropped[:, 500:]):
        assert abs(part.double().mean().item() - p) < 0.003


def test_dropout_rows_repeats_under_the_torch_seed_and_differs_between_draws():
    z = torch.ones(64, 32)
    torch.manual_seed(3)
    first, second = dropout_rows(z, 0.5, True), dropout_rows(z, 0.5, True)
    torch.manual_seed(3)
    again = dropout_rows(z, 0.5, True)
    assert torch.equal(first, again)
    assert not torch.equal(first, second)


def test_dropout_rows_passes_gradients_through_the_kept_values_only():
    z = torch.rand(50, 40, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(1)
    out = dropout_rows(z, 0.25, training=True)
    out.sum().backward()
    kept = (out != 0).double()
    torch.testing.assert_close(z.grad, kept / 0.75)
    assert out.dtype == torch.float64


def test_dropout_rows_is_the_identity_in_eval_mode_and_at_zero():
    z = torch.rand(8, 8)
    assert dropout_rows(z, 0.3, training=False) is z
    assert dropout_rows(z, 0.0, training=True) is z
