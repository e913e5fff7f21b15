"""The HKU956 manifest builder (listening sessions with per-song play records)."""

from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from wavenet_lib.data.builder_common import (
    LeftOut,
    OnBad,
    audio_files,
    column_names,
    finish_manifest,
    need_dir,
    pick_column,
    text_id,
)
from wavenet_lib.data.manifest import ManifestRow
from wavenet_lib.errors import DataError

__all__ = ["build_hku956_manifest"]


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
    cols = column_names(df)
    id_col = pick_column(cols, "song_id", "songid", "id")
    link_col = next(
        (c for c in df.columns if df[c].astype(str).str.strip().str.startswith("http").mean() > 0.5), None
    )
    if id_col is None or link_col is None:
        raise DataError(path, f"needs a song id column and a link column; has {list(df.columns)[:20]}")
    pairs = zip(df[id_col], df[link_col], strict=True)
    return path, {text_id(i): str(u).strip() for i, u in pairs if not pd.isna(i)}


def _play_durations(root: Path) -> dict[tuple[str, str], float]:
    """HKU956 `3. AV_ratings.csv`: (participant, song id) → play_duration (s)."""
    found = _read_optional_csv(root, "*AV_ratings*.csv")
    if found is None:
        return {}
    path, df = found
    cols = column_names(df)
    who = pick_column(cols, "participant_id", "participant", "subject_id", "subject")
    song = pick_column(cols, "song_id", "songid")
    dur = pick_column(cols, "play_duration", "duration")
    if who is None or song is None or dur is None:
        raise DataError(
            path, f"needs participant, song_id and play_duration columns; has {list(df.columns)[:20]}"
        )
    out = {}
    for p, s, d in zip(df[who], df[song], pd.to_numeric(df[dur], errors="coerce"), strict=True):
        if not pd.isna(p) and not pd.isna(s) and math.isfinite(d) and d > 0:
            out[(text_id(p), text_id(s))] = float(d)
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
    need_dir(root)
    by_stem = {p.stem: p for p in audio_files(root)}
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
    return finish_manifest(rows, left_out, root, out_path, "HKU956", on_bad_recording, warn)
