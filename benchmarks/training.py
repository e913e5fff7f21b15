"""Training throughput: the network's two layouts and torch.compile, side by side in one run.

    python -m benchmarks.training [--config configs/e4_4hz.yaml] [--batch-sizes 8 32] [--json OUT]

One optimisation step is the library's `wavenet_lib.train.step.train_step`, what training does
per batch: teacher-forced forward over a window of `first_full_step + target_steps` EDA steps,
masked cross-entropy on the last `target_steps`, backward, gradient clipping, AdamW and the
learning-rate schedule. Three ways of running it, timed in interleaved rounds (best of
`--repeats` each): `eager`, the model as training runs it (time-major rows, `Wavenet.layout =
"rows"`); `conv`, the same model in the textbook Conv1d layout (`layout = "conv"`, with torch's
dropout); `compiled`, the rows model through torch.compile. Printed per batch size: EDA steps
(trained on) and MFCC frames per second, the rows/conv speedup (`layout_speedup`), the
compiled/eager speedup, achieved FLOP/s as a fraction of this machine's
matmul FLOP/s measured in the same run at the model's width (forward + backward ≈ 3 × forward
GEMM FLOPs), and peak memory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.common import (
    best_time,
    machine,
    matmul_flops,
    peak_rss_mib,
    per_frame_gemm_flops,
    print_table,
    write_json,
)
from wavenet_lib.configs import load_config
from wavenet_lib.models.wavenet import Wavenet
from wavenet_lib.train.optim import build_optimizer
from wavenet_lib.train.step import train_step


def make_step(exp, batch: int, target_steps: int, mode: str):
    """A closure running the library's `train_step` on one fixed random batch; MFCC frames per window.

    mode: "eager" (rows layout), "conv" (textbook layout) or "compiled" (rows, torch.compile).
    """
    cfg = exp.model
    torch.manual_seed(0)
    model = Wavenet(cfg)
    model.layout = "conv" if mode == "conv" else "rows"
    forward = torch.compile(model) if mode == "compiled" else model
    optimizer, scheduler = build_optimizer(model, exp.train)
    steps = cfg.first_full_step + target_steps
    spf = cfg.spectral_frames_per_eda_step
    g = torch.Generator().manual_seed(0)
    window = {
        "mfcc": torch.randn(batch, cfg.in_channels, steps * spf, cfg.features_per_frame, generator=g),
        "eda_prev": torch.rand(batch, cfg.out_channels, steps, generator=g) * 2 - 1,
        "target": torch.randint(0, cfg.quantization_levels, (batch, cfg.out_channels, steps), generator=g),
    }

    def step():
        train_step(
            forward,
            window,
            optimizer,
            scheduler,
            first_full_step=cfg.first_full_step,
            grad_clip=exp.train.grad_clip,
            bf16=exp.train.bf16,
        )

    return step, steps * spf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/e4_4hz.yaml")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[8, 32])
    parser.add_argument(
        "--target-steps", type=int, default=None, help="default: the config's data.target_steps"
    )
    parser.add_argument("--repeats", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    exp = load_config(args.config)
    cfg = exp.model
    target_steps = args.target_steps or exp.data.target_steps
    peak = matmul_flops(8192, cfg.hidden_channels, 2 * cfg.gate_width)
    rows = []
    modes = ["eager", "conv"] + ([] if args.no_compile else ["compiled"])
    for b in args.batch_sizes:
        row = {"config": Path(args.config).stem, "batch": b, "matmul_flops_at_width": peak}
        steps, frames = {}, 0
        for mode in modes:
            print(f"batch {b}: {mode} ...", flush=True)
            steps[mode], frames = make_step(exp, b, target_steps, mode)
            steps[mode]()  # warm-up (and compilation)
        best = dict.fromkeys(modes, float("inf"))
        for _ in range(args.repeats):  # interleaved: each round times every mode under the same load
            for mode in modes:
                best[mode] = min(best[mode], best_time(steps[mode], 1))
        flops = 3 * b * frames * per_frame_gemm_flops(cfg)
        for mode, seconds in best.items():
            row[f"{mode}_s_per_step"] = seconds
            row[f"{mode}_eda_steps_per_s"] = b * target_steps / seconds
            row[f"{mode}_mfcc_frames_per_s"] = b * frames / seconds
            row[f"{mode}_fraction_of_matmul_peak"] = flops / seconds / peak
        row["layout_speedup"] = row["conv_s_per_step"] / row["eager_s_per_step"]
        if not args.no_compile:
            row["compile_speedup"] = row["eager_s_per_step"] / row["compiled_s_per_step"]
        row["peak_rss_mib"] = peak_rss_mib()
        rows.append(row)
    cols = [
        "config",
        "batch",
        "eager_eda_steps_per_s",
        "eager_mfcc_frames_per_s",
        "eager_fraction_of_matmul_peak",
        "conv_eda_steps_per_s",
        "layout_speedup",
    ]
    if not args.no_compile:
        cols += ["compiled_eda_steps_per_s", "compiled_fraction_of_matmul_peak", "compile_speedup"]
    print_table(rows, cols + ["peak_rss_mib"])
    write_json(args.json, {"machine": machine(), "results": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
