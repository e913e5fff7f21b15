"""Sampling settings against realism: one row of realism metrics per `Wavenet.generate` setting.

`realism_sweep` generates samples for held-out recordings under each setting (for example
temperatures, or any other keyword `Wavenet.generate` accepts) and measures them with
`wavenet_lib.evaluate.realism` against the real traces, so a notebook can show how a sampling
knob moves the SCR statistics, the one-step changes and the two-sample AUC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from wavenet_lib.configs import ExperimentConfig
from wavenet_lib.data.bundle import DataBundle
from wavenet_lib.evaluate.assessment import sample_many_eda_units, units_to_us
from wavenet_lib.evaluate.realism import REALISM_METRICS, realism_by_recording
from wavenet_lib.generation import batch_groups
from wavenet_lib.models.wavenet import Wavenet

__all__ = ["setting_label", "realism_sweep"]


def setting_label(setting: Mapping[str, Any]) -> str:
    """A row label for a setting: "temperature=0.8, top_p=0.9"; "defaults" for {}."""
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "defaults"


def realism_sweep(
    model: Wavenet,
    experiment: ExperimentConfig,
    bundle: DataBundle,
    settings: Sequence[Mapping[str, Any]],
    split: str = "test",
    recording_ids: Sequence[str] | None = None,
    samples: int = 4,
    seed: int = 0,
    two_sample: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Realism metrics of the model's samples under each generation setting, pooled over recordings.

    Args:
        model: the trained Wavenet.
        experiment, bundle: the experiment and its data (`build_datasets`).
        settings: keyword arguments for `Wavenet.generate`, one dict per row (e.g.
            [{"temperature": 0.7}, {"temperature": 1.0}]); passed through unchanged, so new
            sampling controls need no change here; each applies on top of the experiment's
            `sampling` section, so {} is the default sampling the pipeline and the CLI use.
        split: which split's recordings (ignored when `recording_ids` is given).
        recording_ids: the recordings to generate for (default: all of `split`).
        samples: samples per recording and setting, each primed with `first_full_step` real
            steps that are left out of the metrics.
        seed: every setting draws from the same seeds (recording i uses seed + i).
        two_sample: also run the classifier two-sample test (the slowest part).
        progress: a tqdm bar over settings × recordings.

    Returns:
        DataFrame indexed by "real" then `setting_label(setting)` per setting; columns
        `REALISM_METRICS` (see `wavenet_lib.evaluate.realism`); "real" has no spectral distance or
        AUC (they compare with it).
    """
    ids = list(bundle.splits[split] if recording_ids is None else recording_ids)
    if not ids:
        raise ValueError(f"no recordings to sweep over (split {split!r} is empty)")
    if not settings:
        raise ValueError("settings is empty: give at least one dict of Wavenet.generate arguments")
    rate = model.config.eda_sample_rate
    prime = model.config.first_full_step
    loaded = {rid: bundle.load(rid, experiment) for rid in ids}
    real = {rid: np.asarray(rec.eda_us[0], dtype=np.float64)[prime:] for rid, rec in loaded.items()}
    model.eval()
    rows: dict[str, dict[str, float]] = {}
    bar = tqdm(total=len(settings) * len(ids), desc="realism sweep", unit="rec", disable=not progress)
    recs = list(loaded.values())
    for setting in settings:
        knobs = experiment.sampling.model_dump() | dict(setting)  # on top of the config's sampling
        generated = {}
        for group in batch_groups([rec.n_steps for rec in recs], samples):  # shared batches, own seeds
            generators = [torch.Generator().manual_seed(seed + i) for i in group]
            units = sample_many_eda_units(
                model, [recs[i] for i in group], samples, prime, generators, **knobs
            )
            for i, u in zip(group, units, strict=True):
                generated[ids[i]] = units_to_us(recs[i], u[:, 0])[:, prime:]
            bar.update(len(group))
        pooled, _ = realism_by_recording(real, {"generated": generated}, rate, two_sample, seed)
        rows.setdefault("real", pooled["real"])
        rows[setting_label(setting)] = pooled["generated"]
    bar.close()
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(REALISM_METRICS))
    table.index.name = "setting"
    return table
