"""Metrics tables and `metrics.json`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from wavenet_lib.atomic_write import atomic_write_text


def metrics_table(rows: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Rows such as {"real": {...}, "model": {...}, "persistence": {...}} → DataFrame.

    One row per source (the index, in the given order); columns are the union of the metric
    names in first-seen order; missing values are NaN.
    """
    columns: list[str] = []
    for metrics in rows.values():
        columns += [k for k in metrics if k not in columns]
    table = pd.DataFrame.from_dict(
        {name: dict(m) for name, m in rows.items()}, orient="index", columns=columns
    )
    table.index.name = "source"
    return table.apply(pd.to_numeric, errors="coerce")


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(np.asarray(value).tolist())]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: metrics must be numbers, got a bool")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: metrics must be numbers, got {type(value).__name__}") from exc
    return number if math.isfinite(number) else None


def write_metrics_json(path: str | Path, metrics: Mapping[str, Any]) -> Path:
    """Write (nested) metrics as JSON: every value a float, NaN/inf → null; atomic replace.

    Nested mappings (e.g. {"model": {"cross_entropy_nats": ...}}) and lists of numbers are kept.
    """
    text = json.dumps(_jsonable(metrics, "metrics"), indent=2, allow_nan=False)
    return atomic_write_text(path, text + "\n")
