"""Evaluate a trained model on held-out recordings: the computation behind notebook 03.

For every test recording `assess_recording` (`wavenet_lib.evaluate.assessment`) scores
teacher-forced cross-entropy (model, audio-blind model, persistence), generates several EDA
samples from the audio (and, as the audio-blind baseline, from silence), maps everything to
µS, and measures free-running error, SCR statistics, the event-locked response to loud audio
onsets and the exposure bias of the samples. `build_report` turns the
assessments into an `EvaluationReport`: structured data {source: {metric_with_unit: value}},
pooled over the recordings and per recording, with the realism metrics of
`wavenet_lib.evaluate.realism`; `report.to_json(path)` writes `<run_dir>/metrics.json` and
`report.table()` is the notebook's table. All numbers come from `wavenet_lib.evaluate`, the same
code for every row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wavenet_lib.evaluate.assessment import (
    RecordingAssessment,
    assess,
    assess_recording,
    audio_events,
    loudness_envelope,
    sample_eda_us,
)
from wavenet_lib.evaluate.event_locked import (
    EventLockedResponse,
    pool_event_locked,
    share_of_real,
)
from wavenet_lib.evaluate.realism import realism_by_recording
from wavenet_lib.evaluate.tables import metrics_table, write_metrics_json

__all__ = [
    "SOURCES",
    "RecordingAssessment",
    "EvaluationReport",
    "audio_events",
    "loudness_envelope",
    "sample_eda_us",
    "assess_recording",
    "assess",
    "build_report",
    "pooled_event_locked",
]

# The rows of every report, in order. "generated": the trained model given the audio (its
# teacher-forced cross-entropy and its samples); "audio_blind": the same model given silence;
# "persistence": the no-model baseline (cross-entropy only); "real": the recorded EDA.
SOURCES = ("real", "generated", "audio_blind", "persistence")
TRACE_SOURCES = ("real", "generated", "audio_blind")


EVENT_LOCKED_METRICS = (
    "event_locked_peak_latency_s",
    "event_locked_onset_latency_s",
    "event_locked_peak_amplitude_us",
    "event_locked_n_events",
)


@dataclass
class EvaluationReport:
    """Held-out metrics as structured data: {source: {metric_with_unit: value}}.

    pooled: over all assessed recordings; per_recording: {recording_id: {source: {...}}}. Sources
    are `SOURCES` (a source has only the metrics that apply to it). Metrics, units in the names:

    * teacher-forced (generated = the model with audio, audio_blind, persistence):
      cross_entropy_nats (nats per step; pooled: weighted by scored steps), accuracy;
      generated also cross_entropy_gap_to_audio_blind_nats = audio-blind − model cross-entropy
      (> 0: the audio helps; the per-recording answer to "does the model use the audio?");
    * free-running vs the real trace (generated, audio_blind; mean over samples, pooled: mean
      over recordings): rmse_us, pearson_r, dtw_us;
    * event-locked response to loud audio onsets (real, generated, audio_blind; pooled: over all
      events): event_locked_peak_latency_s, event_locked_onset_latency_s,
      event_locked_peak_amplitude_us, event_locked_n_events; the same response above chance
      (minus the trace's average curve around regularly spaced times, which holds its drift and
      spontaneous SCRs; `event_locked.above_chance`): event_locked_above_chance_peak_latency_s,
      event_locked_above_chance_peak_amplitude_us; for generated and audio_blind, each pooled
      peak as a fraction of the real one with a 95 % bootstrap interval over recordings
      (`event_locked.share_of_real`): event_locked_of_real_fraction and its
      event_locked_of_real_ci95_low_fraction / _high_fraction, and the same above chance
      (event_locked_above_chance_of_real_fraction, ...);
    * realism (real, generated, audio_blind; see `wavenet_lib.evaluate.realism`): n_scr,
      scr_rate_per_min, scr_amplitude_us, scr_rise_time_s, scr_half_recovery_s,
      step_decrease_p999_us, step_increase_p999_us, drift_us_per_min, and vs real
      diff_log_spectral_distance_db,
      two_sample_auc;
    * exposure bias (real, generated; `wavenet_lib.evaluate.exposure`): step_fall_fraction and
      step_rise_fraction, the share of steps whose level falls / rises; predicted_step_fall_fraction
      and predicted_step_rise_fraction, the model's mean probability of a fall / rise
      teacher-forced on these traces (on real: its calibration; on generated: what it predicts
      on its own samples; the two differ where exposure bias acts);
    * real, synthetic data only: true_scr_latency_s (mean known stimulus → SCR-onset latency).

    NaN stands for "not measurable here" (no SCR, no event) and is written to JSON as null.
    """

    pooled: dict[str, dict[str, float]]
    per_recording: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """{"pooled": {source: {metric: value}}, "per_recording": {recording_id: {source: ...}}}."""
        return {"pooled": self.pooled, "per_recording": self.per_recording}

    def to_json(self, path: str | Path) -> Path:
        """Write `to_dict()` to `path` (`metrics.json`): floats, NaN → null, atomic replace."""
        return write_metrics_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | Path) -> EvaluationReport:
        """Read a report written by `to_json` (null → NaN)."""
        import json

        data = json.loads(Path(path).read_text())

        def floats(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
            return {
                s: {k: math.nan if v is None else float(v) for k, v in m.items()} for s, m in rows.items()
            }

        return cls(floats(data["pooled"]), {r: floats(v) for r, v in data.get("per_recording", {}).items()})

    def table(self, recording_id: str | None = None, metrics: Iterable[str] | None = None) -> pd.DataFrame:
        """Sources × metrics table, pooled or of one recording; `metrics` picks and orders columns."""
        if recording_id is not None and recording_id not in self.per_recording:
            raise KeyError(f"no recording {recording_id!r} in the report; have {sorted(self.per_recording)}")
        rows = self.pooled if recording_id is None else self.per_recording[recording_id]
        table = metrics_table(rows)
        if metrics is not None:
            table = table.reindex(columns=list(metrics))
        return table.dropna(how="all")

    def by_recording(self, source: str, metrics: Iterable[str] | None = None) -> pd.DataFrame:
        """Recordings × metrics table of one source (e.g. the generated row's cross-entropy gap)."""
        rows = {rid: sources.get(source, {}) for rid, sources in self.per_recording.items()}
        table = metrics_table(rows)
        table.index.name = "recording"
        return table if metrics is None else table.reindex(columns=list(metrics))


def _step_weighted(rows: Sequence[Mapping[str, float]], keys: Mapping[str, str]) -> dict[str, float]:
    """{name: mean of row[key] over rows, weighted by row["n_steps"]} for each name, key in `keys`."""
    n = np.array([r["n_steps"] for r in rows], dtype=float)
    total = n.sum()
    return {
        name: float(np.sum(n * [r[key] for r in rows]) / total) if total > 0 else math.nan
        for name, key in keys.items()
    }


def _teacher_forced(scores: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Step-weighted cross-entropy and accuracy over recordings."""
    return _step_weighted(scores, {"cross_entropy_nats": "cross_entropy_nats", "accuracy": "accuracy"})


def _event_locked(response: EventLockedResponse) -> dict[str, float]:
    return {
        "event_locked_peak_latency_s": response.peak_latency_s,
        "event_locked_onset_latency_s": response.onset_latency_s,
        "event_locked_peak_amplitude_us": response.peak_amplitude_us,
        "event_locked_n_events": float(response.n_events),
    }


def _pooled_event_locked(responses: Sequence[EventLockedResponse]) -> dict[str, float]:
    if not any(r.n_events for r in responses):
        return {name: (0.0 if name.endswith("n_events") else math.nan) for name in EVENT_LOCKED_METRICS}
    return _event_locked(pool_event_locked(responses))


def _pooled_above_chance(responses: Sequence[EventLockedResponse]) -> dict[str, float]:
    """Peak latency and amplitude of above-chance responses, pooled like the raw ones."""
    pooled = _pooled_event_locked(responses)
    return {
        f"event_locked_above_chance_{name}": pooled[f"event_locked_{name}"]
        for name in ("peak_latency_s", "peak_amplitude_us")
    }


def _shares_of_real(assessments: Sequence[RecordingAssessment], source: str) -> dict[str, float]:
    """The source's pooled event-locked peak as a fraction of the real one, raw and above chance,
    with 95 % bootstrap intervals over recordings (`event_locked.share_of_real`)."""
    out = {}
    kinds = [("event_locked", [a.event_locked for a in assessments])]
    if all(a.event_locked_above_chance for a in assessments):
        kinds.append(("event_locked_above_chance", [a.event_locked_above_chance for a in assessments]))
    for prefix, responses in kinds:
        share, low, high = share_of_real([r[source] for r in responses], [r["real"] for r in responses])
        out[f"{prefix}_of_real_fraction"] = share
        out[f"{prefix}_of_real_ci95_low_fraction"] = low
        out[f"{prefix}_of_real_ci95_high_fraction"] = high
    return out


def _pooled_directions(directions: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Shares of falling / rising steps, observed and predicted, weighted by measured steps."""
    return _step_weighted(
        directions,
        {
            "step_fall_fraction": "observed_fall",
            "step_rise_fraction": "observed_rise",
            "predicted_step_fall_fraction": "predicted_fall",
            "predicted_step_rise_fraction": "predicted_rise",
        },
    )


def _rows(assessments: Sequence[RecordingAssessment]) -> dict[str, dict[str, float]]:
    """{source: {metric: value}} of one or several recordings, before realism.

    Cross-entropy weighted by scored steps, free-running metrics averaged over recordings,
    event-locked responses pooled over events.
    """
    tf = {
        k: _teacher_forced([a.teacher_forced[k] for a in assessments])
        for k in ("model", "audio_blind", "persistence")
    }
    free = {
        s: {
            k: float(np.mean([a.free_running[s][k] for a in assessments]))
            for k in ("rmse_us", "pearson_r", "dtw_us")
        }
        for s in ("generated", "audio_blind")
    }
    locked = {s: _pooled_event_locked([a.event_locked[s] for a in assessments]) for s in TRACE_SOURCES}
    if all(a.event_locked_above_chance for a in assessments):
        for s in TRACE_SOURCES:
            locked[s] |= _pooled_above_chance([a.event_locked_above_chance[s] for a in assessments])
    for s in ("generated", "audio_blind"):
        locked[s] |= _shares_of_real(assessments, s)
    gap = tf["audio_blind"]["cross_entropy_nats"] - tf["model"]["cross_entropy_nats"]
    rows = {
        "real": locked["real"],
        "generated": tf["model"]
        | {"cross_entropy_gap_to_audio_blind_nats": gap}
        | free["generated"]
        | locked["generated"],
        "audio_blind": tf["audio_blind"] | free["audio_blind"] | locked["audio_blind"],
        "persistence": tf["persistence"],
    }
    if all(a.directions for a in assessments):
        for s in ("real", "generated"):
            rows[s] |= _pooled_directions([a.directions[s] for a in assessments])
    latencies = np.concatenate([a.true_latencies_s for a in assessments])
    if latencies.size:
        rows["real"]["true_scr_latency_s"] = float(latencies.mean())
    return rows


def build_report(
    assessments: Sequence[RecordingAssessment], two_sample: bool = True, seed: int = 0
) -> EvaluationReport:
    """The held-out report of assessed recordings, pooled and per recording (see `EvaluationReport`).

    Args:
        assessments: `assess` output (one per recording; the same EDA rate).
        two_sample: run the classifier two-sample test (`realism.classifier_two_sample_test`).
        seed: its random state.

    Every trace metric leaves out each recording's primed steps (copied from the real trace).
    """
    if not assessments:
        raise ValueError("no assessed recordings to report on")
    rates = {a.eda_sample_rate for a in assessments}
    if len(rates) != 1:
        raise ValueError(
            f"assessed recordings have different EDA rates {sorted(rates)}; report them separately"
        )
    pooled = _rows(assessments)
    per = {a.recording_id: _rows([a]) for a in assessments}
    traces = {a.recording_id: a.scored_traces() for a in assessments}
    real = {rid: t["real"] for rid, t in traces.items()}
    others = {s: {rid: t[s] for rid, t in traces.items()} for s in ("generated", "audio_blind")}
    realism_pooled, realism_per = realism_by_recording(real, others, rates.pop(), two_sample, seed)
    for source, metrics in realism_pooled.items():
        pooled[source] |= metrics
    for rid, sources in realism_per.items():
        for source, metrics in sources.items():
            per[rid][source] |= metrics
    return EvaluationReport(pooled, per)


def pooled_event_locked(
    assessments: list[RecordingAssessment], above_chance: bool = False
) -> dict[str, EventLockedResponse]:
    """Event-locked responses of every source, pooled over recordings (for plots); with
    `above_chance`, each recording's chance curve subtracted first."""
    per_recording = [a.event_locked_above_chance if above_chance else a.event_locked for a in assessments]
    return {s: pool_event_locked([r[s] for r in per_recording]) for s in TRACE_SOURCES}
