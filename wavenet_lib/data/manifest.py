"""The recording manifest: one CSV row per (audio, EDA) pair.

Columns (header required, order free):

=================  ===========================================================================
recording_id       unique name of the recording
subject_id         who listened (splits by subject keep a person out of two splits)
audio_path         wav / flac / ogg / mp3; absolute or relative to the manifest's folder
eda_path           EDA file; absolute or relative to the manifest's folder
eda_format         e4 | pmemo2019 | hku956 | generic (see `wavenet_lib.data.eda`)
eda_sample_rate    Hz of the EDA file (checked against the rate the file itself states)
offset_s           EDA time minus audio time: the audio time (s) at which EDA sample 0 was
                   taken. Positive: the EDA started after the audio (the audio's first
                   offset_s seconds are dropped). Negative: the EDA started first (its first
                   -offset_s seconds are dropped).
eda_column         optional: subject column (pmemo2019) or EDA column name (generic)
play_duration_s    optional: seconds of the audio actually played, from audio time 0 (a
                   listener who stopped early; HKU956 play_duration, E4 tags.csv end mark).
                   Audio after it is cropped. Empty: the whole file was played.
=================  ===========================================================================

A recording uses the span where audio (up to play_duration_s) and EDA overlap; whatever lies
outside it is cropped (`wavenet_lib.data.recordings.prepare_recording`).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, field_validator

from wavenet_lib.atomic_write import atomic_write
from wavenet_lib.errors import DataError

__all__ = ["REQUIRED_COLUMNS", "ManifestRow", "read_manifest", "write_manifest"]

REQUIRED_COLUMNS = (
    "recording_id",
    "subject_id",
    "audio_path",
    "eda_path",
    "eda_format",
    "eda_sample_rate",
    "offset_s",
)
OPTIONAL_COLUMNS = ("eda_column", "play_duration_s")


class ManifestRow(BaseModel):
    """One validated manifest row; paths are absolute once read by `read_manifest`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recording_id: str = Field(min_length=1)
    subject_id: str = Field(min_length=1)
    audio_path: Path
    eda_path: Path
    eda_format: Literal["e4", "pmemo2019", "hku956", "generic"]
    eda_sample_rate: PositiveFloat = Field(allow_inf_nan=False)
    offset_s: float = Field(default=0.0, allow_inf_nan=False)
    eda_column: str | None = None
    play_duration_s: PositiveFloat | None = Field(default=None, allow_inf_nan=False)

    @field_validator("recording_id", "subject_id", mode="before")
    @classmethod
    def _strip(cls, v: object) -> object:
        return str(v).strip() if v is not None else v

    @field_validator("play_duration_s", mode="before")
    @classmethod
    def _empty_is_unplayed(cls, v: object) -> object:
        return None if v is None or str(v).strip() == "" else v

    @field_validator("eda_column", mode="before")
    @classmethod
    def _empty_is_none(cls, v: object) -> object:
        if v is None or (isinstance(v, float) and v != v) or str(v).strip() == "":
            return None
        return str(v).strip()


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Read and validate a manifest CSV; relative paths resolve against its folder.

    Files are not opened here (a whole-dataset build may skip missing ones); loading a
    recording checks them.

    Raises:
        DataError: missing file or columns, an invalid row (names the row and field), or a
            duplicated recording_id.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "manifest not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise DataError(path, f"not a readable manifest CSV ({exc})") from exc
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(path, f"manifest lacks columns {missing}; required: {list(REQUIRED_COLUMNS)}")
    if df.empty:
        raise DataError(path, "manifest has no recordings")
    base = path.resolve().parent
    rows: list[ManifestRow] = []
    for i, record in enumerate(df.to_dict("records"), start=2):  # row 1 is the header
        record = {k: v for k, v in record.items() if k in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
        record["offset_s"] = record["offset_s"] or 0.0
        try:
            row = ManifestRow.model_validate(record)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise DataError(path, f"line {i}: {problems}") from None
        rows.append(
            row.model_copy(update={"audio_path": base / row.audio_path, "eda_path": base / row.eda_path})
        )
    ids = [r.recording_id for r in rows]
    dupes = sorted({x for x in ids if ids.count(x) > 1})
    if dupes:
        raise DataError(path, f"duplicated recording_id(s): {dupes[:10]}")
    return rows


def write_manifest(rows: list[ManifestRow], path: str | Path) -> Path:
    """Write rows as a manifest CSV; paths under its folder are written relative to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.resolve().parent

    def rel(p: Path) -> str:
        p = Path(p).resolve()
        try:
            return Path(os.path.relpath(p, base)).as_posix() if p.is_relative_to(base) else str(p)
        except ValueError:
            return str(p)

    with atomic_write(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        for r in rows:
            writer.writerow(
                [
                    r.recording_id,
                    r.subject_id,
                    rel(r.audio_path),
                    rel(r.eda_path),
                    r.eda_format,
                    f"{r.eda_sample_rate:g}",
                    f"{r.offset_s:.6g}",
                    r.eda_column or "",
                    "" if r.play_duration_s is None else f"{r.play_duration_s:.6g}",
                ]
            )
    return path
