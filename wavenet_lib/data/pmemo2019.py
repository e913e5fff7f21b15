"""The PMEmo2019 manifest builder (songs, per-subject EDA, the dataset's own layout)."""

from __future__ import annotations

import re
from pathlib import Path

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

__all__ = ["build_pmemo2019_manifest"]


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
    need_dir(root)
    chorus = root / "chorus"
    by_stem = {p.stem: p for p in audio_files(chorus)} if chorus.is_dir() else {}
    audio: dict[str, Path] = dict(by_stem)
    expected: dict[str, str] = {}  # music id → where its audio should be, for messages
    meta = root / "metadata.csv"
    if meta.is_file():
        try:
            df = pd.read_csv(meta)
        except Exception as exc:
            raise DataError(meta, f"not a readable PMEmo2019 metadata.csv ({exc})") from exc
        cols = column_names(df)
        id_col, file_col = (
            pick_column(cols, "musicid", "music_id"),
            pick_column(cols, "filename", "file_name"),
        )
        if id_col is None or file_col is None:
            raise DataError(meta, f"needs musicId and fileName columns; has {list(df.columns)[:20]}")
        by_name = {p.name: p for p in audio_files(root)}
        for music_id, name in zip(df[id_col], df[file_col], strict=True):
            if pd.isna(music_id) or pd.isna(name):
                continue
            music_id, name = text_id(music_id), str(name).strip()
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
    return finish_manifest(rows, left_out, root, out_path, "PMEmo2019", on_bad_recording, warn)
