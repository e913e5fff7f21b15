"""Evaluate a trained model on held-out recordings: the computation behind notebook 03.

For every test recording `assess_recording` scores teacher-forced cross-entropy (model,
audio-blind model, persistence), generates several EDA samples from the audio (and, as the
audio-blind baseline, from silence), maps everything to µS, and measures free-running error,
SCR statistics and the event-locked response to loud audio onsets. `build_report` turns the
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
import torch
from tqdm.auto import tqdm

from wavenet_lib.configs import ExperimentConfig
from wavenet_lib.data.bundle import DataBundle
from wavenet_lib.data.recordings import LoadedRecording
from wavenet_lib.evaluate.event_locked import (
    EventLockedResponse,
    above_chance,
    chance_response,
    event_locked_response,
    pool_event_locked,
)
from wavenet_lib.evaluate.realism import realism_by_recording
from wavenet_lib.evaluate.scoring import evaluate_recording, fit_persistence_scale, silent_mfcc_like
from wavenet_lib.evaluate.scrs import scr_statistics
from wavenet_lib.evaluate.tables import metrics_table, write_metrics_json
from wavenet_lib.evaluate.traces import free_running_metrics
from wavenet_lib.models.wavenet import Wavenet

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


@dataclass
class RecordingAssessment:
    """Everything measured on one held-out recording (EDA in µS at the model's EDA rate)."""

    recording_id: str
    eda_sample_rate: float
    real_us: np.ndarray  # (T,)
    generated_us: np.ndarray  # (S, T)
    audio_blind_us: np.ndarray  # (S, T)
    events_s: np.ndarray  # (E,) onset times in EDA time
    true_latencies_s: np.ndarray  # (E',) known SCR latencies (synthetic data), else empty
    loudness_db: np.ndarray  # (F,) frame RMS in dB
    loudness_rate: float  # frames per second
    teacher_forced: dict[str, dict[str, float]]  # model / audio_blind / persistence
    free_running: dict[str, dict[str, float]]  # generated / audio_blind vs real, mean over samples
    scr: pd.DataFrame  # one row per trace: source, sample, scr_statistics columns (after the prime)
    event_locked: dict[str, EventLockedResponse] = field(default_factory=dict)
    prime_steps: int = 0  # leading steps copied from the real trace, left out of every metric
    event_locked_above_chance: dict[str, EventLockedResponse] = field(default_factory=dict)

    def scored_traces(self) -> dict[str, np.ndarray]:
        """{"real": (T',), "generated": (S, T'), "audio_blind": (S, T')} without the primed steps."""
        p = self.prime_steps
        return {
            "real": self.real_us[p:],
            "generated": self.generated_us[:, p:],
            "audio_blind": self.audio_blind_us[:, p:],
        }


def audio_events(
    audio_path: Path,
    audio_start_s: float,
    duration_s: float,
    min_gap_s: float = 6.0,
    max_events: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Loud-onset times (s, EDA time) for a recording, and known SCR latencies if any.

    A synthetic recording ships `<stem>_events.csv` with the true onsets and latencies. For real
    audio, onsets come from librosa's onset detector on the audio, keeping the strongest onsets
    at least `min_gap_s` apart (so each event's response window is its own).
    """
    events_csv = audio_path.with_name(f"{audio_path.stem}_events.csv")
    if events_csv.is_file():
        table = pd.read_csv(events_csv)
        onsets = table["onset_s"].to_numpy(float) - audio_start_s
        latencies = table.loc[table["evoked"].astype(bool), "latency_s"].to_numpy(float)
        keep = (onsets >= 0) & (onsets < duration_s)
        return onsets[keep], latencies
    import librosa

    y, sr = librosa.load(audio_path, sr=None, mono=True, offset=max(audio_start_s, 0.0), duration=duration_s)
    strength = librosa.onset.onset_strength(y=y, sr=sr)
    frames = librosa.onset.onset_detect(onset_envelope=strength, sr=sr)
    times = librosa.frames_to_time(frames, sr=sr)
    chosen: list[float] = []
    for i in np.argsort(strength[frames])[::-1]:  # strongest first
        if all(abs(times[i] - c) >= min_gap_s for c in chosen):
            chosen.append(float(times[i]))
        if max_events and len(chosen) >= max_events:
            break
    return np.sort(np.asarray(chosen)), np.empty(0)


def loudness_envelope(audio_path: Path, sample_rate: int, hop: int, audio_start_s: float, duration_s: float):
    """Frame RMS in dB (relative to the loudest frame) and its frame rate, for plots."""
    import librosa

    y, _ = librosa.load(
        audio_path, sr=sample_rate, mono=True, offset=max(audio_start_s, 0.0), duration=duration_s
    )
    rms = librosa.feature.rms(y=y, frame_length=2 * hop, hop_length=hop, center=False)[0]
    return librosa.amplitude_to_db(rms, ref=np.max(rms) if rms.size else 1.0), sample_rate / hop


def _to_us(rec: LoadedRecording, units: torch.Tensor) -> np.ndarray:
    return np.asarray(rec.normalizer.denormalize(units.detach().cpu().numpy()), dtype=np.float64)


def sample_eda_us(
    model: Wavenet,
    rec: LoadedRecording,
    samples: int,
    prime_steps: int,
    generator: torch.Generator,
    audio: bool = True,
    progress: bool = False,
    **generate_kwargs: Any,
) -> np.ndarray:
    """`samples` EDA traces (S, T) in µS for one loaded recording (EDA signal 0).

    Each is primed with the first `prime_steps` steps of the real trace (its level and trend),
    then sampled by `model.generate` from the recording's audio (`audio=False`: from a silent
    MFCC, the audio-blind baseline). `generate_kwargs` (temperature, greedy, ... whatever
    `Wavenet.generate` accepts) are passed through; left out, the model's defaults apply.
    """
    mfcc = torch.as_tensor(np.asarray(rec.mfcc), dtype=torch.float32)[None].expand(samples, -1, -1, -1)
    eda = torch.as_tensor(rec.eda, dtype=torch.float32)
    prime = eda[None, :, :prime_steps].expand(samples, -1, -1)
    features = mfcc if audio else silent_mfcc_like(mfcc, model.config.num_mfccs)
    out = model.generate(features, prime=prime, generator=generator, progress=progress, **generate_kwargs)
    if isinstance(out, tuple):  # return_logits=True among generate_kwargs
        out = out[0]
    return _to_us(rec, out[:, 0])


def assess_recording(
    model: Wavenet,
    experiment: ExperimentConfig,
    bundle: DataBundle,
    recording_id: str,
    samples: int = 8,
    seed: int = 0,
    persistence_scale_bins: float | None = None,
    prime_steps: int | None = None,
    progress: bool = False,
    generate_kwargs: Mapping[str, Any] | None = None,
) -> RecordingAssessment:
    """Score, generate and measure one held-out recording (EDA signal 0).

    `samples` traces are generated from the audio and as many from silence (`sample_eda_us`),
    primed with `prime_steps` real steps (default `first_full_step`), drawn with the experiment's
    `sampling` settings (temperature, top_p, min_prob: the defaults the pipeline and the CLI use);
    `generate_kwargs` go to `Wavenet.generate` on top of them.
    """
    cfg = model.config
    rate = cfg.eda_sample_rate
    rec = bundle.load(recording_id, experiment)
    prepared = bundle.recordings[recording_id]
    mfcc = torch.as_tensor(np.asarray(rec.mfcc), dtype=torch.float32)
    eda = torch.as_tensor(rec.eda, dtype=torch.float32)
    teacher = evaluate_recording(model, mfcc, eda, persistence_scale_bins=persistence_scale_bins)

    # Free-running samples, primed with the first steps of the real trace (its level and trend).
    prime_steps = cfg.first_full_step if prime_steps is None else prime_steps
    g = torch.Generator().manual_seed(seed)
    knobs = experiment.sampling.model_dump()  # temperature, top_p, min_prob
    kwargs = knobs | dict(generate_kwargs or {})
    gen_us = sample_eda_us(model, rec, samples, prime_steps, g, True, progress, **kwargs)
    blind_us = sample_eda_us(model, rec, samples, prime_steps, g, False, progress, **kwargs)
    real_us = np.asarray(rec.eda_us[0], dtype=np.float64)

    duration = rec.n_steps / rate
    audio_path = Path(prepared.row.audio_path)
    events, latencies = audio_events(audio_path, prepared.audio_start_s, duration)
    loud, loud_rate = loudness_envelope(
        audio_path, cfg.audio_sample_rate, cfg.mfcc_hop_size, prepared.audio_start_s, duration
    )

    scored = slice(prime_steps, None)  # compare only what was generated, not the prime
    free = {
        name: pd.DataFrame([free_running_metrics(real_us[scored], s[scored]) for s in traces])
        .mean()
        .to_dict()
        for name, traces in (("generated", gen_us), ("audio_blind", blind_us))
    }
    # Per-trace SCR statistics for the distribution plots, on the same steps as the report.
    scr_rows = [{"source": "real", "sample": 0, **scr_statistics(real_us[scored], rate)}]
    for name, traces in (("generated", gen_us), ("audio_blind", blind_us)):
        scr_rows += [
            {"source": name, "sample": i, **scr_statistics(s[scored], rate)} for i, s in enumerate(traces)
        ]
    locked_events = events[events >= prime_steps / rate]
    sources = (("real", real_us), ("generated", gen_us), ("audio_blind", blind_us))
    locked = {name: event_locked_response(traces, rate, locked_events) for name, traces in sources}
    chance = {name: chance_response(traces, rate, start_s=prime_steps / rate) for name, traces in sources}
    above = {name: above_chance(locked[name], chance[name]) for name, _ in sources}
    return RecordingAssessment(
        recording_id, rate, real_us, gen_us, blind_us, events, latencies, loud, loud_rate,
        teacher, free, pd.DataFrame(scr_rows), locked, prime_steps, above,
    )  # fmt: skip


def assess(
    model: Wavenet,
    experiment: ExperimentConfig,
    bundle: DataBundle,
    split: str = "test",
    samples: int = 8,
    seed: int = 0,
    generate_kwargs: Mapping[str, Any] | None = None,
) -> list[RecordingAssessment]:
    """`assess_recording` for every recording of a split, with the persistence jump scale fitted on train."""
    levels = model.config.quantization_levels
    # EDA only: normalize the in-memory µS traces instead of loading each recording's MFCCs.
    train_traces = [
        np.asarray(bundle.normalizers[r].normalize(bundle.recordings[r].eda_us), dtype=np.float32)
        for r in bundle.splits["train"]
    ]
    scale = fit_persistence_scale(train_traces, levels)
    model.eval()
    return [
        assess_recording(
            model, experiment, bundle, rid, samples, seed + i, scale, generate_kwargs=generate_kwargs
        )
        for i, rid in enumerate(tqdm(bundle.splits[split], desc=f"evaluating {split} recordings", unit="rec"))
    ]


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
      event_locked_above_chance_peak_amplitude_us;
    * realism (real, generated, audio_blind; see `wavenet_lib.evaluate.realism`): n_scr,
      scr_rate_per_min, scr_amplitude_us, scr_rise_time_s, scr_half_recovery_s,
      step_decrease_p999_us, step_increase_p999_us, drift_us_per_min, and vs real
      diff_log_spectral_distance_db,
      two_sample_auc;
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


def _teacher_forced(scores: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Step-weighted cross-entropy and accuracy over recordings."""
    n = np.array([s["n_steps"] for s in scores], dtype=float)
    total = n.sum()

    def weighted(key: str) -> float:
        return float(np.sum(n * [s[key] for s in scores]) / total) if total > 0 else math.nan

    return {"cross_entropy_nats": weighted("cross_entropy_nats"), "accuracy": weighted("accuracy")}


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
    if above_chance:
        return {
            s: pool_event_locked([a.event_locked_above_chance[s] for a in assessments]) for s in TRACE_SOURCES
        }
    return {s: pool_event_locked([a.event_locked[s] for a in assessments]) for s in TRACE_SOURCES}
