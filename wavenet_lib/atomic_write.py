"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the library writes that a later step reads back (checkpoints, MFCC caches,
manifests, metrics, generated EDA) goes through `atomic_write`: the content is written to a
temporary file in the target's folder, flushed and fsynced, then renamed over the target with
`os.replace` (atomic on POSIX and Windows). On any failure, a Ctrl-C included, the temporary
file is removed and an existing target is left untouched. Temporary names start with
`.<target name>.` and end with `.tmp`, so leftovers of a killed process are easy to recognise.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "atomic_call",
    "check_writable",
    "remove_temp_files",
    "TEMP_SUFFIX",
]

TEMP_SUFFIX = ".tmp"


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (best effort: not every OS can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on a clean exit it replaces `path` atomically.

    Args:
        path: the target file; its folder is created if needed.
        mode: "w" (text) or "wb" (binary).
        **open_kwargs: passed to `open` (e.g. `newline=""` for csv, `encoding`).

    Yields:
        the open temporary file.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns the path."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return Path(path)


def atomic_call(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(binary_file)` on a temporary file that then replaces `path` atomically."""
    with atomic_write(path, "wb") as fh:
        write(fh)
    return Path(path)


def remove_temp_files(folder: str | Path, older_than_s: float = 0.0) -> list[Path]:
    """Delete the temporary files a killed `atomic_write` left in `folder` (not its subfolders).

    Only names of the form `.<target>.<random>.tmp` are touched. Call it where no other process
    is writing (e.g. in a locked run folder), or with `older_than_s` well above the time one
    write takes (shared caches).

    Returns:
        the files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now, removed = time.time(), []
    for path in folder.glob(f".*{TEMP_SUFFIX}"):
        try:
            if path.is_file() and now - path.stat().st_mtime >= older_than_s:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue
    return removed


def check_writable(path: str | Path) -> Path:
    """Check, before any work, that `path` can be written as a file; returns it.

    Creates missing parent folders. Raises `OSError` whose message names `path` when it is a
    folder, its parent is not a folder, or the folder is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name (e.g. {path / 'eda.csv'})")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the folder {parent} for {path}: {exc.strerror or exc}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path}: the folder {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"cannot write {path}: the file is read-only")
    return path
