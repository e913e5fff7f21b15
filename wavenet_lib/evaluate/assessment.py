"""Assess one held-out recording: score it, sample it, measure it (the data behind notebook 03).

`assess_recording` scores teacher-forced cross-entropy (model, audio-blind model, persistence),
generates several EDA samples from the audio (and, as the audio-blind baseline, from silence),
maps everything to µS, and measures free-running error, SCR statistics, the event-locked
response to loud audio onsets (raw and above chance) and the exposure bias of the samples.
`assess` does it for every recording of a split. `wavenet_lib.evaluate.report.build_report`
pools the assessments into the held-out report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
)
from wavenet_lib.evaluate.exposure import step_directions
from wavenet_lib.evaluate.scoring import evaluate_recording, fit_persistence_scale, silent_mfcc_like
from wavenet_lib.evaluate.scrs import scr_statistics
from wavenet_lib.evaluate.traces import free_running_metrics
from wavenet_lib.generation import MAX_SAMPLES_PER_BATCH, batch_groups, draw_batch
from wavenet_lib.models.wavenet import Wavenet

__all__ = [
    "RecordingAssessment",
    "audio_events",
    "loudness_envelope",
    "sample_eda_units",
    "sample_many_eda_units",
    "sample_eda_us",
    "units_to_us",
    "assess_recording",
    "assess",
]


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
    # real / generated: the model teacher-forced on those traces (`exposure.step_directions`)
    directions: dict[str, dict[str, float]] = field(default_factory=dict)

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


def units_to_us(rec: LoadedRecording, units: torch.Tensor) -> np.ndarray:
    """Traces in model units (any shape) → µS with the recording's normalization, float64."""
    return np.asarray(rec.normalizer.denormalize(units.detach().cpu().numpy()), dtype=np.float64)


def sample_eda_units(
    model: Wavenet,
    rec: LoadedRecording,
    samples: int,
    prime_steps: int,
    generator: torch.Generator,
    audio: bool = True,
    progress: bool = False,
    **generate_kwargs: Any,
) -> torch.Tensor:
    """`samples` EDA traces (S, C_out, T) in normalized model units for one loaded recording.

    Each is primed with the first `prime_steps` steps of the real trace (its level and trend),
    then sampled by `model.generate` from the recording's audio (`audio=False`: from a silent
    MFCC, the audio-blind baseline). `generate_kwargs` (temperature, greedy, ... whatever
    `Wavenet.generate` accepts) are passed through; left out, the model's defaults apply.
    """
    return sample_many_eda_units(
        model, [rec], samples, prime_steps, [generator], audio, progress, **generate_kwargs
    )[0]


def sample_many_eda_units(
    model: Wavenet,
    recs: Sequence[LoadedRecording],
    samples: int,
    prime_steps: int,
    generators: Sequence[torch.Generator],
    audio: bool = True,
    progress: bool = False,
    max_rows: int = MAX_SAMPLES_PER_BATCH,
    **generate_kwargs: Any,
) -> list[torch.Tensor]:
    """`sample_eda_units` for several recordings, recording i drawing from `generators[i]`.

    Recordings of equal length are sampled in shared batches (`batch_groups`), each drawing from
    its own generator (`Wavenet.generate` with one generator per group of rows), so each gets
    the traces a call of its own would give (up to the last bits of batched arithmetic), in
    less time: on a 2-core CPU, 12 quickstart recordings took 3.5 s with 8 samples each against
    7.3 s one recording at a time, and 0.8 s against 3.0 s with one sample each.
    """
    if len(generators) != len(recs):
        raise ValueError(f"one generator per recording: {len(recs)} recordings, {len(generators)} generators")
    out: list[torch.Tensor] = [torch.empty(0)] * len(recs)
    for group in batch_groups([r.n_steps for r in recs], samples, max_rows):
        inputs = []
        for i in group:
            mfcc = torch.as_tensor(np.asarray(recs[i].mfcc), dtype=torch.float32)
            features = mfcc if audio else silent_mfcc_like(mfcc, model.config.num_mfccs)
            prime = torch.as_tensor(recs[i].eda, dtype=torch.float32)[None, :, :prime_steps]
            inputs.append((features, prime))
        gens = [generators[i] for i in group]
        drawn = draw_batch(model, inputs, samples, gens, progress, **generate_kwargs)
        units = drawn[0] if isinstance(drawn, tuple) else drawn  # return_logits=True among generate_kwargs
        for k, i in enumerate(group):
            out[i] = units[k * samples : (k + 1) * samples]
    return out


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
    """`sample_eda_units` of EDA signal 0, in µS: (S, T)."""
    units = sample_eda_units(model, rec, samples, prime_steps, generator, audio, progress, **generate_kwargs)
    return units_to_us(rec, units[:, 0])


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
    rec = bundle.load(recording_id, experiment)
    prime_steps = model.config.first_full_step if prime_steps is None else prime_steps
    [(gen_units, blind_units)] = _free_running(
        model, experiment, [rec], samples, [seed], prime_steps, generate_kwargs, progress
    )
    return _measure(
        model, bundle, recording_id, rec, gen_units, blind_units, prime_steps, persistence_scale_bins
    )


def _free_running(
    model: Wavenet,
    experiment: ExperimentConfig,
    recs: Sequence[LoadedRecording],
    samples: int,
    seeds: Sequence[int],
    prime_steps: int,
    generate_kwargs: Mapping[str, Any] | None,
    progress: bool = False,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per recording, (from the audio, from silence) samples in units, primed with the real trace.

    Recording i draws both from one generator seeded `seeds[i]`, the audio's samples first, with
    the experiment's `sampling` settings (temperature, top_p, min_prob, audio_guidance: the
    defaults the pipeline and the CLI use) and `generate_kwargs` on top.
    """
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    kwargs = experiment.sampling.model_dump() | dict(generate_kwargs or {})
    gen = sample_many_eda_units(model, recs, samples, prime_steps, generators, True, progress, **kwargs)
    blind = sample_many_eda_units(model, recs, samples, prime_steps, generators, False, progress, **kwargs)
    return list(zip(gen, blind, strict=True))


def _measure(
    model: Wavenet,
    bundle: DataBundle,
    recording_id: str,
    rec: LoadedRecording,
    gen_units: torch.Tensor,
    blind_units: torch.Tensor,
    prime_steps: int,
    persistence_scale_bins: float | None,
) -> RecordingAssessment:
    """Everything `assess_recording` measures, given the recording's samples."""
    cfg = model.config
    rate = cfg.eda_sample_rate
    prepared = bundle.recordings[recording_id]
    mfcc = torch.as_tensor(np.asarray(rec.mfcc), dtype=torch.float32)
    eda = torch.as_tensor(rec.eda, dtype=torch.float32)
    teacher = evaluate_recording(model, mfcc, eda, persistence_scale_bins=persistence_scale_bins)
    gen_us = units_to_us(rec, gen_units[:, 0])
    blind_us = units_to_us(rec, blind_units[:, 0])
    real_us = np.asarray(rec.eda_us[0], dtype=np.float64)
    directions = {}
    if cfg.out_channels == 1:  # the report measures one EDA signal
        for name, histories in (("real", eda), ("generated", gen_units)):
            directions[name] = step_directions(model, mfcc, histories, skip_steps=prime_steps)

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
        teacher, free, pd.DataFrame(scr_rows), locked, prime_steps, above, directions,
    )  # fmt: skip


def assess(
    model: Wavenet,
    experiment: ExperimentConfig,
    bundle: DataBundle,
    split: str = "test",
    samples: int = 8,
    seed: int = 0,
    generate_kwargs: Mapping[str, Any] | None = None,
    max_rows: int = MAX_SAMPLES_PER_BATCH,
) -> list[RecordingAssessment]:
    """`assess_recording` for every recording of a split, with the persistence jump scale fitted on train.

    Recording i is sampled with seed `seed + i`; recordings of equal length are generated in
    shared batches of at most `max_rows` rows (`sample_many_eda_units`), which gives each the
    samples `assess_recording` would.
    """
    levels = model.config.quantization_levels
    # EDA only: normalize the in-memory µS traces instead of loading each recording's MFCCs.
    train_traces = [
        np.asarray(bundle.normalizers[r].normalize(bundle.recordings[r].eda_us), dtype=np.float32)
        for r in bundle.splits["train"]
    ]
    scale = fit_persistence_scale(train_traces, levels)
    model.eval()
    ids = list(bundle.splits[split])
    prime_steps = model.config.first_full_step
    lengths = [bundle.recordings[r].n_steps for r in ids]
    out: list[RecordingAssessment] = []
    with tqdm(total=len(ids), desc=f"evaluating {split} recordings", unit="rec") as bar:
        for group in batch_groups(lengths, samples, max_rows):  # loaded a group at a time
            recs = [bundle.load(ids[i], experiment) for i in group]
            drawn = _free_running(model, experiment, recs, samples, [seed + i for i in group], prime_steps,
                                  generate_kwargs)  # fmt: skip
            for i, rec, (gen_units, blind_units) in zip(group, recs, drawn, strict=True):
                out.append(_measure(model, bundle, ids[i], rec, gen_units, blind_units, prime_steps, scale))
                bar.update()
    return out
