"""Generation speed: the fast (cached) path against the naive reference, side by side.

    python -m benchmarks.generation [--configs configs/quickstart.yaml configs/e4_4hz.yaml]
                                    [--batch-sizes 1 32] [--hour 3600] [--json OUT]

For each config and batch size, all paths run on the same model in the same process: the fast
path as `Wavenet.generate(incremental=True)` over a whole clip, with its layers compiled
(models/fused_step.py) and with the PyTorch fallback (`WAVENET_EDA_FUSED=0`), and the naive
path as its per-step body `Wavenet.reference_step_logits` (re-running `forward` over one full
receptive field, not over the whole prefix) plus the same sampling. Each is the median of a few
repeats. Also printed: EDA steps per second and the real-time factor (seconds of EDA per wall
second) of the fast path, its achieved FLOP/s as a fraction of this machine's matmul FLOP/s
measured in the same run at the model's width, where a step's time goes (compiled layers, the
model's head `logits_from_skips`, sampling, the rest), peak memory and the load average.
`--hour` times one hour of audio → EDA at batch 1, MFCC extraction included.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import (
    load_average,
    machine,
    matmul_flops,
    median_time,
    peak_rss_mib,
    per_frame_gemm_flops,
    print_table,
    write_json,
)
from wavenet_lib.configs import WavenetConfig, load_config
from wavenet_lib.models.incremental import Stepper
from wavenet_lib.models.quantization import quantize
from wavenet_lib.models.wavenet import Wavenet


@contextmanager
def layers(compiled: bool) -> Iterator[None]:
    """Generation inside runs its layers compiled or as PyTorch calls (`WAVENET_EDA_FUSED`)."""
    before = os.environ.get("WAVENET_EDA_FUSED")
    os.environ["WAVENET_EDA_FUSED"] = "1" if compiled else "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["WAVENET_EDA_FUSED"]
        else:
            os.environ["WAVENET_EDA_FUSED"] = before


def clip(cfg: WavenetConfig, batch: int, steps: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    spf = cfg.spectral_frames_per_eda_step
    return torch.randn(batch, cfg.in_channels, steps * spf, cfg.features_per_frame, generator=g)


def fast_step_time(model: Wavenet, batch: int, steps: int, repeats: int, compiled: bool = True) -> float:
    """Seconds per step of `generate(incremental=True)` over a clip of `steps` steps.

    Includes everything a call does (the audio-only work done once per clip, sampling): the
    fast path costs the same at every step, so no warm-up needs subtracting.
    """
    mfcc = clip(model.config, batch, steps)
    with layers(compiled):
        model.generate(mfcc[:, :, : 2 * model.spf])  # warm-up (and the one-time build)
        run = lambda: model.generate(mfcc, generator=torch.Generator().manual_seed(0))  # noqa: E731
        return median_time(run, repeats) / steps


@torch.no_grad()
def step_breakdown(model: Wavenet, batch: int, steps: int = 100) -> dict:
    """Microseconds per step of each part of a compiled fast step, timed apart over `steps` steps:
    the compiled call (layers, and the head when the kernel implements it), the PyTorch head
    (`logits_from_skips` or, after a compiled head, `Downsampler.to_levels`) and sampling."""
    cfg = model.config
    mfcc = clip(cfg, batch, steps)
    with layers(True):
        stepper = Stepper(model, mfcc)
    fused = stepper.fused
    if fused is None or stepper.c_table is None:
        return {}
    prev = torch.zeros(batch, cfg.out_channels)
    level = quantize(prev, cfg.quantization_levels)
    rows = fused(0, None, level[:, 0])
    if fused.head:
        params = rows.transpose(1, 2)[..., None].clone()
        head = lambda t: model.downsampler.to_levels(params, level[:, :, None])  # noqa: E731
    else:
        skips = rows.view(model.spf, batch, -1).permute(1, 2, 0).clone()
        head = lambda t: model.logits_from_skips(skips, level[:, :, None])  # noqa: E731
    logits = head(0)[..., 0]
    g = torch.Generator().manual_seed(0)
    compiled = "compiled_layers_and_head" if fused.head else "compiled_layers"
    parts = {
        compiled: lambda t: fused(t, None, level[:, 0]),
        "head_to_levels" if fused.head else "head_logits_from_skips": head,
        "sampling": lambda t: model._sample(logits, 1.0, False, g),
    }
    out = {}
    for name, fn in parts.items():
        out[f"{name}_us"] = median_time(lambda fn=fn: [fn(t) for t in range(steps)], 3) / steps * 1e6
    return out


@torch.no_grad()
def naive_step_time(model: Wavenet, batch: int, steps: int, repeats: int) -> float:
    """Seconds per steady-state step of the reference path: `Wavenet.reference_step_logits`
    (one forward over a full receptive field) plus the same sampling, for steps whose window
    is full length (no shorter windows from the start of a clip)."""
    cfg = model.config
    spf = cfg.spectral_frames_per_eda_step
    first = cfg.receptive_field_eda_steps
    g = torch.Generator().manual_seed(0)
    mfcc = torch.randn(batch, cfg.in_channels, (first + steps) * spf, cfg.features_per_frame, generator=g)
    eda_prev = torch.zeros(batch, cfg.out_channels, first + steps)

    def run():
        for t in range(first, first + steps):
            logits = model.reference_step_logits(mfcc, eda_prev, t)
            model._sample(logits, 1.0, False, g)

    run()  # warm-up
    return median_time(run, repeats) / steps


def bench_config(
    cfg: WavenetConfig, name: str, batch_sizes: list[int], fast_steps: int, naive_steps: int
) -> dict:
    torch.manual_seed(0)
    model = Wavenet(cfg).eval()
    spf, r, g = cfg.spectral_frames_per_eda_step, cfg.hidden_channels, cfg.gate_width
    peak = matmul_flops(8192, r, 2 * g)
    result: dict = {
        "config": name,
        "spectral_frames_per_eda_step": spf,
        "layers": cfg.num_layers,
        "hidden_channels": r,
        "receptive_field_frames": cfg.receptive_field_frames,
        "matmul_flops_at_width": peak,
    }
    for b in batch_sizes:
        fast = fast_step_time(model, b, fast_steps, repeats=5)
        fallback = fast_step_time(model, b, fast_steps, repeats=3, compiled=False)
        naive = naive_step_time(model, b, naive_steps, repeats=3)
        flops = b * spf * per_frame_gemm_flops(cfg)
        result[f"fast_s_per_step_b{b}"] = fast
        result[f"fallback_s_per_step_b{b}"] = fallback
        result[f"naive_s_per_step_b{b}"] = naive
        result[f"speedup_b{b}"] = naive / fast
        result[f"fallback_speedup_b{b}"] = naive / fallback
        result[f"eda_steps_per_s_b{b}"] = b / fast  # steps of EDA produced per wall second, all samples
        result[f"real_time_factor_b{b}"] = b / fast / cfg.eda_sample_rate
        result[f"gemm_flops_per_s_b{b}"] = flops / fast
        for part, us in step_breakdown(model, b).items():
            result[f"{part}_b{b}"] = us
    # The peak is the best of a measurement before and one after: on a shared machine a single
    # one can land in a burst of other load.
    result["matmul_flops_at_width"] = peak = max(peak, matmul_flops(8192, r, 2 * g))
    for b in batch_sizes:
        result[f"fraction_of_matmul_peak_b{b}"] = result[f"gemm_flops_per_s_b{b}"] / peak
    result["peak_rss_mib"] = peak_rss_mib()
    result["load_average"] = load_average()
    return result


def bench_hour(cfg: WavenetConfig, seconds: float) -> dict:
    """Audio file → MFCC → EDA at batch 1, for `seconds` of audio (3600 = one hour)."""
    import soundfile as sf

    from wavenet_lib.data.features import mfcc_for_recording

    torch.manual_seed(0)
    model = Wavenet(cfg).eval()
    rng = np.random.default_rng(0)
    model.generate(
        torch.zeros(1, cfg.in_channels, 2 * model.spf, cfg.features_per_frame)
    )  # the one-time build
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "hour.wav"
        sf.write(
            wav,
            (0.1 * rng.standard_normal(int(seconds * cfg.audio_sample_rate))).astype(np.float32),
            cfg.audio_sample_rate,
        )
        steps = int(seconds * cfg.eda_sample_rate)
        start = time.perf_counter()
        mfcc = mfcc_for_recording(wav, cfg, steps)
        features = time.perf_counter() - start
        eda = model.generate(torch.as_tensor(mfcc)[None].float(), generator=torch.Generator().manual_seed(0))
        total = time.perf_counter() - start
    assert eda.shape[-1] == steps
    return {
        "audio_seconds": seconds,
        "threads": torch.get_num_threads(),
        "load_average": load_average(),
        "matmul_flops_at_width": matmul_flops(8192, cfg.hidden_channels, 2 * cfg.gate_width),
        "mfcc_s": features,
        "total_s": total,
        "generation_s": total - features,
        "real_time_factor": seconds / total,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.generation", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--configs", nargs="+", default=["configs/quickstart.yaml", "configs/e4_4hz.yaml"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--fast-steps", type=int, default=200, help="steps timed per clip, fast path")
    parser.add_argument("--naive-steps", type=int, default=12, help="steady-state steps timed, naive path")
    parser.add_argument(
        "--hour",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also time SECONDS of audio → EDA at batch 1 with the first config (3600: an hour)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    for path in args.configs:
        exp = load_config(path)
        print(f"benchmarking {path} ...", flush=True)
        rows.append(
            bench_config(exp.model, Path(path).stem, args.batch_sizes, args.fast_steps, args.naive_steps)
        )
    cols = ["config", "layers", "hidden_channels"]
    for b in args.batch_sizes:
        cols += [
            f"speedup_b{b}",
            f"fallback_speedup_b{b}",
            f"eda_steps_per_s_b{b}",
            f"real_time_factor_b{b}",
            f"fraction_of_matmul_peak_b{b}",
        ]
    print_table(rows, cols + ["peak_rss_mib"])
    parts = [k for k in rows[-1] if k.endswith("_us_b1") or k.endswith(f"_us_b{args.batch_sizes[-1]}")]
    if parts:
        print("where a compiled fast step's time goes (us per step):")
        print_table(rows, ["config"] + parts)
    print(f"load average during the run: {load_average()}")
    payload = {"machine": machine(), "results": rows}
    if args.hour:
        hour = bench_hour(load_config(args.configs[-1]).model, args.hour)
        print(
            f"{args.hour:.0f} s of audio → EDA at batch 1: {hour['total_s']:.1f} s "
            f"(MFCC {hour['mfcc_s']:.1f} s, generation {hour['generation_s']:.1f} s; "
            f"{hour['threads']} threads, matmul {hour['matmul_flops_at_width'] / 1e9:.0f} GFLOP/s)"
        )
        payload["audio_to_eda"] = hour
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
