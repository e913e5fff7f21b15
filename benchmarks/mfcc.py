"""MFCC extraction: `compute_mfcc` against the librosa pipeline it replaced, side by side.

    python -m benchmarks.mfcc [--config configs/e4_4hz.yaml] [--seconds 3600] [--json OUT]

Both run on the same `--seconds` of audio (noise with a tone and a silent stretch) in one
process; printed: seconds each (median of `--repeats`), the speedup, and the largest difference
relative to 1 + |librosa's value| (tests/unit/data/test_mfcc_equivalence.py bounds it by 2e-4).
"""

from __future__ import annotations

import argparse

import librosa
import numpy as np
import torch

from benchmarks.common import load_average, machine, median_time, write_json
from wavenet_lib.configs import WavenetConfig, load_config
from wavenet_lib.data.features import compute_mfcc, n_mels_for


def librosa_mfcc(audio: np.ndarray, cfg: WavenetConfig, n_steps: int) -> np.ndarray:
    """The previous `compute_mfcc`, verbatim: librosa melspectrogram → power_to_db → mfcc."""
    hop, window = cfg.mfcc_hop_size, cfg.mfcc_window_size
    frames = n_steps * cfg.spectral_frames_per_eda_step
    needed = frames * hop
    audio = np.asarray(audio, dtype=np.float32)[:, :needed]
    y = np.pad(audio, ((0, 0), (window - hop, needed - audio.shape[-1])))
    mel = librosa.feature.melspectrogram(
        y=y,
        sr=cfg.audio_sample_rate,
        n_fft=window,
        hop_length=hop,
        center=False,
        n_mels=n_mels_for(cfg.audio_sample_rate, window, cfg.num_mfccs),
    )
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=cfg.num_mfccs)
    return np.ascontiguousarray(np.swapaxes(mfcc, -1, -2), dtype=np.float32)


def bench_mfcc(cfg: WavenetConfig, seconds: float, repeats: int = 3, reference: bool = True) -> dict:
    sr = cfg.audio_sample_rate
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((cfg.in_channels, int(seconds * sr)))).astype(np.float32)
    audio[:, : sr * 5] += 0.5 * np.sin(2 * np.pi * 440 * np.arange(sr * 5) / sr).astype(np.float32)
    audio[:, sr * 6 : sr * 8] = 0.0
    steps = int(seconds * cfg.eda_sample_rate)
    compute_mfcc(audio[:, : sr * 2], cfg, int(2 * cfg.eda_sample_rate))  # warm-up (filterbank cache)
    result = {"audio_seconds": seconds, "load_average": load_average()}
    result["torch_s"] = median_time(lambda: compute_mfcc(audio, cfg, steps), repeats)
    if reference:
        result["librosa_s"] = median_time(lambda: librosa_mfcc(audio, cfg, steps), max(1, repeats - 2))
        result["speedup"] = result["librosa_s"] / result["torch_s"]
        new, old = compute_mfcc(audio, cfg, steps), librosa_mfcc(audio, cfg, steps)
        result["max_rel_diff"] = float((np.abs(new - old) / (1 + np.abs(old))).max())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mfcc", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/e4_4hz.yaml")
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = bench_mfcc(load_config(args.config).model, args.seconds, args.repeats)
    print(
        f"{args.seconds:.0f} s of audio: torch {result['torch_s']:.2f} s, "
        f"librosa {result['librosa_s']:.2f} s ({result['speedup']:.1f}x), "
        f"max |diff| / (1 + |librosa|) = {result['max_rel_diff']:.2g}"
    )
    write_json(args.json, {"machine": machine(), "mfcc": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
