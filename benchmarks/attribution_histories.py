"""Which EDA history should attribution hold fixed when none was recorded? Measured against the truth.

    PYTHONPATH=$PWD python -m benchmarks.attribution_histories runs/quickstart --samples 8

`attribute_audio` attributes the model's predicted EDA with a history held fixed. A recorded
listener's EDA is the natural one; a new stimulus has none, so the history is generated from
the audio. This script scores three histories on the held-out test recordings of a trained run
on the synthetic dataset, whose true event times are known: the recorded EDA, one generated
trace, and the mean attribution over `samples` generated traces (what `attribute_audio` does
by default without EDA). Each is scored, side by side on the same recordings, by the share of
the positive attribution within 0.5 s and 1 s of a true event (`onset_mass_fraction`), beside
the share of the time those windows cover.

Writes `benchmarks/results/attribution_histories.json`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks.common import load_trained_run, write_json
from wavenet_lib.attribution import BASELINES, attribute_audio
from wavenet_lib.evaluate.stimulus_validation import onset_mass_fraction, true_events

WINDOWS_S = (0.5, 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a trained run on the synthetic dataset (config.yaml + best.pt)")
    parser.add_argument("--samples", type=int, default=8, help="generated histories averaged")
    parser.add_argument("--recordings", type=int, default=None, help="only the first N test recordings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--baseline", choices=BASELINES, default=BASELINES[0], help="the Integrated Gradients baseline"
    )
    parser.add_argument("--out", default="benchmarks/results/attribution_histories.json")
    args = parser.parse_args(argv)

    run = Path(args.run_dir)
    experiment, model, bundle = load_trained_run(run)
    ids = bundle.splits["test"][: args.recordings]
    histories = ("recorded", "generated_1", f"generated_mean_{args.samples}")
    collected: dict[str, tuple[list, list, list]] = {h: ([], [], []) for h in histories}
    started = time.perf_counter()
    for rid in ids:
        rec = bundle.load(rid, experiment)
        prepared = bundle.recordings[rid]
        events = true_events(prepared.row.audio_path)
        if events is None:
            raise SystemExit(f"{prepared.row.audio_path}: no events file; is this the synthetic dataset?")
        norm = bundle.normalizers[rid]
        common = {"normalizer": norm, "baseline": args.baseline, "seed": args.seed}
        runs = {
            "recorded": attribute_audio(model, rec.mfcc, rec.eda, **common),
            "generated_1": attribute_audio(model, rec.mfcc, None, samples=1, **common),
            histories[2]: attribute_audio(model, rec.mfcc, None, samples=args.samples, **common),
        }
        for name, att in runs.items():
            values, times, onsets = collected[name]
            values.append(att.step_attribution)
            times.append(prepared.audio_start_s + att.step_times_s + 0.5 / att.eda_sample_rate)
            onsets.append(events["onset_s"].to_numpy(float))
    scores = {
        name: {f"within_{w:g}s": onset_mass_fraction(*collected[name], w) for w in WINDOWS_S}
        for name in histories
    }
    result = {
        "run": str(run),
        "n_recordings": len(ids),
        "samples": args.samples,
        "baseline": args.baseline,
        "torch_threads": torch.get_num_threads(),
        "scores": scores,
        "seconds": time.perf_counter() - started,
    }
    for name in histories:
        cells = [
            f"{w:g} s: {scores[name][f'within_{w:g}s']['mass_fraction']:.3f} "
            f"(windows cover {scores[name][f'within_{w:g}s']['window_coverage']:.3f})"
            for w in WINDOWS_S
        ]
        print(f"{name:22s} " + "; ".join(cells))
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
