"""How much memory a config needs, estimated from the config alone, before anything is allocated.

Training holds, per process: the parameters with their gradients and AdamW's two moments
(4 × 4 bytes per parameter), and the activations autograd keeps for the backward pass. Per
residual layer and MFCC frame those are about 9 gate-width tensors (dilated conv, condition
conv, their sum, tanh, sigmoid, product, dropout), two residual-width and one skip-width
tensor and the conditioning signal, in float32; the post-net adds 3 post-net widths per frame
and the head Q × C_out logits (three copies: logits, softmax, gradient) per EDA step. It is a
rough estimate (0.7 to 1.4 times the peak RSS increase of one CPU training step, measured for
the quickstart config at batch 16 and 64 and e4_4hz at batch 8), enough to refuse a config
that cannot run (`hidden_channels: 100000` asks for hundreds of GB) with a message naming the
field, instead of dying in the allocator or swapping.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from wavenet_lib.configs import ExperimentConfig, WavenetConfig

__all__ = [
    "MemoryEstimate",
    "ConfigTooLargeError",
    "parameter_count",
    "training_memory",
    "generation_memory",
    "available_memory",
    "check_fits",
]

_F32 = 4
_GIB = 1024**3


class ConfigTooLargeError(ValueError):
    """The config needs more memory than the machine has; the message names the field to lower."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a config needs: `fixed` (parameters, optimizer state) + `activations`.

    Attributes:
        fixed: parameters (and, for training, gradients and AdamW moments), bytes.
        activations: working tensors for one batch, bytes.
        fixed_fields: config fields that set `fixed` (for the message).
        activation_fields: config fields that set `activations`.
    """

    fixed: int
    activations: int
    fixed_fields: str
    activation_fields: str

    @property
    def total(self) -> int:
        return self.fixed + self.activations


def parameter_count(model: WavenetConfig) -> int:
    """Number of parameters of `Wavenet(model)`, counted on the meta device (nothing allocated)."""
    from wavenet_lib.models.wavenet import Wavenet

    with torch.device("meta"):
        return sum(p.numel() for p in Wavenet(model).parameters())


def _per_frame_layer(m: WavenetConfig) -> int:
    return 9 * m.gate_width + 2 * m.hidden_channels + m.skip_width + m.condition_channels


def _widths(m: WavenetConfig) -> str:
    return "model.hidden_channels, gate_channels, skip_channels, postnet_channels or quantization_levels"


def training_memory(cfg: ExperimentConfig, processes: int = 1) -> MemoryEstimate:
    """Per-process memory to train `cfg` with `processes` processes sharing the global batch."""
    m = cfg.model
    batch = max(1, cfg.train.batch_size // processes)
    steps = m.first_full_step + cfg.data.target_steps
    frames = steps * m.spectral_frames_per_eda_step
    per_frame = (
        m.num_layers * _per_frame_layer(m) + 3 * m.postnet_width + m.in_channels * m.features_per_frame
    )
    per_step = 3 * m.quantization_levels * m.out_channels
    return MemoryEstimate(
        fixed=4 * _F32 * parameter_count(m),
        activations=_F32 * batch * (frames * per_frame + steps * per_step),
        fixed_fields=_widths(m),
        activation_fields="train.batch_size, data.target_steps or model.context_size_in_seconds",
    )


def generation_memory(model: WavenetConfig, batch: int, n_steps: int) -> MemoryEstimate:
    """Memory to generate `n_steps` EDA steps for `batch` samples at once (fast path)."""
    frames = n_steps * model.spectral_frames_per_eda_step
    state = (
        model.num_layers * model.stack_receptive_field * (model.hidden_channels + model.condition_channels)
    )
    per_sample = _F32 * (
        frames * model.in_channels * model.features_per_frame + state + 4 * n_steps * model.out_channels
    )
    return MemoryEstimate(
        fixed=_F32 * parameter_count(model),
        activations=batch * per_sample,
        fixed_fields=_widths(model),
        activation_fields="the number of samples or the audio duration",
    )


def available_memory(device: torch.device | str = "cpu") -> int:
    """Total memory of `device` in bytes: the GPU's for CUDA, else the machine's RAM."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(device.index or 0).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # not POSIX: assume a laptop-sized 16 GiB
        return 16 * _GIB


def check_fits(estimate: MemoryEstimate, available: int, what: str, where: str) -> None:
    """Raise `ConfigTooLargeError` when `estimate.total` exceeds `available` bytes.

    Args:
        estimate: from `training_memory` / `generation_memory`.
        available: bytes the device has (`available_memory`).
        what: the task, e.g. "training cli-tiny".
        where: the device, e.g. "this machine's RAM".
    """
    if estimate.total <= available:
        return
    bigger = "fixed" if estimate.fixed >= estimate.activations else "activations"
    fields = estimate.fixed_fields if bigger == "fixed" else estimate.activation_fields
    raise ConfigTooLargeError(
        f"{what} needs about {estimate.total / _GIB:.3g} GiB (parameters and optimizer state "
        f"{estimate.fixed / _GIB:.3g} GiB, activations {estimate.activations / _GIB:.3g} GiB) but "
        f"{where} has {available / _GIB:.3g} GiB; lower {fields}"
    )
