"""Audio-link and realism experiments: train a config variant, evaluate it held-out, save the numbers.

    PYTHONPATH=$PWD python -m benchmarks.audio_link configs/quickstart.yaml --name base
    PYTHONPATH=$PWD python -m benchmarks.audio_link configs/quickstart.yaml --name wide \
        --set model.hidden_channels=64 --set train.max_steps=1200
    PYTHONPATH=$PWD python -m benchmarks.audio_link configs/quickstart.yaml --name base --eval-only \
        --sweep temperature=0.8,0.9,1.0 --sweep top_p=0.9,0.95,1.0

Each run writes `<out>/<name>.json`: the overrides, the training time, the pooled held-out
metrics (`wavenet_lib.evaluate.report.build_report`), the per-recording teacher-forced
cross-entropy of the model, the audio-blind model and persistence (the CE gap says whether the
model uses the audio), and the one-step change percentiles of real, generated and audio-blind
EDA. `--sweep` re-evaluates one trained model at several sampling settings (realism against the
sampling knob). `--split val` evaluates on the validation listeners instead (written to
`<name>_val.json` / `<name>_val_sweep.json`), so that a knob can be chosen on them and reported
on the test listeners. `--collect NAME[@knob=value] ... --collect-sweep NAME ...` gathers runs
into `benchmarks/results/audio_link.json`, the tables notebook 05 shows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import yaml

from wavenet_lib.configs import ExperimentConfig, load_config


def apply_overrides(cfg: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """`section.field=value` strings (YAML values) applied to a config, validated again."""
    data = cfg.model_dump(mode="json")
    for item in overrides:
        key, _, raw = item.partition("=")
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(raw)
    return ExperimentConfig.model_validate(data)


def evaluate_run(
    model, cfg: ExperimentConfig, bundle, samples: int, seed: int = 0, split: str = "test"
) -> dict[str, Any]:
    """Held-out numbers of one trained model on `split`: `build_report`'s, flattened (see module
    docstring; the "test_*" names hold the numbers of whichever split was evaluated)."""
    from wavenet_lib.evaluate.report import assess, build_report

    report = build_report(assess(model, cfg, bundle, split, samples=samples, seed=seed))
    p = report.pooled
    flat: dict[str, float] = {
        "test_cross_entropy": p["generated"]["cross_entropy_nats"],
        "audio_blind_cross_entropy": p["audio_blind"]["cross_entropy_nats"],
        "persistence_cross_entropy": p["persistence"]["cross_entropy_nats"],
        "two_sample_auc_generated": p["generated"].get("two_sample_auc", float("nan")),
        "lsd_generated": p["generated"].get("diff_log_spectral_distance_db", float("nan")),
    }
    names = {
        "event_locked_peak_latency_s": "event_locked_latency_{}_s",
        "event_locked_peak_amplitude_us": "event_locked_amplitude_{}",
        "event_locked_above_chance_peak_latency_s": "event_locked_above_chance_latency_{}_s",
        "event_locked_above_chance_peak_amplitude_us": "event_locked_above_chance_amplitude_{}",
        "drift_us_per_min": "{}_drift_us_per_min",
        "scr_rate_per_min": "{}_scr_rate_per_min",
        "scr_amplitude_us": "{}_mean_amplitude_us",
        "scr_rise_time_s": "{}_mean_rise_time_s",
        "scr_half_recovery_s": "{}_mean_recovery_time_s",
        "step_decrease_p999_us": "{}_decrease_p999_us",
        "step_increase_p999_us": "{}_increase_p999_us",
        "step_fall_fraction": "{}_fall_fraction",
        "predicted_step_fall_fraction": "{}_predicted_fall_fraction",
    }
    for source in ("real", "generated", "audio_blind"):
        for metric, name in names.items():
            flat[name.format(source)] = p[source].get(metric, float("nan"))
    per_recording = [
        {
            "recording_id": rid,
            **{f"ce_{s}": rows[s]["cross_entropy_nats"] for s in ("generated", "audio_blind", "persistence")},
        }
        for rid, rows in report.per_recording.items()
    ]
    return {"pooled": flat, "per_recording": per_recording, "report": report.to_dict()}


def response_shares(evaluation: dict[str, Any]) -> dict[str, float]:
    """The generated response above chance as a fraction of the real one, with its 95 % bootstrap
    interval over recordings, from an evaluation's held-out report (empty for runs evaluated
    before the report had it)."""
    generated = evaluation.get("report", {}).get("pooled", {}).get("generated", {})
    key = "event_locked_above_chance_of_real"
    if f"{key}_fraction" not in generated:
        return {}
    return {
        "generated_above_chance_of_real": generated[f"{key}_fraction"],
        "generated_above_chance_of_real_low": generated[f"{key}_ci95_low_fraction"],
        "generated_above_chance_of_real_high": generated[f"{key}_ci95_high_fraction"],
    }


def table_row(p: dict[str, float]) -> dict[str, Any]:
    """One row of the experiments table from pooled metrics (generated / real where paired)."""

    def pair(metric: str) -> str:
        return f"{p[f'generated_{metric}']:.2f} / {p[f'real_{metric}']:.2f}"

    return {
        "CE model": round(p["test_cross_entropy"], 3),
        "CE audio-blind": round(p["audio_blind_cross_entropy"], 3),
        "CE persistence": round(p["persistence_cross_entropy"], 3),
        "gain": round(p["audio_blind_cross_entropy"] - p["test_cross_entropy"], 3),
        "EL latency gen / real (s)": f"{p['event_locked_latency_generated_s']:.2f} / "
        f"{p['event_locked_latency_real_s']:.2f}",
        "EL amplitude real / gen / blind": f"{p['event_locked_amplitude_real']:.2f} / "
        f"{p['event_locked_amplitude_generated']:.2f} / {p['event_locked_amplitude_audio_blind']:.2f}",
        "EL above chance real / gen / blind": (
            f"{p['event_locked_above_chance_amplitude_real']:.3f} / "
            f"{p['event_locked_above_chance_amplitude_generated']:.3f} / "
            f"{p['event_locked_above_chance_amplitude_audio_blind']:.3f}"
            if "event_locked_above_chance_amplitude_real" in p
            else None
        ),
        "response above chance, % of real (95 % CI)": (
            f"{100 * p['generated_above_chance_of_real']:.0f} "
            f"({100 * p['generated_above_chance_of_real_low']:.0f}–"
            f"{100 * p['generated_above_chance_of_real_high']:.0f})"
            if "generated_above_chance_of_real" in p
            else None
        ),
        "SCR/min": pair("scr_rate_per_min"),
        "amplitude (µS)": pair("mean_amplitude_us"),
        "rise (s)": pair("mean_rise_time_s"),
        "half-recovery (s)": pair("mean_recovery_time_s"),
        "p99.9 decrease (µS)": pair("decrease_p999_us"),
        "p99.9 increase (µS)": pair("increase_p999_us"),
        "falls real / gen; P(fall) on real / own past": (
            f"{p['real_fall_fraction']:.3f} / {p['generated_fall_fraction']:.3f}; "
            f"{p['real_predicted_fall_fraction']:.3f} / {p['generated_predicted_fall_fraction']:.3f}"
            if "real_predicted_fall_fraction" in p
            else None
        ),
        "two-sample AUC": round(p.get("two_sample_auc_generated", float("nan")), 3),
        "LSD of Δx (dB)": round(p.get("lsd_generated", float("nan")), 2),
    }


def result_path(out: Path, name: str, sweep: bool = False, split: str = "test") -> Path:
    """Where a run's evaluation goes: `<out>/<name>[_val][_sweep].json`."""
    return out / f"{name}{'_val' if split == 'val' else ''}{'_sweep' if sweep else ''}.json"


def sampling_used(evaluation: dict[str, Any], config: dict) -> dict[str, Any]:
    """The sampling settings an evaluation drew with: recorded with it since `sampling_used`
    existed; before that, the run folder's config.yaml with the evaluation's own overrides (which
    misnames an `--eval-only` evaluation under a config whose sampling section has changed)."""
    if "sampling_used" in evaluation:
        return dict(evaluation["sampling_used"])
    return config.get("sampling", {}) | evaluation.get("sampling", {})


def _dataset(name: str, config: dict) -> str:
    """Which data a run trained on (`config`: its saved config.yaml): the listener its config
    names, else (runs saved before the config named it) the one this benchmark's naming implies.

    Runs saved before `event_selection` existed used the strongest of close feature peaks."""
    synthetic = config.get("data", {}).get("synthetic") or {}
    listener = synthetic.get("listener")
    if listener is None:
        if not name.startswith(("novelty", "music")):
            return "clicks in noise (previous quickstart)"
        listener = "spectral_novelty" if name.startswith("novelty") else "loudness_rise"
    selection = synthetic.get("event_selection", "strongest")
    return f"music, {listener} listener, {selection} events"


def _sampling_label(used: dict) -> str:
    """ "temperature=1, top_p=0.98" (and ", min_prob=E" / ", audio_guidance=W" when those are on,
    the guidance's reference when it is not silence)."""
    label = ", ".join(f"{k}={float(used.get(k, 1.0)):g}" for k in ("temperature", "top_p"))
    for knob in ("min_prob", "audio_guidance"):  # off (0) by default: named only when on
        label += f", {knob}={float(used[knob]):g}" if used.get(knob) else ""
    if used.get("audio_guidance") and used.get("guidance_reference", "silent") != "silent":
        label += f" over {used['guidance_reference']}"
    return label


def run_folder(out: Path, name: str) -> Path:
    """The folder holding the trained run an evaluation file `<name>[_sweep].json` belongs to:
    `<out>/<name>`, or for a validation evaluation `<name>` = `<run>_val` (written by
    `--split val`), `<out>/<run>`."""
    folder = out / name
    if not folder.is_dir() and name.endswith("_val") and (out / name.removesuffix("_val")).is_dir():
        return out / name.removesuffix("_val")
    return folder


def collect(
    out: Path, target: Path, experiments: list[str], sweep: list[str] | None, append: bool = False
) -> None:
    """Gather `<out>/<name>.json` runs (and one `_sweep` file) into the notebook's results file.

    A validation evaluation (`--split val`) is gathered as `<run>_val`; its config is its run's.

    `append`: keep the rows already in `target` (runs whose folders are gone), replacing those of
    the same variant and sampling and, when `sweep` is given, the sweep rows of the same variants.
    """
    rows = []
    for spec in experiments:
        # NAME, or NAME@knob=value: the evaluation of that sampling setting from NAME's sweep
        name, _, setting = spec.partition("@")
        path = out / f"{name}.json"
        run = json.loads(
            (path if path.is_file() and "@" not in spec else out / f"{name}_sweep.json").read_text()
        )
        wanted = {k: float(v) for k, v in (kv.split("=") for kv in setting.split(",") if kv)}
        evaluation = next(e for e in run["evaluations"] if e["sampling"] == wanted)
        config = yaml.safe_load((run_folder(out, name) / "config.yaml").read_text())
        overrides = " ".join(run["overrides"]) or "(none)"
        row = {"variant": name, "data": _dataset(name, config), "overrides": overrides}
        used = sampling_used(evaluation, config)
        row["sampling"] = _sampling_label(used)
        row |= table_row(evaluation["pooled"] | response_shares(evaluation))
        if "report" not in evaluation:  # measured before the classifier judged at 0.01 µS resolution
            row["two-sample AUC"] = float("nan")
        rows.append(row)
    sweep_rows = []
    for name in sweep or []:
        run = json.loads((out / f"{name}_sweep.json").read_text())
        config = yaml.safe_load((run_folder(out, name) / "config.yaml").read_text())
        for ev in run["evaluations"]:
            setting = _sampling_label(sampling_used(ev, config))
            sweep_rows.append(
                {"setting": f"{name}: {setting}", "data": _dataset(name, config)} | table_row(ev["pooled"])
            )

    def clean(row: dict) -> dict:  # strict JSON: no NaN
        return {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}

    if append and target.is_file():
        old = json.loads(target.read_text())
        new_keys = {(r["variant"], r["sampling"]) for r in rows}
        rows = [r for r in old["experiments"] if (r["variant"], r["sampling"]) not in new_keys] + rows
        swept = {f"{name}:" for name in sweep or []}
        kept = [r for r in old["sampling_sweep"] if not any(r["setting"].startswith(k) for k in swept)]
        sweep_rows = kept + sweep_rows
    table = {"experiments": [clean(r) for r in rows], "sampling_sweep": [clean(r) for r in sweep_rows]}
    target.write_text(json.dumps(table, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", nargs="?")
    parser.add_argument("--name")
    parser.add_argument("--collect", nargs="+", help="gather these runs into --results instead")
    parser.add_argument("--collect-sweep", nargs="*", help="runs whose _sweep files go into --results")
    parser.add_argument("--append", action="store_true", help="keep the rows already in --results")
    parser.add_argument("--results", default="benchmarks/results/audio_link.json")
    parser.add_argument("--set", action="append", default=[], help="section.field=value override")
    parser.add_argument("--out", default="runs/audio_link")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--eval-only", action="store_true", help="reuse <out>/<name>/best.pt")
    parser.add_argument("--sweep", action="append", default=[], help="knob=v1,v2,... (sampling section)")
    parser.add_argument("--split", choices=("test", "val"), default="test", help="the listeners evaluated")
    args = parser.parse_args(argv)
    if args.collect:
        collect(Path(args.out), Path(args.results), args.collect, args.collect_sweep, args.append)
        return

    import torch

    from wavenet_lib.data.bundle import build_datasets
    from wavenet_lib.train.checkpoints import load_model
    from wavenet_lib.train.loop import stored_normalizer, train

    torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "1")))
    cfg = apply_overrides(load_config(args.config), args.set)
    run_dir = Path(args.out) / args.name
    bundle = build_datasets(cfg)
    cfg = bundle.feature_config(cfg)  # the checkpoints carry the MFCC scale, as train_experiment's do
    result: dict[str, Any] = {"name": args.name, "overrides": args.set}
    out = result_path(Path(args.out), args.name, bool(args.sweep), args.split)
    if args.eval_only:
        model, _, _ = load_model(run_dir / "best.pt")
        known = out if out.is_file() else result_path(Path(args.out), args.name)  # the training run's file
        if known.is_file():  # keep how the run was trained; the evaluations are replaced
            trained = json.loads(known.read_text())
            result |= {k: trained[k] for k in ("overrides", "train_s", "steps", "best_val") if k in trained}
    else:
        start = time.perf_counter()
        norm = stored_normalizer(bundle)
        res = train(cfg, bundle.train, bundle.val, run_dir, normalizer=norm, progress=False)
        result |= {"train_s": time.perf_counter() - start, "steps": res.step, "best_val": res.best_val_loss}
        model, _, _ = load_model(run_dir / "best.pt")
    model.eval()
    settings = [{}]
    for spec in args.sweep:
        knob, _, values = spec.partition("=")
        settings += [{knob: float(v)} for v in values.split(",")]
    rows = []
    for setting in settings if args.sweep else [{}]:
        run_cfg = apply_overrides(cfg, [f"sampling.{k}={v}" for k, v in setting.items()]) if setting else cfg
        start = time.perf_counter()
        row = evaluate_run(model, run_cfg, bundle, args.samples, split=args.split)
        row |= {
            "sampling": setting,
            "sampling_used": run_cfg.sampling.model_dump(),  # the whole section, as evaluated
            "eval_s": time.perf_counter() - start,
        }
        rows.append(row)
        p = row["pooled"]
        print(
            json.dumps(
                {"name": args.name, "sampling": setting}
                | {k: round(v, 3) for k, v in p.items() if isinstance(v, float)}
            )
        )
    result["split"] = args.split
    result["evaluations"] = rows
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
