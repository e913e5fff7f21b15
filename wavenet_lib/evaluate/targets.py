"""The release targets of the quickstart, checked on a pooled report (notebook 03's last table).

    table = check_targets(report.pooled)      # or json.load(open("runs/NAME/metrics.json"))["pooled"]

One row per target: what it compares, the measured value, the bound and whether it passed. The
targets are what generated EDA must reach on held-out listeners to count as following the
audio and as looking like skin conductance:

- the event-locked response peaks within `LATENCY_TOLERANCE_S` of the real latency, with at least
  `MIN_RESPONSE_OF_REAL` of the real peak amplitude, while the audio-blind model's response (raw
  and above chance) stays under half the generated one;
- the teacher-forced cross-entropy is below both persistence and the audio-blind model;
- every SCR statistic (rate, amplitude, rise time, half-recovery) is within `SCR_TOLERANCE` of
  real, the 99.9th-percentile one-step decrease is at most `MAX_DECREASE_OF_REAL` times real, and
  the two-sample classifier's ROC AUC is at most `MAX_TWO_SAMPLE_AUC`.

`check_stimulus_targets` does the same for the stimulus tools (notebook 04's section of
`metrics.json`, "stimuli"): at least `MIN_ONSET_MASS` of the attribution's positive mass within
0.5 s of a true onset, those windows covering under `MAX_WINDOW_COVERAGE` of the time, and the
screening ranking's Spearman ρ with the true events at least `MIN_SCREENING_RHO`.

A metric missing from the report (a dataset without events has no event-locked response) gives
a row with value NaN that did not pass, so a table never passes by leaving a target out.

`targets_section(table)` is a table as a `metrics.json` section (notebooks 03 and 04 write
"targets" and "stimulus_targets"), so a batch of runs can be filtered on `all_passed` without
reading the notebooks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = [
    "LATENCY_TOLERANCE_S",
    "MIN_RESPONSE_OF_REAL",
    "SCR_TOLERANCE",
    "SCR_STATISTICS",
    "MAX_DECREASE_OF_REAL",
    "MAX_TWO_SAMPLE_AUC",
    "MIN_ONSET_MASS",
    "MAX_WINDOW_COVERAGE",
    "MIN_SCREENING_RHO",
    "check_targets",
    "check_stimulus_targets",
    "targets_section",
]

LATENCY_TOLERANCE_S = 0.5
MIN_RESPONSE_OF_REAL = 0.6
SCR_TOLERANCE = 0.25
SCR_STATISTICS = ("scr_rate_per_min", "scr_amplitude_us", "scr_rise_time_s", "scr_half_recovery_s")
MAX_DECREASE_OF_REAL = 1.5
MAX_TWO_SAMPLE_AUC = 0.75
MIN_ONSET_MASS = 0.6
MAX_WINDOW_COVERAGE = 0.2
MIN_SCREENING_RHO = 0.6


def _get(pooled: Mapping[str, Mapping[str, float | None]], source: str, metric: str) -> float:
    value = pooled.get(source, {}).get(metric)
    return float("nan") if value is None else float(value)


def _ratio(num: float, den: float) -> float:
    return num / den if den != 0 and math.isfinite(den) else float("nan")


def _table(rows: list[tuple[str, float, str, bool]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["target", "value", "bound", "passed"]).set_index("target")


def check_targets(pooled: Mapping[str, Mapping[str, float | None]]) -> pd.DataFrame:
    """The targets (module docstring) checked on `{source: {metric: value}}` pooled numbers.

    Args:
        pooled: `EvaluationReport.pooled`, or the "pooled" section of a `metrics.json`
            (sources real, generated, audio_blind, persistence; JSON nulls allowed).

    Returns:
        DataFrame indexed by target, columns `value`, `bound` (a readable condition) and
        `passed` (bool; False when the value is NaN).
    """

    def gen(metric: str) -> float:
        return _get(pooled, "generated", metric)

    def real(metric: str) -> float:
        return _get(pooled, "real", metric)

    def blind(metric: str) -> float:
        return _get(pooled, "audio_blind", metric)

    rows: list[tuple[str, float, str, bool]] = []

    def add(name: str, value: float, bound: str, passed: bool) -> None:
        rows.append((name, value, bound, bool(passed) and math.isfinite(value)))

    lag = abs(gen("event_locked_peak_latency_s") - real("event_locked_peak_latency_s"))
    add("event-locked peak latency, |generated − real| (s)", lag, f"<= {LATENCY_TOLERANCE_S:g}",
        lag <= LATENCY_TOLERANCE_S)  # fmt: skip
    share = _ratio(gen("event_locked_peak_amplitude_us"), real("event_locked_peak_amplitude_us"))
    add("event-locked peak amplitude, generated / real", share, f">= {MIN_RESPONSE_OF_REAL:g}",
        share >= MIN_RESPONSE_OF_REAL)  # fmt: skip
    for suffix, label in (("", ""), ("above_chance_", " above chance")):
        metric = f"event_locked_{suffix}peak_amplitude_us"
        ratio = _ratio(blind(metric), gen(metric))
        add(f"event-locked amplitude{label}, audio-blind / generated", ratio, "< 0.5", ratio < 0.5)
    ce = gen("cross_entropy_nats")
    for other in ("persistence", "audio_blind"):
        ref = _get(pooled, other, "cross_entropy_nats")
        add(f"cross-entropy, generated − {other.replace('_', '-')} (nats)", ce - ref, "< 0", ce < ref)
    for metric in SCR_STATISTICS:
        off = _ratio(gen(metric), real(metric)) - 1.0
        add(f"{metric}, generated / real − 1", off, f"within ±{SCR_TOLERANCE:g}", abs(off) <= SCR_TOLERANCE)
    fall = _ratio(gen("step_decrease_p999_us"), real("step_decrease_p999_us"))
    add("99.9th-percentile one-step decrease, generated / real", fall, f"<= {MAX_DECREASE_OF_REAL:g}",
        fall <= MAX_DECREASE_OF_REAL)  # fmt: skip
    auc = gen("two_sample_auc")
    add("two-sample classifier ROC AUC", auc, f"<= {MAX_TWO_SAMPLE_AUC:g}", auc <= MAX_TWO_SAMPLE_AUC)
    return _table(rows)


def check_stimulus_targets(section: Mapping[str, object]) -> pd.DataFrame:
    """The stimulus tools' targets (module docstring) on notebook 04's "stimuli" section.

    Returns:
        DataFrame indexed by target, columns `value`, `bound`, `passed` (False when missing).
    """

    def value(key: str) -> float:
        v = section.get(key)
        return float(v) if isinstance(v, (int, float)) else float("nan")

    mass = value("attribution_onset_mass_fraction")
    coverage = value("attribution_onset_window_coverage")
    rho = value("screening_spearman_rho")
    rows = [
        ("attribution mass within 0.5 s of a true onset", mass, f">= {MIN_ONSET_MASS:g}",
         mass >= MIN_ONSET_MASS),
        ("share of the time those windows cover", coverage, f"< {MAX_WINDOW_COVERAGE:g}",
         coverage < MAX_WINDOW_COVERAGE),
        ("screening Spearman rho with the true events", rho, f">= {MIN_SCREENING_RHO:g}",
         rho >= MIN_SCREENING_RHO),
    ]  # fmt: skip
    return _table([(name, v, bound, bool(ok) and math.isfinite(v)) for name, v, bound, ok in rows])


def targets_section(table: pd.DataFrame) -> dict[str, Any]:
    """A `check_targets` / `check_stimulus_targets` table as a metrics.json section.

    Returns:
        {"all_passed": bool, "n_passed": int, "n_targets": int,
         "targets": {target: {"value": float (NaN when missing), "bound": str, "passed": bool}}}.
    """
    rows = {
        str(name): {"value": float(row["value"]), "bound": str(row["bound"]), "passed": bool(row["passed"])}
        for name, row in table.iterrows()
    }
    passed = int(table["passed"].astype(bool).sum())
    return {"all_passed": passed == len(rows), "n_passed": passed, "n_targets": len(rows), "targets": rows}
