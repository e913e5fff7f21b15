"""What every dataset builder shares: the record of what it left out, and the manifest's last step.

`LeftOut` is one song, session or file a builder found but could not use, with the reason;
`finish_manifest` refuses (`on_bad_recording="error"`) or writes the manifest with the
left-out list beside it (`left_out_path`, read back by `read_left_out`) and one warning.
The column helpers find a table's columns however a dataset spells them.
"""

from __future__ import annotations

import csv
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from wavenet_lib.atomic_write import atomic_write
from wavenet_lib.data.audio import AUDIO_EXTENSIONS
from wavenet_lib.data.manifest import ManifestRow, write_manifest
from wavenet_lib.errors import DataError, SkippedRecordingsWarning

__all__ = [
    "OnBad",
    "LeftOut",
    "left_out_path",
    "read_left_out",
    "audio_files",
    "need_dir",
    "finish_manifest",
    "column_names",
    "pick_column",
    "text_id",
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


def audio_files(folder: Path, recursive: bool = True) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def need_dir(root: Path) -> None:
    if not root.is_dir():
        raise DataError(root, "dataset folder not found")


def finish_manifest(
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


def column_names(df: pd.DataFrame) -> dict[str, str]:
    """Lower-case, space/underscore-normalised column name → the real name."""
    return {re.sub(r"[\s_]+", "_", str(c).strip().lower()): c for c in df.columns}


def pick_column(cols: dict[str, str], *candidates: str) -> str | None:
    for cand in candidates:
        if cand in cols:
            return cols[cand]
    for cand in candidates:
        for key, real in cols.items():
            if cand in key:
                return real
    return None


def text_id(value: object) -> str:
    """A song/music id as text: 12.0 → '12'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
