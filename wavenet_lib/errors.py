"""The one error type for bad input data.

Every problem with a recording (unreadable audio, NaN or flat EDA, a sample-rate mismatch, a
recording too short for the model, a malformed manifest) raises `DataError`, whose message
names the file and the problem, so it never surfaces later as a NaN loss or a shape error deep
inside torch. It subclasses `ValueError` so generic handlers still catch it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DataError", "SkippedRecordingsWarning"]


class DataError(ValueError):
    """A recording or manifest cannot be used; the message names the file and the problem.

    Attributes:
        path: the offending file (or None when no single file is at fault).
        problem: what is wrong and, where possible, what to do about it.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class SkippedRecordingsWarning(UserWarning):
    """Issued once by a dataset build that skipped bad recordings; lists each file and why."""
