"""Evaluate a trained model on held-out recordings: the computation behind notebook 03.

For every test recording this scores teacher-forced cross-entropy (model, audio-blind model,
persistence), generates several EDA samples from the audio (and, as the audio-blind baseline,
from silence), maps everything to µS, and measures free-running error, SCR statistics and the
event-locked response to loud audio onsets. `summarize` pools the recordings into the flat
metrics written to `<run_dir>/metrics.json`. All numbers come from `wavenet_lib.evaluate`,
the same code for every row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from wavenet_lib.configs import ExperimentConfig
from wavenet_lib.data.bundle import DataBundle
from wavenet_lib.data.recordings import LoadedRecording
from wavenet_lib.evaluate.event_locked import EventLockedResponse, event_locked_response, pool_event_locked
from wavenet_lib.evaluate.scoring import evaluate_recording, fit_persistence_scale, silent_mfcc_like
from wavenet_lib.evaluate.scrs import scr_statistics
from wavenet_lib.evaluate.traces import free_running_metrics
from wavenet_lib.models.wavenet import Wavenet

__all__ = [
    "RecordingAssessment",
    "audio_events",
    "loudness_envelope",
    "assess_recording",
    "assess",
    "summarize",
]

SOURCES = ("real", "generated", "audio_blind")


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
    scr: pd.DataFrame  # one row per trace: source, sample, scr_statistics columns
    event_locked: dict[str, EventLockedResponse] = field(default_factory=dict)


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
) -> RecordingAssessment:
    """Score, generate and measure one held-out recording (EDA signal 0).

    Samples are drawn with the experiment's `sampling` settings (temperature, top_p).
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
    prime = eda[None, :, :prime_steps].expand(samples, -1, -1)
    g = torch.Generator().manual_seed(seed)
    audio = mfcc[None].expand(samples, -1, -1, -1)
    knobs = {"temperature": experiment.sampling.temperature, "top_p": experiment.sampling.top_p}
    generated = model.generate(audio, prime=prime, generator=g, progress=progress, **knobs)
    blind = model.generate(silent_mfcc_like(audio), prime=prime, generator=g, progress=progress, **knobs)
    real_us = rec.eda_us[0]
    gen_us, blind_us = _to_us(rec, generated[:, 0]), _to_us(rec, blind[:, 0])

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
    scr_rows = [{"source": "real", "sample": 0, **scr_statistics(real_us, rate)}]
    for name, traces in (("generated", gen_us), ("audio_blind", blind_us)):
        scr_rows += [{"source": name, "sample": i, **scr_statistics(s, rate)} for i, s in enumerate(traces)]
    locked_events = events[events >= prime_steps / rate]
    locked = {
        name: event_locked_response(traces, rate, locked_events)
        for name, traces in (("real", real_us), ("generated", gen_us), ("audio_blind", blind_us))
    }
    return RecordingAssessment(
        recording_id, rate, real_us, gen_us, blind_us, events, latencies, loud, loud_rate,
        teacher, free, pd.DataFrame(scr_rows), locked,
    )  # fmt: skip


def assess(
    model: Wavenet,
    experiment: ExperimentConfig,
    bundle: DataBundle,
    split: str = "test",
    samples: int = 8,
    seed: int = 0,
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
        assess_recording(model, experiment, bundle, rid, samples, seed + i, scale)
        for i, rid in enumerate(tqdm(bundle.splits[split], desc=f"evaluating {split} recordings", unit="rec"))
    ]


def summarize(assessments: list[RecordingAssessment]) -> dict[str, float]:
    """Flat metrics over all assessed recordings (step-weighted CE; pooled events)."""
    out: dict[str, float] = {}
    rows = {"model": "test", "audio_blind": "audio_blind", "persistence": "persistence"}
    for key, prefix in rows.items():
        scores = [a.teacher_forced[key] for a in assessments]
        n = np.array([s["n_steps"] for s in scores], dtype=float)
        for metric, name in (("cross_entropy_nats", "cross_entropy"), ("accuracy", "accuracy")):
            out[f"{prefix}_{name}"] = float(np.sum(n * [s[metric] for s in scores]) / n.sum())
    for source in ("generated", "audio_blind"):
        for metric in ("rmse_us", "pearson_r", "dtw_us"):
            out[f"{source}_{metric}"] = float(np.mean([a.free_running[source][metric] for a in assessments]))
    for source in SOURCES:
        pooled = pool_event_locked([a.event_locked[source] for a in assessments])
        out[f"event_locked_latency_{source}_s"] = pooled.peak_latency_s
        out[f"event_locked_onset_latency_{source}_s"] = pooled.onset_latency_s
        out[f"event_locked_amplitude_{source}"] = pooled.peak_amplitude_us
        out["event_locked_n_events"] = float(pooled.n_events)
    scr = pd.concat([a.scr for a in assessments])
    for source, group in scr.groupby("source"):
        for metric in ("scr_rate_per_min", "mean_amplitude_us", "mean_rise_time_s", "mean_recovery_time_s"):
            out[f"{source}_{metric}"] = float(group[metric].mean())
    latencies = np.concatenate([a.true_latencies_s for a in assessments])
    if latencies.size:
        out["true_scr_latency_mean_s"] = float(latencies.mean())
    return out


def pooled_event_locked(assessments: list[RecordingAssessment]) -> dict[str, EventLockedResponse]:
    """Event-locked responses of every source, pooled over recordings (for plots)."""
    return {s: pool_event_locked([a.event_locked[s] for a in assessments]) for s in SOURCES}
