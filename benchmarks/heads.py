"""The training loss per output head: from the full logits against the scored-target forward.

    python -m benchmarks.heads [--config configs/quickstart.yaml] [--batch 16] [--json OUT]

One forward + backward of the training loss on one fixed window batch, for each head
(`relative_softmax`, `logistic_mixture`) and two ways of computing the loss:

- **logits**: `model(mfcc, eda_prev)` gives the (B, Q, C_out, T) logits of every step, then
  `masked_cross_entropy` keeps the scored ones (how training computed it before);
- **scored**: `model(mfcc, eda_prev, target=..., first_step=first_full_step)` gives log P(target)
  of the scored steps only (what training does now): the mixture evaluates K logistics per step
  instead of Q·K, and the post-net and pooling run on the scored steps alone.

All four run interleaved in one process, best of `--repeats` rounds, so the ratios survive a
noisy machine. Printed: ms per step and each time over the softmax head's scored loss.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import load_average, machine, print_table, write_json
from wavenet_lib.configs import load_config
from wavenet_lib.models.wavenet import Wavenet
from wavenet_lib.train.step import masked_cross_entropy

HEADS = ("relative_softmax", "logistic_mixture")
LOSSES = ("logits", "scored")


def make_loss_step(exp, head: str, loss: str, batch: int):
    """A closure: forward + backward of the training loss of a fresh model with `head`."""
    cfg = exp.model.model_copy(update={"head": head})
    torch.manual_seed(0)
    model = Wavenet(cfg).train()
    first = cfg.first_full_step
    steps = first + exp.data.target_steps
    g = torch.Generator().manual_seed(0)
    mfcc = torch.randn(
        batch, cfg.in_channels, steps * cfg.spectral_frames_per_eda_step, cfg.features_per_frame, generator=g
    )
    eda_prev = torch.rand(batch, cfg.out_channels, steps, generator=g) * 2 - 1
    target = torch.randint(0, cfg.quantization_levels, (batch, cfg.out_channels, steps), generator=g)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        if loss == "logits":
            value = masked_cross_entropy(model(mfcc, eda_prev), target, first)
        else:
            value = -model(mfcc, eda_prev, target=target, first_step=first).float().mean()
        value.backward()

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.heads", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    exp = load_config(args.config)
    steps = {(h, k): make_loss_step(exp, h, k, args.batch) for h in HEADS for k in LOSSES}
    best = dict.fromkeys(steps, float("inf"))
    load_before = load_average()
    for fn in steps.values():
        fn()  # warm-up
    for _ in range(args.repeats):  # interleaved rounds: every variant sees the same load
        for key, fn in steps.items():
            start = time.perf_counter()
            fn()
            best[key] = min(best[key], time.perf_counter() - start)
    reference = best[("relative_softmax", "scored")]
    rows = [
        {
            "head": h,
            "loss": k,
            "ms_per_step": 1000 * best[(h, k)],
            "over_softmax_scored": best[(h, k)] / reference,
        }
        for h, k in steps
    ]
    print_table(rows, ["head", "loss", "ms_per_step", "over_softmax_scored"])
    write_json(
        args.json,
        {
            "machine": machine(),
            "config": args.config,
            "batch": args.batch,
            "load_average_before_after": [load_before, load_average()],
            "results": rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
