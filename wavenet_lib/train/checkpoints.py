"""Training checkpoints: written atomically, loaded with `torch.load(weights_only=True)`.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (nothing that needs
unpickling of arbitrary classes), marked with ``format = "wavenet-eda-checkpoint"``:

    format, version       what this file is
    step                  optimizer steps taken
    model                 model state dict (DDP / torch.compile wrappers removed)
    optimizer, scheduler  their state dicts (None in a weights-only export)
    config                the ExperimentConfig as `model_dump(mode="json")`
    normalizer            the EDA normalization, `MinMaxNormalizer.to_dict()` (µS ↔ model units), or None
    rng                   per-rank RNG states: torch CPU, CUDA (if any), numpy, python `random`
    train_state           best val loss, validations without improvement, elapsed time, ...
    weight_average        with `train.ema_decay` > 0: {"decay", "n_averaged", "model"}, the moving
                          average of the weights (`train/weight_average.py`); otherwise absent

`save_checkpoint` writes to a temporary file in the target's folder, fsyncs it and renames it
over the target with `os.replace`, so a crash never leaves a half-written `last.pt`: readers
see the old file or the new one. `load_model` rebuilds the model for generation/evaluation.
"""

from __future__ import annotations

import random
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wavenet_lib.atomic_write import atomic_call
from wavenet_lib.configs import ExperimentConfig, WavenetConfig
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.train.weight_average import averaged_state_dict

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "ConfigMismatchError",
    "atomic_torch_save",
    "capture_rng_state",
    "restore_rng_state",
    "unwrap_model",
    "save_checkpoint",
    "read_checkpoint",
    "verify_archive",
    "check_model_config",
    "load_model",
    "model_for_inference",
]

CHECKPOINT_FORMAT = "wavenet-eda-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A file is missing, unreadable, not one of our checkpoints, or from a newer version."""


class ConfigMismatchError(CheckpointError):
    """The checkpoint was trained with a different model config; the message names the fields."""


# --- atomic writes ----------------------------------------------------------------------------
def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """`torch.save` to `path` atomically: temp file in the same folder, fsync, `os.replace`.

    On any failure the temp file is removed and an existing `path` is left untouched.
    """
    return atomic_call(path, lambda fh: torch.save(obj, fh))


# --- RNG state as weights_only-loadable values -------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain values (loadable with weights_only=True)."""
    np_state: Any = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {
            "algorithm": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": None if py_gauss is None else float(py_gauss),
        },
    }
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of `capture_rng_state` (CUDA states are restored only where CUDA is available)."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        cuda_states = list(state["cuda"])[: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["algorithm"],
            npy["keys"].cpu().numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].cpu().tolist()), py["gauss_next"]))


# --- save / read --------------------------------------------------------------------------------
def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare module inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    experiment_config: ExperimentConfig,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    normalizer: MinMaxNormalizer | None = None,
    rng: list[dict[str, Any]] | None = None,
    train_state: Mapping[str, Any] | None = None,
    weight_average: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (see module docstring for its contents).

    Args:
        path: target file, e.g. ``run_dir / "last.pt"``.
        model: the model (wrappers are removed before taking its state dict).
        experiment_config: the experiment this model belongs to.
        step: optimizer steps taken.
        optimizer, scheduler: saved for resuming; None for a weights-only file.
        normalizer: the EDA normalization (stored as `to_dict()`).
        rng: RNG states, one `capture_rng_state()` per rank (default: this process's).
        train_state: plain values (best val loss, early-stopping counters, elapsed time, ...).
        weight_average: `WeightAverage.state_dict()` when the run averages its weights.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "step": int(step),
        "model": unwrap_model(model).state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "config": experiment_config.model_dump(mode="json"),
        "normalizer": None if normalizer is None else normalizer.to_dict(),
        "rng": rng if rng is not None else [capture_rng_state()],
        "train_state": dict(train_state or {}),
        "torch_version": str(torch.__version__),
    }
    if weight_average is not None:
        payload["weight_average"] = dict(weight_average)
    return atomic_torch_save(payload, path)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint with `torch.load(weights_only=True)`.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is not a wavenet-eda checkpoint, is damaged, or is from a
            newer version of this library.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a wavenet-eda checkpoint (not a file written by torch.save)")
    verify_archive(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        reason = _short_reason(exc)
        raise CheckpointError(
            f"{path}: not a wavenet-eda checkpoint (torch.load with weights_only=True failed: {reason})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a wavenet-eda checkpoint (a torch file without the "
            f"'format: {CHECKPOINT_FORMAT}' marker; was it written by wavenet_lib's trainer?)"
        )
    version = payload.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {version!r} is newer than this library reads "
            f"({CHECKPOINT_VERSION}); upgrade wavenet_lib"
        )
    missing = [k for k in ("step", "model", "config") if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: damaged wavenet-eda checkpoint, missing {', '.join(missing)}")
    return payload


def verify_archive(path: str | Path) -> None:
    """Check every member's CRC-32 in a torch.save zip archive (reads the whole file once).

    Raises:
        CheckpointError: a member is damaged (a flipped bit, a truncated copy), naming it.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint, the archive cannot be read ({exc})") from None
    if bad is not None:
        raise CheckpointError(
            f"{path}: damaged checkpoint, checksum mismatch in {bad} (a corrupted or partial copy); "
            "use another checkpoint, e.g. best.pt or a backup"
        )


def _short_reason(exc: Exception) -> str:
    """The reason in a torch.load error: the unpickler's complaint's first sentence, whole."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text[text.index(marker) + len(marker) :]
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    first = line.split(". ")[0].rstrip(".")
    return first if len(first) <= 300 else first[:297] + "..."


def _experiment_config(payload: Mapping[str, Any], path: Path) -> ExperimentConfig:
    from pydantic import ValidationError

    try:
        return ExperimentConfig.model_validate(payload["config"])
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "<root>" for e in exc.errors())
        raise CheckpointError(
            f"{path}: the experiment config stored in the checkpoint no longer validates ({fields})"
        ) from None


def check_model_config(saved: Mapping[str, Any], current: WavenetConfig, path: str | Path = "") -> None:
    """Raise ConfigMismatchError naming every model field whose value differs from `saved`.

    Args:
        saved: the checkpoint's ``config["model"]`` (a plain dict).
        current: the model config about to be used.
        path: the checkpoint file, for the message.
    """
    now = current.model_dump(mode="json")
    # Fill fields the checkpoint omits with their defaults, so adding a defaulted field later
    # does not break old checkpoints.
    try:
        then = WavenetConfig.model_validate(dict(saved)).model_dump(mode="json")
    except Exception:
        then = dict(saved)
    keys = sorted(set(now) | set(then))
    diffs = [
        f"{k} (checkpoint: {then.get(k)!r}, config: {now.get(k)!r})"
        for k in keys
        if then.get(k) != now.get(k)
    ]
    if diffs:
        where = f" {path}" if str(path) else ""
        raise ConfigMismatchError(
            f"cannot use checkpoint{where}: its model config differs in {len(diffs)} field(s): "
            + "; ".join(diffs)
            + ". Use the config the checkpoint was trained with, or start a new run without --resume."
        )


def load_model(
    checkpoint_path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, ExperimentConfig, MinMaxNormalizer | None]:
    """Rebuild the trained model for generation or evaluation.

    A run that averaged its weights (`train.ema_decay`) is loaded with the average, the weights
    it was validated with; otherwise with the trained weights.

    Returns:
        (model in eval mode on `map_location`, its ExperimentConfig, the EDA normalizer (None if
        the run had none)).

    Raises:
        FileNotFoundError, CheckpointError: see `read_checkpoint`.
    """
    from wavenet_lib.models.wavenet import Wavenet

    path = Path(checkpoint_path)
    payload = read_checkpoint(path, map_location=map_location)
    cfg = _experiment_config(payload, path)
    model = Wavenet(cfg.model)
    averaged = averaged_state_dict(payload)
    try:
        model.load_state_dict(payload["model"] if averaged is None else averaged)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{path}: model weights do not fit the stored model config: {first}") from None
    model.to(map_location).eval()
    stored = payload.get("normalizer")
    try:
        normalizer = None if stored is None else MinMaxNormalizer.from_dict(stored)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the stored EDA normalization is unusable: {exc}") from None
    return model, cfg, normalizer


def model_for_inference(
    model_or_checkpoint: nn.Module | str | Path,
    config: ExperimentConfig | None = None,
    normalizer: MinMaxNormalizer | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, ExperimentConfig, MinMaxNormalizer | None]:
    """A model with its experiment config and EDA normalization, from a checkpoint or a model.

    The one door of `generate_from_audio`, `screen_stimuli` and `attribute_file`: a checkpoint
    path gives all three (`normalizer`, when passed, overrides the stored one); a model (a DDP
    wrapper is unwrapped) needs `config`, and keeps `normalizer` as passed.

    Raises:
        FileNotFoundError, CheckpointError: a bad checkpoint path.
        ValueError: a model without `config`.
    """
    if isinstance(model_or_checkpoint, (str, Path)):
        model, stored_config, stored = load_model(model_or_checkpoint, map_location=device)
        return model, stored_config, normalizer if normalizer is not None else stored
    if config is None:
        raise ValueError("pass `config` (the ExperimentConfig) together with a model")
    return unwrap_model(model_or_checkpoint).to(device), config, normalizer
