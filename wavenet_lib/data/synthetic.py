"""A synthetic paired audio + EDA dataset with a known, learnable audio → EDA link.

Written as real files so the real-data path is the one exercised: per recording a wav, an EDA
csv in µS (`time_s,eda_us`, generic format), an events csv of the loud audio onsets with the
SCR each evoked, and a csv of spontaneous SCRs; plus `manifest.csv` and the settings used.

The physiology (Boucsein, *Electrodermal Activity*, 2012; Dawson et al., 2017):

- Skin conductance level (SCL) 2–20 µS: a per-recording base of 3–12 µS with slow drift
  (sinusoids of 1–7 min period and a linear trend).
- Audio: quiet pink-ish noise and soft tones, with loud broadband bursts at random onsets at
  least `min_event_gap_s` apart.
- Evoked SCRs: each loud onset evokes an SCR with probability `evoked_probability` (0.9), its
  onset `latency_s` (1–3 s) after the sound; amplitude grows with loudness and habituates
  (multiplied by a per-subject factor 0.92–0.97 for each earlier evoked SCR).
- Spontaneous (non-specific) SCRs at a per-subject 1–3 per minute, at uniform random times,
  smaller than the evoked ones.
- SCR shape: the standard bi-exponential exp(-t/τ_decay) - exp(-t/τ_rise) from the SCR onset,
  τ_rise = 0.7 s (peak ~1.3 s after onset), τ_decay 2.5–4 s; plus Gaussian sensor noise.

Everything derives from the seed: the same seed writes byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

from wavenet_lib.data.manifest import ManifestRow, write_manifest

__all__ = ["SyntheticRecording", "scr_shape", "synthesize_recording", "make_synthetic_dataset"]

TAU_RISE_S = 0.7
SETTINGS_FILE = "synthetic_settings.json"
_GENERATOR_VERSION = 1


def scr_shape(t: np.ndarray, tau_rise: float = TAU_RISE_S, tau_decay: float = 3.0) -> np.ndarray:
    """Bi-exponential SCR of unit peak, `t` seconds after its onset (0 for t < 0)."""
    t = np.asarray(t, dtype=np.float64)
    peak_t = np.log(tau_decay / tau_rise) * tau_rise * tau_decay / (tau_decay - tau_rise)
    peak = np.exp(-peak_t / tau_decay) - np.exp(-peak_t / tau_rise)
    tp = np.clip(t, 0.0, None)
    return np.where(t > 0, (np.exp(-tp / tau_decay) - np.exp(-tp / tau_rise)) / peak, 0.0)


@dataclass
class SyntheticRecording:
    """One generated recording.

    Attributes:
        audio: float32 (samples,) mono audio at the audio rate.
        eda: float64 (steps,) EDA in µS at the EDA rate (sample i at time i / rate).
        events: loud onsets, one dict each: onset_s, loudness, evoked, latency_s, amplitude_us, scr_onset_s.
        spontaneous: spontaneous SCRs, one dict each: onset_s, amplitude_us.
    """

    audio: np.ndarray
    eda: np.ndarray
    events: list[dict]
    spontaneous: list[dict]


def _subject_params(seed: int, subject: int, spontaneous_per_min: tuple[float, float]) -> dict:
    rng = np.random.default_rng([seed, 1, subject])
    return {
        "gain_us": float(rng.uniform(0.5, 1.5)),
        "habituation": float(rng.uniform(0.92, 0.97)),
        "tau_decay_s": float(rng.uniform(2.5, 4.0)),
        "spontaneous_per_min": float(rng.uniform(*spontaneous_per_min)),
    }


def synthesize_recording(
    rng: np.random.Generator,
    duration_s: float,
    audio_sample_rate: int,
    eda_sample_rate: float,
    subject: dict,
    latency_s: tuple[float, float] = (1.0, 3.0),
    evoked_probability: float = 0.9,
    min_event_gap_s: float = 6.0,
) -> SyntheticRecording:
    """Generate one recording's audio, EDA (µS) and ground-truth events.

    Args:
        rng: the recording's random generator.
        duration_s: length of audio and EDA.
        audio_sample_rate, eda_sample_rate: output rates (Hz).
        subject: per-subject parameters (gain_us, habituation, tau_decay_s, spontaneous_per_min).
        latency_s: range of onset → SCR-onset latencies.
        evoked_probability: chance a loud onset evokes an SCR.
        min_event_gap_s: least time between loud onsets.
    """
    n_audio = int(round(duration_s * audio_sample_rate))
    # --- background: quiet pink-ish noise and two soft, slowly modulated tones ----------
    noise = lfilter([1.0], [1.0, -0.95], rng.standard_normal(n_audio))
    audio = 0.004 * noise
    ta = np.arange(n_audio) / audio_sample_rate
    for _ in range(2):
        freq = rng.uniform(0.05, 0.2) * audio_sample_rate
        mod = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.02, 0.1) * ta + rng.uniform(0, 2 * np.pi))
        audio += 0.01 * mod * np.sin(2 * np.pi * freq * ta + rng.uniform(0, 2 * np.pi))
    # --- loud onsets: broadband bursts, fast attack, ~0.3 s decay ------------------------
    onsets = []
    t = rng.uniform(2.0, 4.0)
    while t < duration_s - 1.0:
        onsets.append(t)
        t += min_event_gap_s + rng.exponential(4.0)
    burst_len = int(1.0 * audio_sample_rate)
    tb = np.arange(burst_len) / audio_sample_rate
    envelope = np.minimum(tb / 0.005, 1.0) * np.exp(-tb / 0.3)
    # --- EDA ------------------------------------------------------------------------------
    n_eda = int(round(duration_s * eda_sample_rate))
    te = np.arange(n_eda) / eda_sample_rate
    scl = rng.uniform(3.0, 12.0) + rng.uniform(-1.0, 1.0) * te / duration_s
    for _ in range(3):
        period = rng.uniform(60.0, 400.0)
        scl += rng.uniform(0.2, 0.8) * np.sin(2 * np.pi * te / period + rng.uniform(0, 2 * np.pi))
    eda = np.clip(scl, 2.0, 20.0)
    tau_d = subject["tau_decay_s"]
    events, n_evoked = [], 0
    for onset in onsets:
        loudness = float(rng.uniform(0.4, 1.0))
        start = int(round(onset * audio_sample_rate))
        seg = slice(start, min(start + burst_len, n_audio))
        audio[seg] += (
            0.9 * loudness * envelope[: seg.stop - seg.start] * rng.standard_normal(seg.stop - start)
        )
        evoked = bool(rng.random() < evoked_probability)
        latency = float(rng.uniform(*latency_s))
        event = {"onset_s": onset, "loudness": loudness, "evoked": evoked}
        if evoked:
            amp = subject["gain_us"] * (0.25 + 0.75 * loudness) * subject["habituation"] ** n_evoked
            n_evoked += 1
            eda = eda + amp * scr_shape(te - (onset + latency), tau_decay=tau_d)
            event |= {"latency_s": latency, "amplitude_us": amp, "scr_onset_s": onset + latency}
        else:
            event |= {"latency_s": float("nan"), "amplitude_us": 0.0, "scr_onset_s": float("nan")}
        events.append(event)
    n_spont = int(rng.poisson(subject["spontaneous_per_min"] * duration_s / 60.0))
    spontaneous = []
    for onset in np.sort(rng.uniform(0.0, duration_s - 2.0, n_spont)):
        amp = float(rng.uniform(0.03, 0.15))
        eda = eda + amp * scr_shape(te - onset, tau_decay=tau_d)
        spontaneous.append({"onset_s": float(onset), "amplitude_us": amp})
    eda = eda + rng.normal(0.0, 0.003, n_eda)
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    return SyntheticRecording(audio, eda, events, spontaneous)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.write_text(",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows))


def _fmt(x: float, digits: int = 4) -> str:
    return "" if x != x else f"{x:.{digits}f}"


def make_synthetic_dataset(
    out_dir: str | Path,
    n_recordings: int = 8,
    duration_s: float = 120.0,
    seed: int = 0,
    audio_sample_rate: int = 16000,
    eda_sample_rate: float = 4.0,
    latency_s: tuple[float, float] = (1.0, 3.0),
    n_subjects: int = 4,
    evoked_probability: float = 0.9,
    min_event_gap_s: float = 6.0,
    spontaneous_per_min: tuple[float, float] = (1.0, 3.0),
) -> Path:
    """Write the synthetic dataset into `out_dir` and return its manifest path.

    Files per recording `syn-XXX` (subject `subj-(i mod n_subjects)`): `syn-XXX.wav` (16-bit
    mono), `syn-XXX_eda.csv` (`time_s,eda_us`), `syn-XXX_events.csv` (`onset_s, loudness,
    evoked, latency_s, amplitude_us, scr_onset_s`; latency is audio onset → SCR onset),
    `syn-XXX_spontaneous.csv` (`onset_s, amplitude_us`). Also `manifest.csv` and
    `synthetic_settings.json`. If the folder already holds a dataset made with the same
    settings it is reused as is.

    Returns:
        Path of `manifest.csv`.
    """
    out_dir = Path(out_dir)
    settings = {
        "version": _GENERATOR_VERSION,
        "n_recordings": int(n_recordings),
        "duration_s": float(duration_s),
        "seed": int(seed),
        "audio_sample_rate": int(audio_sample_rate),
        "eda_sample_rate": float(eda_sample_rate),
        "latency_s": [float(x) for x in latency_s],
        "n_subjects": int(n_subjects),
        "evoked_probability": float(evoked_probability),
        "min_event_gap_s": float(min_event_gap_s),
        "spontaneous_per_min": [float(x) for x in spontaneous_per_min],
    }
    manifest = out_dir / "manifest.csv"
    settings_path = out_dir / SETTINGS_FILE
    if manifest.is_file() and settings_path.is_file():
        try:
            if json.loads(settings_path.read_text()) == settings:
                return manifest
        except json.JSONDecodeError:
            pass
    out_dir.mkdir(parents=True, exist_ok=True)
    settings_path.unlink(missing_ok=True)  # mark as incomplete until every file is written
    subjects = [_subject_params(seed, s, spontaneous_per_min) for s in range(n_subjects)]
    rows = []
    for i in range(n_recordings):
        rid, subject = f"syn-{i:03d}", i % n_subjects
        rec = synthesize_recording(
            np.random.default_rng([seed, 0, i]),
            duration_s,
            audio_sample_rate,
            eda_sample_rate,
            subjects[subject],
            tuple(latency_s),
            evoked_probability,
            min_event_gap_s,
        )
        sf.write(out_dir / f"{rid}.wav", rec.audio, audio_sample_rate, subtype="PCM_16")
        times = np.arange(len(rec.eda)) / eda_sample_rate
        _write_csv(
            out_dir / f"{rid}_eda.csv",
            ["time_s", "eda_us"],
            [[f"{t:.4f}", f"{v:.5f}"] for t, v in zip(times, rec.eda, strict=True)],
        )
        _write_csv(
            out_dir / f"{rid}_events.csv",
            ["onset_s", "loudness", "evoked", "latency_s", "amplitude_us", "scr_onset_s"],
            [
                [_fmt(e["onset_s"]), _fmt(e["loudness"]), str(int(e["evoked"])), _fmt(e["latency_s"])]
                + [_fmt(e["amplitude_us"], 5), _fmt(e["scr_onset_s"])]
                for e in rec.events
            ],
        )
        _write_csv(
            out_dir / f"{rid}_spontaneous.csv",
            ["onset_s", "amplitude_us"],
            [[_fmt(s["onset_s"]), _fmt(s["amplitude_us"], 5)] for s in rec.spontaneous],
        )
        rows.append(
            ManifestRow(
                recording_id=rid,
                subject_id=f"subj-{subject}",
                audio_path=out_dir / f"{rid}.wav",
                eda_path=out_dir / f"{rid}_eda.csv",
                eda_format="generic",
                eda_sample_rate=eda_sample_rate,
                offset_s=0.0,
                eda_column="eda_us",
            )
        )
    write_manifest(rows, manifest)
    (out_dir / "subjects.json").write_text(json.dumps(dict(enumerate(subjects)), indent=1, sort_keys=True))
    settings_path.write_text(json.dumps(settings, indent=1, sort_keys=True))
    return manifest
