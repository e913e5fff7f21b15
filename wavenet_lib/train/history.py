"""metrics_history.csv: one row per logged step (step, train_loss, val_loss, lr, time)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

__all__ = ["METRICS_FILE", "METRIC_FIELDS", "MetricsLog"]

METRICS_FILE = "metrics_history.csv"
METRIC_FIELDS = ("step", "train_loss", "val_loss", "lr", "time")


class MetricsLog:
    """Appends rows to metrics_history.csv (rank 0 only); on resume drops rows after the checkpoint.

    Args:
        path: the CSV file.
        enabled: write the file (rank 0); other ranks only keep `rows`.
        resume_step: the checkpoint's step when resuming (rows after it are dropped), else None
            (a new run starts an empty file).
    """

    def __init__(self, path: Path, enabled: bool, resume_step: int | None) -> None:
        self.path, self.enabled = path, enabled
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and path.is_file():
            with path.open(newline="") as fh:
                self.rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
        if enabled:
            with path.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=METRIC_FIELDS)
                writer.writeheader()
                writer.writerows(self.rows)

    def add(self, **row: Any) -> None:
        """Append one row (missing or None values are written as empty cells)."""
        row = {k: ("" if row.get(k) is None else row[k]) for k in METRIC_FIELDS}
        self.rows.append(row)
        if self.enabled:
            with self.path.open("a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=METRIC_FIELDS).writerow(row)
