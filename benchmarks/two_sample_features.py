"""What tells a trained run's generated EDA from real: the two-sample test taken apart.

    PYTHONPATH=$PWD python -m benchmarks.two_sample_features runs/quickstart --samples 4

Generates `samples` traces per held-out test recording with the run's own sampling settings
(`wavenet_lib.evaluate.assessment.assess`, primed as the pipeline primes), then:

- the two-sample AUC of generated against real on each group of window features alone and
  on all features but that group (`feature_group_aucs`);
- per feature, the spread over the windows of one trace and over the traces
  (`feature_spread`): the medians of the ratios generated / real say whether generated traces
  vary more within themselves and less between each other than real people do;
- the AUC at the output's resolution (`resolution_aucs`): generated against the real traces put
  on the model's level grid, and those against the raw real traces (what the grid alone earns).

Writes `benchmarks/results/two_sample_features.json` (or `--out`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks.common import load_trained_run, write_json
from wavenet_lib.evaluate.assessment import assess
from wavenet_lib.evaluate.two_sample import stacked_window_features, trace_window_features
from wavenet_lib.evaluate.two_sample_diagnosis import (
    feature_group_aucs,
    feature_spread_on_tables,
    resolution_aucs,
)

SHOWN = 8  # features printed, by the size of their effect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a trained run (config.yaml + best.pt)")
    parser.add_argument("--samples", type=int, default=4, help="generated traces per test recording")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/two_sample_features.json")
    args = parser.parse_args(argv)

    run = Path(args.run_dir)
    experiment, model, bundle = load_trained_run(run)
    started = time.perf_counter()
    items = assess(model, experiment, bundle, "test", samples=args.samples, seed=args.seed)
    rate = float(experiment.model.eda_sample_rate)
    real = {it.recording_id: it.scored_traces()["real"] for it in items}
    generated = {it.recording_id: it.scored_traces()["generated"] for it in items}
    # Window features once per trace (each runs the SCR detector): both views read them.
    real_tables, generated_tables = trace_window_features(real, rate), trace_window_features(generated, rate)
    real_features, generated_features = (
        stacked_window_features(real_tables),
        stacked_window_features(generated_tables),
    )
    groups = feature_group_aucs(real_features, generated_features, seed=args.seed)
    levels = experiment.model.quantization_levels
    resolution = resolution_aucs(
        real, generated, bundle.normalizers, levels, rate, args.seed, (real_features, generated_features)
    )
    spread = feature_spread_on_tables(real_tables, generated_tables)
    result = {
        "run": str(run),
        "n_recordings": len(items),
        "samples": args.samples,
        "sampling": experiment.sampling.model_dump(),
        "torch_threads": torch.get_num_threads(),
        "feature_groups": groups.round(4).to_dict(orient="index"),
        "output_resolution": {name: round(value, 4) for name, value in resolution.items()},
        "median_within_ratio": float(spread["within_ratio"].median()),
        "median_between_ratio": float(spread["between_ratio"].median()),
        "within_ratio_by_group": spread.groupby("group")["within_ratio"].median().round(3).to_dict(),
        "between_ratio_by_group": spread.groupby("group")["between_ratio"].median().round(3).to_dict(),
        "features": spread.round(4).to_dict(orient="index"),
        "seconds": time.perf_counter() - started,
    }
    print(groups.round(3).to_string())
    print(
        f"\nAUC generated vs real {resolution['other_vs_real']:.3f}; vs real on the {levels}-level output "
        f"grid {resolution['other_vs_real_on_grid']:.3f}; real on the grid vs real "
        f"{resolution['real_on_grid_vs_real']:.3f}"
    )
    print(
        f"\nmedian spread generated / real: within a trace {result['median_within_ratio']:.2f}, "
        f"between traces {result['median_between_ratio']:.2f}"
    )
    largest = spread.reindex(spread["effect"].abs().sort_values(ascending=False).index).head(SHOWN)
    shown = ["group", "real_mean", "other_mean", "effect", "within_ratio", "between_ratio"]
    print(largest[shown].round(3).to_string())
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
