"""Teacher-forced scoring: one path for the model and its baselines.

Every row of a metrics table comes from the same code, so the table shows what the audio adds:

* **model** — teacher-forced log-probabilities of the trained model on a whole recording;
* **audio_blind** — the same model fed a constant "silent" MFCC (`silent_mfcc_like`): what the
  EDA history alone predicts;
* **persistence** — no model at all: the next bin is the previous bin plus a discrete-Laplace jump
  (`persistence_log_probs`), the classic "tomorrow looks like today" baseline.

All three produce log-probabilities `(B, Q, C_out, T)` and `score_log_probs` turns log-probs +
target bins into cross-entropy (nats per step) and accuracy. Steps before `first_step` (by default
`config.first_full_step`, the first step whose receptive field lies inside the recording) are
ignored for all rows alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from wavenet_lib.data.features import silent_mfcc_like
from wavenet_lib.models.quantization import START_VALUE, dequantize, quantize
from wavenet_lib.models.wavenet import Wavenet

# Floor on the persistence jump scale (bins): a perfectly constant training trace would otherwise
# give a zero scale and infinite cross-entropy on the first jump of any other trace.
MIN_PERSISTENCE_SCALE_BINS = 1e-3


# ======================================================================================
# Teacher-forced scoring: one function for every row
# ======================================================================================


def _as_batch(eda_norm: torch.Tensor | np.ndarray, out_channels: int | None = None) -> torch.Tensor:
    """(T,), (C, T) or (B, C, T) → (B, C, T) float tensor."""
    x = torch.as_tensor(eda_norm)
    if x.dim() == 1:
        x = x[None, None]
    elif x.dim() == 2:
        x = x[None]
    if x.dim() != 3 or (out_channels is not None and x.shape[1] != out_channels):
        raise ValueError(
            f"EDA must be (T,), (C_out, T) or (B, C_out, T), got {tuple(torch.as_tensor(eda_norm).shape)}"
        )
    return x.float()


def eda_prev_from_targets(targets: torch.Tensor, levels: int) -> torch.Tensor:
    """Teacher-forcing input from target bins: (B, C, T) int64 → (B, C, T) float.

    `eda_prev[..., 0] = START_VALUE` (0.0), `eda_prev[..., t] = dequantize(targets[..., t-1])`:
    the same dequantized values that generation feeds back.
    """
    prev = torch.full(targets.shape, START_VALUE, dtype=torch.float32, device=targets.device)
    prev[..., 1:] = dequantize(targets[..., :-1], levels)
    return prev


@torch.no_grad()
def model_log_probs(
    model: Wavenet,
    mfcc: torch.Tensor,
    eda_norm: torch.Tensor | np.ndarray,
    chunk_steps: int | None = None,
) -> torch.Tensor:
    """Teacher-forced log-softmax of the model over a whole recording.

    Args:
        model: the Wavenet (put in eval mode for the call, restored after).
        mfcc: (C_in, T*spf, M) or (B, C_in, T*spf, M) features.
        eda_norm: (T,), (C_out, T) or (B, C_out, T) EDA in normalized units [-1, 1].
        chunk_steps: if given, run the forward over chunks of this many steps, each with
            `first_full_step` steps of history in front, which gives exactly the full forward's
            logits (the network is causal with a finite receptive field; the EDA memory,
            which reaches back further, is computed once over the recording) in bounded memory.

    Returns:
        log-probabilities (B, Q, C_out, T), float32 on the CPU.
    """
    cfg = model.config
    q, spf = cfg.quantization_levels, cfg.spectral_frames_per_eda_step
    mfcc = mfcc[None] if mfcc.dim() == 3 else mfcc
    param = next(model.parameters())
    targets = quantize(_as_batch(eda_norm, cfg.out_channels), q)
    eda_prev = eda_prev_from_targets(targets, q).to(param.device, param.dtype)
    mfcc = mfcc.to(param.device, param.dtype)
    steps = eda_prev.shape[-1]
    chunk = steps if chunk_steps is None else max(1, chunk_steps)
    history = cfg.first_full_step
    was_training = model.training
    model.eval()
    try:
        memory = model.memory_of(eda_prev) if model.reads_memory else None
        parts = []
        for start in range(0, steps, chunk):
            stop = min(steps, start + chunk)
            lo = max(0, start - history)
            chunk_memory = None if memory is None else memory[..., lo:stop]
            logits = model(mfcc[:, :, lo * spf : stop * spf], eda_prev[..., lo:stop], eda_memory=chunk_memory)
            parts.append(torch.log_softmax(logits[..., start - lo :].float(), dim=1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(parts, dim=-1)


def score_log_probs(log_probs: torch.Tensor, targets: torch.Tensor, first_step: int = 0) -> dict[str, float]:
    """Cross-entropy (nats per step) and accuracy of log-probabilities against target bins.

    Args:
        log_probs: (B, Q, C_out, T) log-probabilities (normalized over Q).
        targets: (B, C_out, T) int64 bin indices.
        first_step: steps t < first_step are ignored.

    Returns:
        {"cross_entropy_nats", "accuracy", "n_steps"}; the mean over batch, channels and scored steps.
    """
    lp = log_probs[..., first_step:]
    tg = targets[..., first_step:].to(lp.device)
    n = tg.numel()
    if n == 0:
        return {"cross_entropy_nats": float("nan"), "accuracy": float("nan"), "n_steps": 0.0}
    picked = lp.gather(1, tg.unsqueeze(1)).squeeze(1)  # (B, C_out, T')
    accuracy = (lp.argmax(dim=1) == tg).double().mean()
    return {
        "cross_entropy_nats": float(-picked.double().mean()),
        "accuracy": float(accuracy),
        "n_steps": float(n),
    }


def teacher_forced_metrics(
    model: Wavenet,
    mfcc: torch.Tensor,
    eda_norm: torch.Tensor | np.ndarray,
    first_step: int | None = None,
    chunk_steps: int | None = None,
) -> dict[str, float]:
    """Model cross-entropy (nats/step) and accuracy on one recording, teacher-forced.

    Args:
        mfcc: (C_in, T*spf, M) features of the whole recording (a batch dimension is allowed).
        eda_norm: (C_out, T) (or (T,)) EDA in normalized units.
        first_step: steps before it are not scored; None → `model.config.first_full_step`.
        chunk_steps: see `model_log_probs`.
    """
    cfg = model.config
    first = cfg.first_full_step if first_step is None else first_step
    targets = quantize(_as_batch(eda_norm, cfg.out_channels), cfg.quantization_levels)
    return score_log_probs(model_log_probs(model, mfcc, eda_norm, chunk_steps), targets, first)


# ======================================================================================
# Audio-blind baseline
# ======================================================================================


def audio_blind_metrics(
    model: Wavenet,
    mfcc: torch.Tensor,
    eda_norm: torch.Tensor | np.ndarray,
    first_step: int | None = None,
    silent_mfcc: torch.Tensor | None = None,
    chunk_steps: int | None = None,
) -> dict[str, float]:
    """`teacher_forced_metrics` of the same model with the audio replaced by silence.

    `silent_mfcc` defaults to `silent_mfcc_like(mfcc, model.config.num_mfccs)`; any tensor of the
    mfcc's shape can be passed.
    """
    silent = silent_mfcc_like(mfcc, model.config.num_mfccs) if silent_mfcc is None else silent_mfcc
    return teacher_forced_metrics(model, silent, eda_norm, first_step, chunk_steps)


# ======================================================================================
# Persistence baseline
# ======================================================================================


def _bin_deltas(
    traces: Sequence[torch.Tensor | np.ndarray] | torch.Tensor | np.ndarray, levels: int
) -> np.ndarray:
    """Step-to-step changes of quantized traces, in bins (int64), pooled over traces/channels."""
    if isinstance(traces, (np.ndarray, torch.Tensor)):
        traces = [traces]
    deltas = []
    for trace in traces:
        bins = np.asarray(quantize(np.asarray(trace, dtype=np.float64), levels))
        deltas.append(np.diff(bins, axis=-1).ravel())
    return np.concatenate(deltas) if deltas else np.zeros(0, dtype=np.int64)


def fit_persistence_scale(
    traces: Sequence[torch.Tensor | np.ndarray] | torch.Tensor | np.ndarray, levels: int
) -> float:
    """Maximum-likelihood jump scale (bins) of the persistence baseline.

    The baseline models the next bin as previous bin + D with D discrete-Laplace,
    P(D = d) = tanh(a/2) exp(-a |d|) (scipy.stats.dlaplace). Its maximum-likelihood parameter has
    the closed form a = arcsinh(1 / mean|d|); we return the scale 1/a, floored at
    `MIN_PERSISTENCE_SCALE_BINS`.

    Args:
        traces: normalized EDA, one array (…, T) or a sequence of them — the training recordings
            (or the evaluated recording itself when no training data is at hand).
        levels: quantization levels.
    """
    deltas = _bin_deltas(traces, levels)
    if deltas.size == 0:
        raise ValueError("need at least one trace with two or more steps to fit the persistence scale")
    mean_abs = float(np.abs(deltas).mean())
    if mean_abs == 0.0:
        return MIN_PERSISTENCE_SCALE_BINS
    return max(1.0 / math.asinh(1.0 / mean_abs), MIN_PERSISTENCE_SCALE_BINS)


def persistence_log_probs(
    eda_norm: torch.Tensor | np.ndarray, levels: int, scale_bins: float
) -> torch.Tensor:
    """Log-probabilities (B, Q, C_out, T) of the persistence baseline.

    At step t the distribution is centred on the previous step's bin (the start value 0.0 at t = 0,
    as the model sees it) with discrete-Laplace jumps of scale `scale_bins` (see
    `fit_persistence_scale`); mass beyond either end folds into the edge bin, as `quantize` clips.

    Written out in log space rather than with scipy.stats.dlaplace because the folded edge bins need
    log tail masses far out in the tails, where dlaplace's cdf/sf underflow to log(0) = -inf.
    """
    targets = quantize(_as_batch(eda_norm), levels)
    prev = quantize(eda_prev_from_targets(targets, levels), levels)  # (B, C, T) centre bins
    a = 1.0 / max(float(scale_bins), MIN_PERSISTENCE_SCALE_BINS)
    k = torch.arange(levels, dtype=torch.float64).view(1, levels, 1, 1)
    d = k - prev.unsqueeze(1).double()  # (B, Q, C, T) jump to each bin
    log_norm = math.log(math.tanh(a / 2))
    log_pmf = log_norm - a * d.abs()

    def log_tail(j: torch.Tensor) -> torch.Tensor:
        # log P(D >= j) = log P(D <= -j): for j >= 1 it is -a j - log(1 + e^-a); else log(1 - P(D >= 1 - j)).
        upper = -a * j - math.log1p(math.exp(-a))
        lower = torch.log1p(-torch.exp(-a * (1 - j) - math.log1p(math.exp(-a))))
        return torch.where(j >= 1, upper, lower)

    log_probs = log_pmf.clone()
    log_probs[:, 0] = log_tail(-d[:, 0])  # bin 0 takes all jumps <= its offset
    log_probs[:, -1] = log_tail(d[:, -1])  # bin Q-1 takes all jumps >= its offset
    return log_probs.float()


def persistence_metrics(
    eda_norm: torch.Tensor | np.ndarray,
    levels: int,
    scale_bins: float | None = None,
    train_traces: Sequence[torch.Tensor | np.ndarray] | None = None,
    first_step: int = 0,
) -> dict[str, float]:
    """Cross-entropy and accuracy of the persistence baseline on one recording.

    The jump scale is `scale_bins` if given, else fitted on `train_traces` if given, else on the
    recording's own deltas (an optimistic baseline: it has seen the test deltas). Pass the model's
    `config.first_full_step` as `first_step` so the same steps are scored as for the model.
    """
    if scale_bins is None:
        scale_bins = fit_persistence_scale(train_traces if train_traces else eda_norm, levels)
    targets = quantize(_as_batch(eda_norm), levels)
    metrics = score_log_probs(persistence_log_probs(eda_norm, levels, scale_bins), targets, first_step)
    return metrics | {"scale_bins": float(scale_bins)}


def evaluate_recording(
    model: Wavenet,
    mfcc: torch.Tensor,
    eda_norm: torch.Tensor | np.ndarray,
    persistence_scale_bins: float | None = None,
    first_step: int | None = None,
    chunk_steps: int | None = None,
) -> dict[str, dict[str, float]]:
    """The teacher-forced rows of the table for one recording, scored on the same steps.

    Returns {"model": ..., "audio_blind": ..., "persistence": ...}, each as `score_log_probs` gives.
    """
    first = model.config.first_full_step if first_step is None else first_step
    return {
        "model": teacher_forced_metrics(model, mfcc, eda_norm, first, chunk_steps),
        "audio_blind": audio_blind_metrics(model, mfcc, eda_norm, first, chunk_steps=chunk_steps),
        "persistence": persistence_metrics(
            eda_norm, model.config.quantization_levels, persistence_scale_bins, first_step=first
        ),
    }
