"""Write a manifest for a dataset in the layout it ships in (PMEmo2019, HKU956, E4 sessions).

Each builder documents the layout it assumes, scans the folder, and writes a manifest CSV
(see `wavenet_lib.manifest`). Nothing is downloaded; get the datasets from their publishers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from wavenet_lib.data.audio import AUDIO_EXTENSIONS
from wavenet_lib.data.manifest import ManifestRow, write_manifest
from wavenet_lib.errors import DataError

__all__ = ["build_pmemo2019_manifest", "build_hku956_manifest", "build_e4_manifest"]


def _audio_files(folder: Path, recursive: bool = True) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def _need_dir(root: Path) -> None:
    if not root.is_dir():
        raise DataError(root, "dataset folder not found")


def _finish(rows: list[ManifestRow], root: Path, out_path: str | Path | None, what: str) -> Path:
    if not rows:
        raise DataError(root, f"no {what} recordings found (see the builder's docstring for the layout)")
    return write_manifest(rows, Path(out_path) if out_path is not None else root / "manifest.csv")


def build_pmemo2019_manifest(
    root: str | Path, out_path: str | Path | None = None, eda_sample_rate: float = 50.0
) -> Path:
    """Manifest for PMEmo2019: one recording per (song, subject).

    Assumed layout (PMEmo2019 as distributed)::

        root/chorus/<music_id>.mp3            chorus excerpt played to the subjects
        root/EDA/<music_id>_EDA.csv           wide CSV, 50 Hz: a time column (s), then one
                                              column of µS per subject id (header = subject ids;
                                              shorter subjects end in empty cells)

    EDA starts with the chorus (offset_s = 0). Songs without audio or EDA are left out.

    Args:
        root: the PMEmo2019 folder.
        out_path: manifest to write (default `root/manifest.csv`).
        eda_sample_rate: rate of the EDA csvs.

    Returns:
        The manifest path.
    """
    root = Path(root)
    _need_dir(root)
    audio = {p.stem: p for p in _audio_files(root / "chorus")}
    rows = []
    eda_dir = root / "EDA"
    for csv_path in sorted(eda_dir.glob("*.csv")) if eda_dir.is_dir() else []:
        match = re.match(r"^(\d+)", csv_path.stem)
        if not match or match.group(1) not in audio:
            continue
        music_id = match.group(1)
        try:
            header = [str(c).strip() for c in pd.read_csv(csv_path, nrows=0).columns]
        except Exception as exc:
            raise DataError(csv_path, f"not a readable PMEmo2019 EDA csv ({exc})") from exc
        subjects = [c for c in header[1:] if c and not c.lower().startswith("unnamed")]
        for subject in subjects:
            rows.append(
                ManifestRow(
                    recording_id=f"pmemo-{music_id}-{subject}",
                    subject_id=subject,
                    audio_path=audio[music_id],
                    eda_path=csv_path,
                    eda_format="pmemo2019",
                    eda_sample_rate=eda_sample_rate,
                    offset_s=0.0,
                    eda_column=subject,
                )
            )
    return _finish(rows, root, out_path, "PMEmo2019")


def build_hku956_manifest(
    root: str | Path, out_path: str | Path | None = None, eda_sample_rate: float = 4.0
) -> Path:
    """Manifest for HKU956: one recording per (participant, song).

    Assumed layout (HKU956 as distributed)::

        root/1. physiological_signals/<participant_id>/EDA/<song_no>_<song_id>.csv
                                              one EDA value (µS) per row, 4 Hz (Empatica E4),
                                              starting when the song starts
        root/2. original_song_audio/<song_id>.mp3   (any folder under root holding audio
                                              files named by song id is searched)

    Any `<participant_id>/EDA/*.csv` under root is taken, so the numbered top folder's exact
    name does not matter. Songs whose audio is missing are left out.

    Returns:
        The manifest path.
    """
    root = Path(root)
    _need_dir(root)
    audio = {p.stem: p for p in _audio_files(root)}
    rows = []
    for csv_path in sorted(root.rglob("EDA/*.csv")):
        participant = csv_path.parent.parent.name
        song_key = csv_path.stem
        song_id = song_key.split("_", 1)[1] if "_" in song_key else song_key
        if song_id not in audio:
            continue
        rows.append(
            ManifestRow(
                recording_id=f"hku956-{participant}-{song_key}",
                subject_id=participant,
                audio_path=audio[song_id],
                eda_path=csv_path,
                eda_format="hku956",
                eda_sample_rate=eda_sample_rate,
                offset_s=0.0,
            )
        )
    return _finish(rows, root, out_path, "HKU956")


def _first_number(path: Path) -> float | None:
    try:
        return float(path.read_text().split()[0].split(",")[0])
    except (OSError, ValueError, IndexError):
        return None


def build_e4_manifest(root: str | Path, out_path: str | Path | None = None) -> Path:
    """Manifest for Empatica E4 sessions recorded while a known audio file played.

    Assumed layout::

        root/<session>/EDA.csv                E4 export (row 1 start unix time, row 2 rate, values)
        root/<session>/<anything>.wav|.flac|.ogg|.mp3   the audio played (exactly one)
        root/<session>/tags.csv               optional E4 event marks: the first (unix time) marks
                                              the start of playback
        root/<subject>/<session>/...          also accepted: the subject is the parent folder

    The subject is the session's parent folder, or the session itself when it sits directly
    under root. `offset_s` = E4 start time - first tag time when tags.csv exists (the E4 usually
    starts before playback, so it is negative), else 0 (playback started with the recording).
    The rate comes from each EDA.csv header.

    Returns:
        The manifest path.
    """
    root = Path(root)
    _need_dir(root)
    rows = []
    for eda_path in sorted(root.rglob("EDA.csv")):
        session = eda_path.parent
        audio = _audio_files(session, recursive=False)
        if len(audio) != 1:
            if audio:
                raise DataError(session, f"expected one audio file in the session, found {len(audio)}")
            continue
        try:
            header = pd.read_csv(eda_path, header=None, nrows=2).iloc[:, 0].astype(float).tolist()
        except Exception as exc:
            raise DataError(eda_path, f"not a readable E4 EDA.csv ({exc})") from exc
        start, rate = header
        tag_time = _first_number(session / "tags.csv") if (session / "tags.csv").is_file() else None
        subject = session.name if session.parent.resolve() == root.resolve() else session.parent.name
        rel = session.relative_to(root).as_posix().replace("/", "-")
        rows.append(
            ManifestRow(
                recording_id=f"e4-{rel}",
                subject_id=subject,
                audio_path=audio[0],
                eda_path=eda_path,
                eda_format="e4",
                eda_sample_rate=rate,
                offset_s=0.0 if tag_time is None else start - tag_time,
            )
        )
    return _finish(rows, root, out_path, "E4 session")
