"""Write a manifest for a dataset in the layout it ships in (PMEmo2019, HKU956, E4 sessions).

Each builder documents the layout it assumes, scans the folder, and writes a manifest CSV
(see `wavenet_lib.data.manifest`). Nothing is downloaded; get the datasets from their publishers.

Nothing is left out silently: every song, session or file a builder cannot use (missing audio,
missing EDA, an unreadable header, two audio files in one session) is a `LeftOut` with the
reason. With `on_bad_recording="error"` the first one is a `DataError` (saying how many more
there are); with "skip" they are written next to the manifest (`left_out_path`, read back by
`read_left_out`) and listed in one `SkippedRecordingsWarning` (unless `warn=False`, when the
caller reports them together with its own skips, as `build_datasets` does).
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

import pandas as pd

from wavenet_lib.atomic_write import atomic_write
from wavenet_lib.data.audio import AUDIO_EXTENSIONS
from wavenet_lib.data.manifest import ManifestRow, write_manifest
from wavenet_lib.errors import DataError, SkippedRecordingsWarning

__all__ = [
    "LeftOut",
    "build_pmemo2019_manifest",
    "build_hku956_manifest",
    "build_e4_manifest",
    "left_out_path",
    "read_left_out",
]

OnBad = Literal["error", "skip"]


@dataclass(frozen=True)
class LeftOut:
    """Something a builder found but could not turn into a manifest row.

    Attributes:
        item: the recording id it would have had (or the file's name).
        path: the file or folder at fault.
        reason: why, and what to do about it.
    """

    item: str
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def left_out_path(manifest: str | Path) -> Path:
    """Where a builder lists what it left out: `<manifest stem>.left_out.csv` beside the manifest."""
    manifest = Path(manifest)
    return manifest.with_name(f"{manifest.stem}.left_out.csv")


def read_left_out(manifest: str | Path) -> list[LeftOut]:
    """What the builder that wrote `manifest` left out (empty when it left nothing out)."""
    path = left_out_path(manifest)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return [LeftOut(r["item"], Path(r["path"]), r["reason"]) for r in csv.DictReader(fh)]


def _audio_files(folder: Path, recursive: bool = True) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def _need_dir(root: Path) -> None:
    if not root.is_dir():
        raise DataError(root, "dataset folder not found")


def _finish(
    rows: list[ManifestRow],
    left_out: list[LeftOut],
    root: Path,
    out_path: str | Path | None,
    what: str,
    on_bad_recording: OnBad,
    warn: bool,
) -> Path:
    if left_out and on_bad_recording == "error":
        first = left_out[0]
        more = f"; {len(left_out) - 1} more left out" if len(left_out) > 1 else ""
        raise DataError(
            first.path,
            f"{first.reason} ({first.item}){more}; set data.on_bad_recording: skip to leave them out",
        )
    if not rows:
        why = "; ".join(f"{x.item}: {x.reason}" for x in left_out[:3])
        why += f"; {len(left_out) - 3} more" if len(left_out) > 3 else ""
        raise DataError(
            root,
            f"no {what} recordings found (see the builder's docstring for the layout)"
            + (f"; left out: {why}" if why else ""),
        )
    manifest = write_manifest(rows, Path(out_path) if out_path is not None else root / "manifest.csv")
    with atomic_write(left_out_path(manifest), "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["item", "path", "reason"])
        writer.writerows([x.item, str(x.path), x.reason] for x in left_out)
    if warn and left_out:
        listing = "\n".join(f"  {x.item}: {x}" for x in left_out)
        warnings.warn(
            f"left out {len(left_out)} {what} item(s):\n{listing}", SkippedRecordingsWarning, stacklevel=3
        )
    return manifest


def _columns(df: pd.DataFrame) -> dict[str, str]:
    """Lower-case, space/underscore-normalised column name → the real name."""
    return {re.sub(r"[\s_]+", "_", str(c).strip().lower()): c for c in df.columns}


def _pick(cols: dict[str, str], *candidates: str) -> str | None:
    for cand in candidates:
        if cand in cols:
            return cols[cand]
    for cand in candidates:
        for key, real in cols.items():
            if cand in key:
                return real
    return None


def _id(value: object) -> str:
    """A song/music id as text: 12.0 → '12'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def build_pmemo2019_manifest(
    root: str | Path,
    out_path: str | Path | None = None,
    eda_sample_rate: float = 50.0,
    on_bad_recording: OnBad = "skip",
    warn: bool = True,
) -> Path:
    """Manifest for PMEmo2019: one recording per (song, subject).

    Assumed layout (PMEmo2019 as distributed)::

        root/metadata.csv                     optional: musicId → fileName of the chorus
        root/chorus/<music_id>.mp3            chorus excerpt played to the subjects (or the
                                              fileName metadata.csv gives)
        root/EDA/<music_id>_EDA.csv           wide CSV, 50 Hz: a time column (s), then one
                                              column of µS per subject id (header = subject ids;
                                              shorter subjects end in empty cells)

    EDA starts with the chorus (offset_s = 0). A song with EDA but no audio, audio but no EDA,
    or an unreadable EDA header is left out with the reason (see the module docstring).

    Args:
        root: the PMEmo2019 folder.
        out_path: manifest to write (default `root/manifest.csv`).
        eda_sample_rate: rate of the EDA csvs.
        on_bad_recording: "error": the first song left out is a DataError; "skip": listed.
        warn: issue the `SkippedRecordingsWarning` listing what was left out.

    Returns:
        The manifest path.
    """
    root = Path(root)
    _need_dir(root)
    chorus = root / "chorus"
    by_stem = {p.stem: p for p in _audio_files(chorus)} if chorus.is_dir() else {}
    audio: dict[str, Path] = dict(by_stem)
    expected: dict[str, str] = {}  # music id → where its audio should be, for messages
    meta = root / "metadata.csv"
    if meta.is_file():
        try:
            df = pd.read_csv(meta)
        except Exception as exc:
            raise DataError(meta, f"not a readable PMEmo2019 metadata.csv ({exc})") from exc
        cols = _columns(df)
        id_col, file_col = _pick(cols, "musicid", "music_id"), _pick(cols, "filename", "file_name")
        if id_col is None or file_col is None:
            raise DataError(meta, f"needs musicId and fileName columns; has {list(df.columns)[:20]}")
        by_name = {p.name: p for p in _audio_files(root)}
        for music_id, name in zip(df[id_col], df[file_col], strict=True):
            if pd.isna(music_id) or pd.isna(name):
                continue
            music_id, name = _id(music_id), str(name).strip()
            expected[music_id] = f"chorus/{name}"
            found = chorus / name if (chorus / name).is_file() else by_name.get(name)
            if found is not None:
                audio[music_id] = found
    rows: list[ManifestRow] = []
    left_out: list[LeftOut] = []
    eda_dir = root / "EDA"
    with_eda: set[str] = set()
    for csv_path in sorted(eda_dir.glob("*.csv")) if eda_dir.is_dir() else []:
        match = re.match(r"^(\d+)", csv_path.stem)
        if not match:
            left_out.append(LeftOut(csv_path.name, csv_path, "file name does not start with a music id"))
            continue
        music_id = match.group(1)
        with_eda.add(music_id)
        if music_id not in audio:
            where = expected.get(music_id, f"chorus/{music_id}.mp3")
            left_out.append(LeftOut(f"pmemo-{music_id}", csv_path, f"no audio: {where} not found"))
            continue
        try:
            head = pd.read_csv(csv_path, nrows=0, sep=None, engine="python")  # sniffs ',' or ';'
            header = [str(c).strip() for c in head.columns]
        except Exception as exc:
            left_out.append(
                LeftOut(f"pmemo-{music_id}", csv_path, f"not a readable PMEmo2019 EDA csv ({exc})")
            )
            continue
        subjects = [c for c in header[1:] if c and not c.lower().startswith("unnamed")]
        if not subjects:
            left_out.append(
                LeftOut(f"pmemo-{music_id}", csv_path, "no subject columns after the time column")
            )
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
    claimed = {path for music_id, path in audio.items() if music_id in with_eda}
    for music_id, path in sorted(audio.items()):
        if music_id.isdigit() and music_id not in with_eda and path not in claimed:
            left_out.append(LeftOut(f"pmemo-{music_id}", path, f"no EDA: EDA/{music_id}_EDA.csv not found"))
    return _finish(rows, left_out, root, out_path, "PMEmo2019", on_bad_recording, warn)


def _read_optional_csv(root: Path, pattern: str) -> tuple[Path, pd.DataFrame] | None:
    found = sorted(root.rglob(pattern))
    if not found:
        return None
    try:
        return found[0], pd.read_csv(found[0])
    except Exception as exc:
        raise DataError(found[0], f"not a readable CSV ({exc})") from exc


def _song_links(root: Path) -> tuple[Path | None, dict[str, str]]:
    """HKU956 `2. original_song_audio.csv`: song id → download link."""
    found = _read_optional_csv(root, "*original_song_audio*.csv")
    if found is None:
        return None, {}
    path, df = found
    cols = _columns(df)
    id_col = _pick(cols, "song_id", "songid", "id")
    link_col = next(
        (c for c in df.columns if df[c].astype(str).str.strip().str.startswith("http").mean() > 0.5), None
    )
    if id_col is None or link_col is None:
        raise DataError(path, f"needs a song id column and a link column; has {list(df.columns)[:20]}")
    pairs = zip(df[id_col], df[link_col], strict=True)
    return path, {_id(i): str(u).strip() for i, u in pairs if not pd.isna(i)}


def _play_durations(root: Path) -> dict[tuple[str, str], float]:
    """HKU956 `3. AV_ratings.csv`: (participant, song id) → play_duration (s)."""
    found = _read_optional_csv(root, "*AV_ratings*.csv")
    if found is None:
        return {}
    path, df = found
    cols = _columns(df)
    who = _pick(cols, "participant_id", "participant", "subject_id", "subject")
    song = _pick(cols, "song_id", "songid")
    dur = _pick(cols, "play_duration", "duration")
    if who is None or song is None or dur is None:
        raise DataError(
            path, f"needs participant, song_id and play_duration columns; has {list(df.columns)[:20]}"
        )
    out = {}
    for p, s, d in zip(df[who], df[song], pd.to_numeric(df[dur], errors="coerce"), strict=True):
        if not pd.isna(p) and not pd.isna(s) and math.isfinite(d) and d > 0:
            out[(_id(p), _id(s))] = float(d)
    return out


def build_hku956_manifest(
    root: str | Path,
    out_path: str | Path | None = None,
    eda_sample_rate: float = 4.0,
    on_bad_recording: OnBad = "skip",
    warn: bool = True,
) -> Path:
    """Manifest for HKU956: one recording per (participant, song).

    Assumed layout (HKU956 as distributed)::

        root/1. physiological_signals/<participant_id>/EDA/<song_no>_<song_id>.csv
                                              one EDA value (µS) per row, 4 Hz (Empatica E4),
                                              starting when the song starts
        root/2. original_song_audio.csv       links to the songs: the dataset ships links, not
                                              audio; download the songs anywhere under root,
                                              named <song_id>.mp3 or as the link names them
        root/3. AV_ratings.csv                optional: play_duration (s) per participant and
                                              song (a participant may stop a song early)

    Any `<participant_id>/EDA/*.csv` under root is taken, so the numbered top folder's exact
    name does not matter. A song's audio is matched by song id or by the file name at the end
    of its link. Audio after `play_duration` is cropped (manifest `play_duration_s`). A song
    whose audio is missing is left out with the reason and its link.

    Raises:
        DataError: no audio at all under root (the links are not downloaded yet), or (with
            on_bad_recording="error") anything left out.

    Returns:
        The manifest path.
    """
    root = Path(root)
    _need_dir(root)
    by_stem = {p.stem: p for p in _audio_files(root)}
    links_path, links = _song_links(root)
    if not by_stem and links_path is not None:
        raise DataError(
            links_path,
            f"HKU956 ships links to its {len(links)} songs, not audio, and no audio file was found under "
            f"{root}: download the songs listed here (anywhere under the folder, named <song_id>.mp3 or "
            "as the link names them)",
        )
    played = _play_durations(root)
    rows: list[ManifestRow] = []
    left_out: list[LeftOut] = []
    for csv_path in sorted(root.rglob("EDA/*.csv")):
        participant = csv_path.parent.parent.name
        song_key = csv_path.stem
        song_id = song_key.split("_", 1)[1] if "_" in song_key else song_key
        recording_id = f"hku956-{participant}-{song_key}"
        link = links.get(song_id)
        link_stem = Path(unquote(urlparse(link).path)).stem if link else None
        audio = by_stem.get(song_id) or (by_stem.get(link_stem) if link_stem else None)
        if audio is None:
            how = f"; download it from {link}" if link else ""
            left_out.append(
                LeftOut(recording_id, csv_path, f"no audio for song {song_id} under {root.name}{how}")
            )
            continue
        rows.append(
            ManifestRow(
                recording_id=recording_id,
                subject_id=participant,
                audio_path=audio,
                eda_path=csv_path,
                eda_format="hku956",
                eda_sample_rate=eda_sample_rate,
                offset_s=0.0,
                play_duration_s=played.get((participant, song_id)),
            )
        )
    return _finish(rows, left_out, root, out_path, "HKU956", on_bad_recording, warn)


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
    _need_dir(root)
    rows: list[ManifestRow] = []
    left_out: list[LeftOut] = []
    for eda_path in sorted(root.rglob("EDA.csv")):
        session = eda_path.parent
        rel = session.relative_to(root).as_posix().replace("/", "-") if session != root else session.name
        recording_id = f"e4-{rel}"
        audio = _audio_files(session, recursive=False)
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
    return _finish(rows, left_out, root, out_path, "E4 session", on_bad_recording, warn)
