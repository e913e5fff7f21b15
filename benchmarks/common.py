"""Shared measurement helpers: wall-clock timing, matmul peak at a given width, peak memory, FLOPs."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from wavenet_lib.configs import WavenetConfig


def best_time(fn: Callable[[], object], repeats: int = 3, min_time: float = 0.0) -> float:
    """Fastest of `repeats` runs (s): the least disturbed by other load on a shared machine."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return max(best, min_time)


def median_time(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median of `repeats` runs (s): robust to a few runs slowed by other load."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (how busy the shared machine was); [] if unknown."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def matmul_flops(rows: int, inner: int, cols: int, repeats: int = 5, device: str = "cpu") -> float:
    """Achieved FLOP/s of (rows × inner) @ (inner × cols) matmuls, measured now on this machine."""
    a = torch.randn(rows, inner, device=device)
    b = torch.randn(inner, cols, device=device)
    n = max(1, int(2e9 // (2 * rows * inner * cols)))  # ~2 GFLOP per timing

    def run():
        for _ in range(n):
            torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()

    run()
    return 2 * rows * inner * cols * n / best_time(run, repeats)


def per_frame_gemm_flops(cfg: WavenetConfig) -> int:
    """Multiply-add FLOPs of the WaveNet's 1×1 and dilated convs for one MFCC frame."""
    r, g, s, c, d = (
        cfg.hidden_channels,
        cfg.gate_width,
        cfg.skip_width,
        cfg.condition_channels,
        cfg.postnet_width,
    )
    layers = cfg.num_layers
    per_layer = 2 * (2 * r * 2 * g) + 2 * (c * 2 * g) + 2 * (g * r) + 2 * (g * s)
    audio = 2 * cfg.in_channels * cfg.features_per_frame * r
    upsampler = 2 * cfg.out_channels * c + 2 * c * c
    postnet = 2 * s * d + 2 * d * d + 2 * d * cfg.out_channels
    return layers * per_layer + audio + upsampler + postnet


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def load_trained_run(run_dir: str | Path) -> tuple:
    """(experiment, model, bundle) of a trained run folder: its config.yaml, its best.pt and the
    datasets that config builds (the synthetic data are written if missing)."""
    from wavenet_lib.configs import load_config
    from wavenet_lib.data.bundle import build_datasets
    from wavenet_lib.train.checkpoints import load_model

    run = Path(run_dir)
    experiment = load_config(run / "config.yaml")
    model, _, _ = load_model(run / "best.pt")
    return experiment, model, build_datasets(experiment)


def load_synthetic_experiment(config_path: str | Path) -> tuple:
    """(experiment, its synthetic-data settings, the datasets it builds) of a config whose data is
    the synthetic dataset, whose listener the ceiling benchmarks reproduce (written if missing).

    Raises:
        SystemExit: the config's data is not the synthetic dataset.
    """
    from wavenet_lib.configs import load_config
    from wavenet_lib.data.bundle import build_datasets

    experiment = load_config(config_path)
    synthetic = experiment.data.synthetic
    if experiment.data.source != "synthetic" or synthetic is None:
        raise SystemExit(
            f"{config_path}: its data must be the synthetic dataset (its listener is reproduced here)"
        )
    return experiment, synthetic, build_datasets(experiment)


def write_json(path: str | Path | None, payload: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2, default=float) + "\n")
        print(f"wrote {path}")


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).rjust(w) for c, w in zip(columns, widths, strict=True)))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return "-" if v is None else str(v)
