"""The manifest builder for Empatica E4 sessions (one folder per session: EDA.csv, tags, audio)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from wavenet_lib.data.builder_common import (
    LeftOut,
    OnBad,
    audio_files,
    finish_manifest,
    need_dir,
)
from wavenet_lib.data.manifest import ManifestRow
from wavenet_lib.errors import DataError

__all__ = ["build_e4_manifest"]


def _tag_times(path: Path) -> list[float]:
    """E4 `tags.csv`: one unix time per row (first column)."""
    try:
        lines = path.read_text(encoding="utf-8").split()
        return [float(line.split(",")[0]) for line in lines if line.strip()]
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a readable E4 tags.csv ({exc})") from exc


def _e4_header(eda_path: Path) -> tuple[float, float]:
    try:
        header = pd.read_csv(eda_path, header=None, nrows=2, usecols=[0]).iloc[:, 0].astype(float).tolist()
    except Exception as exc:
        raise DataError(eda_path, f"not a readable E4 EDA.csv ({exc})") from exc
    if len(header) < 2:
        raise DataError(eda_path, "E4 EDA.csv needs a start-time row and a sample-rate row")
    start, rate = header
    if not (math.isfinite(rate) and rate > 0):
        raise DataError(eda_path, f"row 2 (the E4 sample rate) must be a rate > 0 Hz, got {rate:g}")
    if not math.isfinite(start):
        raise DataError(eda_path, f"row 1 (the E4 start time) must be a unix time, got {start:g}")
    return start, rate


def build_e4_manifest(
    root: str | Path,
    out_path: str | Path | None = None,
    on_bad_recording: OnBad = "skip",
    warn: bool = True,
) -> Path:
    """Manifest for Empatica E4 sessions recorded while a known audio file played.

    Assumed layout::

        root/<session>/EDA.csv                E4 export (row 1 start unix time, row 2 rate, values)
        root/<session>/<anything>.wav|.flac|.ogg|.mp3   the audio played (exactly one)
        root/<session>/tags.csv               optional E4 event marks (unix times): the first
                                              marks the start of playback, a second its end
        root/<subject>/<session>/...          also accepted: the subject is the parent folder

    The subject is the session's parent folder, or the session itself when it sits directly
    under root. `offset_s` = E4 start time - first tag time when tags.csv exists (the E4 usually
    starts before playback, so it is negative), else 0 (playback started with the recording);
    a second tag gives `play_duration_s` = second - first (EDA after it is cropped; further
    tags are ignored). The rate comes from each EDA.csv header. A session with no audio, two
    audio files, an unreadable EDA.csv header or tags.csv, or an end mark before the start mark
    is left out with the reason (see the module docstring).

    Returns:
        The manifest path.
    """
    root = Path(root)
    need_dir(root)
    rows: list[ManifestRow] = []
    left_out: list[LeftOut] = []
    for eda_path in sorted(root.rglob("EDA.csv")):
        session = eda_path.parent
        rel = session.relative_to(root).as_posix().replace("/", "-") if session != root else session.name
        recording_id = f"e4-{rel}"
        audio = audio_files(session, recursive=False)
        if len(audio) != 1:
            names = ", ".join(a.name for a in audio)
            why = (
                f"{len(audio)} audio files ({names}); keep only the one played"
                if audio
                else "no audio file in the session folder"
            )
            left_out.append(LeftOut(recording_id, session, why))
            continue
        try:
            start, rate = _e4_header(eda_path)
            tags = _tag_times(session / "tags.csv") if (session / "tags.csv").is_file() else []
        except DataError as exc:
            left_out.append(LeftOut(recording_id, exc.path or eda_path, exc.problem))
            continue
        play = None
        if len(tags) >= 2:
            play = tags[1] - tags[0]
            if not play > 0:
                left_out.append(
                    LeftOut(
                        recording_id,
                        session / "tags.csv",
                        f"the end mark ({tags[1]:.3f}) is not after the start mark ({tags[0]:.3f})",
                    )
                )
                continue
        subject = session.name if session.parent.resolve() == root.resolve() else session.parent.name
        rows.append(
            ManifestRow(
                recording_id=recording_id,
                subject_id=subject,
                audio_path=audio[0],
                eda_path=eda_path,
                eda_format="e4",
                eda_sample_rate=rate,
                offset_s=start - tags[0] if tags else 0.0,
                play_duration_s=play,
            )
        )
    return finish_manifest(rows, left_out, root, out_path, "E4 session", on_bad_recording, warn)
