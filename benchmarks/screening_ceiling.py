"""How well can screening follow the true events at all? The listener itself, screened like the model.

    PYTHONPATH=$PWD python -m benchmarks.screening_ceiling configs/quickstart.yaml --samples 8 32

Screening is scored (notebook 04, `metrics.json` "stimuli") by Spearman's ρ between a statistic
of each held-out recording and the number × strength of its true events. Part of what keeps ρ
from 1 is the model; part is the data: the events depend on each listener's threshold, and
responses include spontaneous SCRs and draws of latency, amplitude and whether an event evokes
anything. This script measures the second part on the same held-out recordings, with no model:

- **perfect generator**: the dataset's own listener simulator (`simulate_listener`) run on each
  recording's audio for `samples` new subjects drawn like the dataset's, each trace measured by
  the screening's statistics (`sample_statistics`: SCR detector, µS), averaged over samples. A
  model that had learned the listener exactly, screened by sampling, scores this.
- **the recorded listener**: the same statistics of the recording's own EDA (one sample).
- **audio oracle**: the summed strength of the feature peaks above the rule's mean threshold,
  computed from the audio with the rule itself (no sampling, no physiology): what a noise-free
  statistic that knew the rule could reach.

Writes `benchmarks/results/screening_ceiling.json`.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import soundfile as sf
from scipy.stats import spearmanr

from benchmarks.common import load_synthetic_experiment, write_json
from wavenet_lib.data.eda import read_eda
from wavenet_lib.data.listener import (
    RULES,
    base_threshold,
    draw_subject,
    feature_events,
    listener_feature,
    simulate_listener,
)
from wavenet_lib.evaluate.stimulus_validation import true_events
from wavenet_lib.screening import sample_statistics

STATISTICS = ("scr_per_min", "response_us_per_min")


def rho(values: list[float], truth: list[float]) -> float:
    return float(spearmanr(values, truth)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="an experiment config with a synthetic dataset (e.g. quickstart)")
    parser.add_argument("--samples", type=int, nargs="+", default=[8, 32], help="subjects per recording")
    parser.add_argument("--splits", nargs="+", default=["val", "test"], help="the screened splits")
    parser.add_argument("--out", default="benchmarks/results/screening_ceiling.json")
    args = parser.parse_args(argv)

    experiment, synthetic, bundle = load_synthetic_experiment(args.config)
    rate = float(experiment.model.eda_sample_rate)
    rule = RULES[synthetic.listener]
    threshold = base_threshold(synthetic)
    ids = [r for split in args.splits for r in bundle.splits[split]]

    truth, oracle, recorded = [], [], []
    simulated: dict[int, dict[str, list[float]]] = {n: {s: [] for s in STATISTICS} for n in args.samples}
    started = time.perf_counter()
    for i, rid in enumerate(ids):
        row = bundle.recordings[rid].row
        events = true_events(row.audio_path)
        if events is None:
            raise SystemExit(f"{row.audio_path}: no events file; is this the synthetic dataset?")
        truth.append(float(events["strength"].sum()))
        audio, sr = sf.read(row.audio_path, dtype="float32")  # as the dataset's listener heard it
        audio = audio.mean(axis=1) if audio.ndim > 1 else audio
        values, times = listener_feature(rule.name, audio, sr)
        _, strengths = feature_events(
            values, times, threshold, synthetic.min_event_gap_s, synthetic.event_selection
        )
        oracle.append(float(strengths.sum()))
        eda = read_eda(row.eda_path, row.eda_format, row.eda_sample_rate, row.eda_column).values
        recorded.append(sample_statistics(eda[None], rate).iloc[0])
        for n in args.samples:
            traces = []
            for k in range(n):
                rng = np.random.default_rng([synthetic.seed, 7919, i, k])
                subject = draw_subject(rng, 10_000 + k, synthetic)
                trace, _, _ = simulate_listener(audio, sr, rate, subject, synthetic, rng)
                traces.append(trace)
            length = min(len(t) for t in traces)
            mean = sample_statistics(np.stack([t[:length] for t in traces]), rate).mean()
            for s in STATISTICS:
                simulated[n][s].append(float(mean[s]))
    recorded_rho = {s: rho([float(r[s]) for r in recorded], truth) for s in STATISTICS}
    generator_rho = {str(n): {s: rho(v, truth) for s, v in simulated[n].items()} for n in args.samples}
    result = {
        "config": args.config,
        "listener": synthetic.listener,
        "splits": args.splits,
        "n_recordings": len(ids),
        "truth": "sum of the true events' strength (number x strength)",
        "perfect_generator_rho": generator_rho,
        "recorded_listener_rho": recorded_rho,
        "audio_oracle_rho": rho(oracle, truth),
        "audio_oracle_threshold": threshold,
        "seconds": time.perf_counter() - started,
    }
    print(json.dumps(result, indent=2))
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
