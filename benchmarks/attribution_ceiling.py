"""How concentrated can attribution be on this data? Reference attributions built from the rule itself.

    PYTHONPATH=$PWD python -m benchmarks.attribution_ceiling configs/quickstart.yaml

Attribution is scored (notebook 04, `metrics.json` "stimuli") by the share of its positive mass
within 0.5 s of the listener's true events, at EDA-step resolution. A model can only place its
credit where it expects a response, and what it can expect from the audio depends on how much
of the listener's rule it has learned. This script builds, for each held-out recording and
with no model, the credit of four idealized models and scores each exactly as the pipeline
scores the trained one (`onset_mass_fraction`, same windows, same steps):

- **the listener's own rule**: its events (the recording's listener, its threshold), each
  weighted by its drive. 1.0 by construction: the check that the scoring is the pipeline's.
- **the rule, listener unknown**: the rule's events for `subjects` listeners drawn from the
  dataset's prior (`draw_subject`: each its threshold), each event weighted by its drive,
  averaged over the listeners. A model that learned the rule exactly, the 5 s refractory period
  included, but must guess the listener's threshold, places its credit like this.
- **the rule without its refractory period**: the same, every feature peak above threshold an
  event. A model that learned the threshold but not that an event silences the next 5 s.
- **the graded feature**: the positive part of the rule's feature at every step, no threshold:
  a model whose expected response simply grows with the feature.

Writes `benchmarks/results/attribution_ceiling.json`.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import soundfile as sf

from benchmarks.common import load_synthetic_experiment, write_json
from wavenet_lib.data.listener import (
    RULES,
    draw_subject,
    event_drive,
    feature_events,
    listener_feature,
    rule_threshold,
)
from wavenet_lib.evaluate.stimulus_validation import events_file, onset_mass_fraction, true_events

REFERENCES = ("listener_rule", "rule_listener_unknown", "rule_without_refractory", "graded_feature")


def credit_at(
    times_s: np.ndarray, weights: np.ndarray, start_s: float, rate: float, steps: int
) -> np.ndarray:
    """(steps,) the weights summed into the EDA step each time falls in."""
    index = np.clip(((np.asarray(times_s) - start_s) * rate).astype(int), 0, steps - 1)
    credit = np.zeros(steps)
    np.add.at(credit, index, weights)
    return credit


def rule_credit(
    values: np.ndarray, times: np.ndarray, threshold: float, min_gap_s: float, selection: str, scale: float,
    start_s: float, rate: float, steps: int,
) -> np.ndarray:  # fmt: skip
    """(steps,) the rule's events for one threshold, each weighted by its drive, at their steps."""
    when, strengths = feature_events(values, times, threshold, min_gap_s, selection)
    return credit_at(when, event_drive(strengths, threshold, scale), start_s, rate, steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="an experiment config with a synthetic dataset (e.g. quickstart)")
    parser.add_argument("--split", default="test", help="the attributed split (the pipeline's: test)")
    parser.add_argument("--subjects", type=int, default=64, help="listeners drawn for the unknown listener")
    parser.add_argument("--window", type=float, default=0.5, help="half-width around each event (s)")
    parser.add_argument("--out", default="benchmarks/results/attribution_ceiling.json")
    args = parser.parse_args(argv)

    experiment, synthetic, bundle = load_synthetic_experiment(args.config)
    rate = float(experiment.model.eda_sample_rate)
    rule = RULES[synthetic.listener]
    rng = np.random.default_rng([synthetic.seed, 104729])
    subjects = [draw_subject(rng, 10_000 + k, synthetic) for k in range(args.subjects)]
    thresholds = [rule_threshold(synthetic, subject) for subject in subjects]
    gap, selection = synthetic.min_event_gap_s, synthetic.event_selection

    credits: dict[str, list[np.ndarray]] = {name: [] for name in REFERENCES}
    step_times, onsets = [], []
    started = time.perf_counter()
    for rid in bundle.splits[args.split]:
        prepared = bundle.recordings[rid]
        row = prepared.row
        events = true_events(row.audio_path)
        if events is None:
            raise SystemExit(f"{row.audio_path}: no events file; is this the synthetic dataset?")
        audio, sr = sf.read(row.audio_path, dtype="float32")  # as the dataset's listener heard it
        audio = audio.mean(axis=1) if audio.ndim > 1 else audio
        values, times = listener_feature(rule.name, audio, sr)
        start = prepared.audio_start_s
        steps = int(round(len(audio) / sr * rate))

        placed = (selection, rule.strength_scale, start, rate, steps)
        own = pd.read_csv(events_file(row.audio_path))["threshold"]  # its listener's, on every event
        credits["listener_rule"].append(
            rule_credit(values, times, float(own.iloc[0]), gap, *placed) if len(own) else np.zeros(steps)
        )
        credits["rule_listener_unknown"].append(
            np.mean([rule_credit(values, times, t, gap, *placed) for t in thresholds], axis=0)
        )
        credits["rule_without_refractory"].append(
            np.mean([rule_credit(values, times, t, 0.0, *placed) for t in thresholds], axis=0)
        )
        credits["graded_feature"].append(credit_at(times, np.clip(values, 0.0, None), start, rate, steps))
        step_times.append(start + (np.arange(steps) + 0.5) / rate)
        onsets.append(events["onset_s"].to_numpy(float))

    scores = {name: onset_mass_fraction(c, step_times, onsets, args.window) for name, c in credits.items()}
    result = {
        "config": args.config,
        "listener": synthetic.listener,
        "split": args.split,
        "window_s": args.window,
        "subjects": args.subjects,
        "n_recordings": len(onsets),
        "n_onsets": int(sum(len(o) for o in onsets)),
        "window_coverage": scores["listener_rule"]["window_coverage"],
        "mass_fraction": {name: s["mass_fraction"] for name, s in scores.items()},
        "seconds": time.perf_counter() - started,
    }
    print(json.dumps(result, indent=2))
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
