"""One run folder, one training process: a lock file, and no silent overwrite of a trained run.

`RunFolder` is entered by every process of a run; rank 0 does the work and shares the outcome,
so all ranks fail together with the same message:

- `run_dir/.lock` is created exclusively (O_EXCL) and holds the holder's pid, host and start
  time. A second process gets `RunFolderError` naming the holder. A lock whose process is gone
  (same host, pid no longer running, e.g. after kill -9) is stale: it is taken over with a
  warning.
- A folder that already holds `last.pt` or `best.pt` is refused unless `resume` (continue it)
  or `overwrite` (replace it: the old checkpoints, training history and held-out report
  `metrics.json` are deleted first; the pipeline also clears the old figures, see
  `wavenet_lib.pipeline.run_experiment`).
- Temporary files left by a killed write (`.<name>.*.tmp`, see `wavenet_lib.atomic_write`) are
  removed: under the lock, nobody else is writing there.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

from wavenet_lib.atomic_write import remove_temp_files
from wavenet_lib.train.distributed import DistEnv, all_gather_objects
from wavenet_lib.train.history import METRICS_FILE
from wavenet_lib.train.state import BEST_CHECKPOINT, LAST_CHECKPOINT

__all__ = ["LOCK_FILE", "RunFolderError", "RunFolder", "read_lock"]

LOCK_FILE = ".lock"
HELD_OUT_REPORT = "metrics.json"  # written by notebooks 03 and 04 about the trained model


class RunFolderError(RuntimeError):
    """The run folder is busy (another process holds its lock) or would be overwritten."""


def read_lock(path: Path) -> dict[str, Any]:
    """The holder recorded in a lock file ({} when unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)) if started else "an unknown time"
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} (started {when})"


class RunFolder:
    """Context manager that claims a run folder for one training run (see module docstring).

    Args:
        run_dir: the folder (created if needed).
        env: the process group; rank 0 claims, every rank learns the outcome.
        resume: the run continues `last.pt`.
        overwrite: replace a trained run that is already there.

    Raises (on entering):
        RunFolderError: another live process holds the lock, or the folder holds a trained run
            and neither `resume` nor `overwrite` is set.
    """

    def __init__(
        self, run_dir: str | Path, env: DistEnv, *, resume: bool = False, overwrite: bool = False
    ) -> None:
        self.run_dir, self.env = Path(run_dir), env
        self.resume, self.overwrite = resume, overwrite
        self.lock_path = self.run_dir / LOCK_FILE
        self._held = False

    def __enter__(self) -> RunFolder:
        problem = None
        if self.env.is_main:
            try:
                self._claim()
            except (RunFolderError, OSError) as exc:
                problem = str(exc)
        problems = all_gather_objects(problem, self.env)
        if problems[0] is not None:
            self._release()
            raise RunFolderError(problems[0])
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release()

    # --- rank 0 ----------------------------------------------------------------------------------
    def _claim(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        trained = [n for n in (LAST_CHECKPOINT, BEST_CHECKPOINT) if (self.run_dir / n).is_file()]
        if trained and not self.resume and not self.overwrite:
            raise RunFolderError(
                f"{self.run_dir} already holds a trained run ({', '.join(trained)}); pass --resume to "
                "continue it, --overwrite to replace it, or choose another --run-dir"
            )
        if self.overwrite and not self.resume:
            for name in (LAST_CHECKPOINT, BEST_CHECKPOINT, METRICS_FILE, HELD_OUT_REPORT):
                (self.run_dir / name).unlink(missing_ok=True)
        remove_temp_files(self.run_dir)

    def _lock(self) -> None:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = read_lock(self.lock_path)
                if not self._stale(other):
                    raise RunFolderError(
                        f"{self.run_dir} is in use by another training run: {_describe(other)}. "
                        f"Wait for it to finish; if that process is gone, delete {self.lock_path}"
                    ) from None
                warnings.warn(
                    f"{self.lock_path}: taking over the stale lock of {_describe(other)} (no longer running)",
                    stacklevel=4,
                )
                self.lock_path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(holder, fh)
            self._held = True
            return
        raise OSError(errno.EEXIST, f"could not create {self.lock_path}")

    def _stale(self, holder: dict[str, Any]) -> bool:
        if not holder:  # empty or garbled: a process killed while writing it, if not brand new
            try:
                return time.time() - self.lock_path.stat().st_mtime > 10.0
            except FileNotFoundError:
                return True
        pid = holder.get("pid")
        if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
            return False
        return pid != os.getpid() and not _pid_alive(pid)

    def _release(self) -> None:
        if self._held:
            self.lock_path.unlink(missing_ok=True)
            self._held = False
