"""The embedded dataset: listening sessions of real music and a simulated listener's EDA.

Each recording is one session (`wavenet_lib.data.playlists`: excerpts of the three shipped
recordings with level changes, fades and pauses) heard by one of `n_subjects` simulated
listeners (`wavenet_lib.data.listener`: SCRs after audio-computable feature events, with
latency, habituation, subject differences, spontaneous SCRs, tonic drift and sensor noise).

Written as real files so the real-data path is the one exercised. Per recording `syn-XXX`:

- `syn-XXX.wav`: the session, 16-bit mono at the model's audio rate;
- `syn-XXX_eda.csv`: `time_s,eda_us` (generic format) at the model's EDA rate;
- `syn-XXX_events.csv`: the ground truth, one row per feature event: `onset_s` (event time,
  s), `feature`, `strength` (feature value at the event, dB), `threshold` (the subject's),
  `evoked` (0/1), `latency_s` (event → SCR onset), `scr_onset_s`, `amplitude_us`,
  `habituation` (amplitude factor from earlier SCRs);
- `syn-XXX_spontaneous.csv`: `onset_s,amplitude_us` of the spontaneous SCRs;
- `syn-XXX_playlist.csv`: what plays when (`wavenet_lib.data.playlists.Excerpt` fields);

and `manifest.csv`, `subjects.json` (each listener's parameters) and
`synthetic_settings.json` (the settings; written last, it marks a complete dataset).

The listener hears the audio exactly as written (16-bit), so its events can be recomputed from
the wav with `listener_feature` + `feature_events`. Everything derives from `seed`: the same
settings write byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from wavenet_lib.configs import SyntheticDataConfig
from wavenet_lib.data.listener import RULES, Subject, draw_subject, scr_shape, simulate_listener
from wavenet_lib.data.manifest import ManifestRow, write_manifest
from wavenet_lib.data.playlists import Excerpt, make_session
from wavenet_lib.seeding import derive_seed

__all__ = [
    "SyntheticRecording",
    "scr_shape",
    "synthesize_recording",
    "make_synthetic_dataset",
    "subjects_for",
]

SETTINGS_FILE = "synthetic_settings.json"
_GENERATOR_VERSION = 2
EVENT_COLUMNS = [
    "onset_s", "feature", "strength", "threshold", "evoked",
    "latency_s", "scr_onset_s", "amplitude_us", "habituation",
]  # fmt: skip


@dataclass
class SyntheticRecording:
    """One generated recording.

    Attributes:
        audio: int16 (samples,) mono audio at the audio rate, as written.
        eda: float64 (steps,) EDA in µS at the EDA rate (sample i at time i / rate).
        events: feature events (see `simulate_listener`).
        spontaneous: spontaneous SCRs, one dict each: onset_s, amplitude_us.
        playlist: the session's excerpts.
    """

    audio: np.ndarray
    eda: np.ndarray
    events: list[dict]
    spontaneous: list[dict]
    playlist: list[Excerpt]


def subjects_for(cfg: SyntheticDataConfig) -> list[Subject]:
    """The `cfg.n_subjects` listeners of a dataset (drawn from `cfg.seed`)."""
    return [
        draw_subject(np.random.default_rng(derive_seed(cfg.seed, 1, s)), s, cfg)
        for s in range(cfg.n_subjects)
    ]


def synthesize_recording(
    cfg: SyntheticDataConfig, index: int, subject: Subject, audio_sample_rate: int, eda_sample_rate: float
) -> SyntheticRecording:
    """Session `index` of the dataset `cfg`, heard by `subject`.

    Returns:
        the recording; its audio is int16 and the listener heard exactly `audio / 32768`.
    """
    session_rng = np.random.default_rng(derive_seed(cfg.seed, 0, index))
    audio, playlist = make_session(session_rng, cfg.duration_s, audio_sample_rate, cfg)
    pcm = np.round(audio * 32767.0).astype(np.int16)
    heard = pcm.astype(np.float32) / 32768.0  # what reading the 16-bit wav gives back
    listener_rng = np.random.default_rng(derive_seed(cfg.seed, 2, index))
    eda, events, spontaneous = simulate_listener(
        heard, audio_sample_rate, eda_sample_rate, subject, cfg, listener_rng
    )
    return SyntheticRecording(pcm, eda, events, spontaneous, playlist)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.write_text(",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows))


def _fmt(x, digits: int = 4) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, bool | np.bool_):
        return str(int(x))
    return "" if x != x else f"{x:.{digits}f}"


def settings_for(cfg: SyntheticDataConfig, audio_sample_rate: int, eda_sample_rate: float) -> dict:
    """What identifies a written dataset: generator version, the config, its rule and the two rates."""
    settings = {
        "version": _GENERATOR_VERSION,
        "synthetic": cfg.model_dump(mode="json"),
        "rule": asdict(RULES[cfg.listener]),
        "audio_sample_rate": int(audio_sample_rate),
        "eda_sample_rate": float(eda_sample_rate),
    }
    return json.loads(json.dumps(settings))  # as read back from the json file (tuples → lists)


def make_synthetic_dataset(
    out_dir: str | Path,
    cfg: SyntheticDataConfig,
    audio_sample_rate: int,
    eda_sample_rate: float,
    progress: bool = True,
) -> Path:
    """Write the dataset described by `cfg` into `out_dir` and return its manifest path.

    Recording `syn-XXX` is session XXX heard by subject `subj-(XXX mod n_subjects)`; files as
    in the module docstring. If the folder already holds a complete dataset made with the same
    settings it is reused as is.

    Returns:
        Path of `manifest.csv`.
    """
    out_dir = Path(out_dir)
    settings = settings_for(cfg, audio_sample_rate, eda_sample_rate)
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
    subjects = subjects_for(cfg)
    rows = []
    recordings = range(cfg.n_recordings)
    for i in tqdm(
        recordings, desc="writing the music dataset", unit="rec", disable=not progress, leave=False
    ):
        rid, subject = f"syn-{i:03d}", subjects[i % cfg.n_subjects]
        rec = synthesize_recording(cfg, i, subject, audio_sample_rate, eda_sample_rate)
        sf.write(out_dir / f"{rid}.wav", rec.audio, audio_sample_rate, subtype="PCM_16")
        times = np.arange(len(rec.eda)) / eda_sample_rate
        _write_csv(
            out_dir / f"{rid}_eda.csv",
            ["time_s", "eda_us"],
            [[f"{t:.4f}", f"{v:.4f}"] for t, v in zip(times, rec.eda, strict=True)],
        )
        digits = {"amplitude_us": 5, "habituation": 4}
        _write_csv(
            out_dir / f"{rid}_events.csv",
            EVENT_COLUMNS,
            [[_fmt(e[c], digits.get(c, 4)) for c in EVENT_COLUMNS] for e in rec.events],
        )
        _write_csv(
            out_dir / f"{rid}_spontaneous.csv",
            ["onset_s", "amplitude_us"],
            [[_fmt(s["onset_s"]), _fmt(s["amplitude_us"], 5)] for s in rec.spontaneous],
        )
        playlist_columns = list(rec.playlist[0].as_row()) if rec.playlist else ["piece"]
        _write_csv(
            out_dir / f"{rid}_playlist.csv",
            playlist_columns,
            [[_fmt(v) for v in ex.as_row().values()] for ex in rec.playlist],
        )
        rows.append(
            ManifestRow(
                recording_id=rid,
                subject_id=f"subj-{subject.index}",
                audio_path=out_dir / f"{rid}.wav",
                eda_path=out_dir / f"{rid}_eda.csv",
                eda_format="generic",
                eda_sample_rate=eda_sample_rate,
                offset_s=0.0,
                eda_column="eda_us",
            )
        )
    write_manifest(rows, manifest)
    (out_dir / "subjects.json").write_text(
        json.dumps({f"subj-{s.index}": s.as_dict() for s in subjects}, indent=1, sort_keys=True)
    )
    settings_path.write_text(json.dumps(settings, indent=1, sort_keys=True))
    return manifest
