"""A config's derived architecture in words: what `wavenet-eda config show` prints.

from wavenet_lib.configs.describe import describe_config
print("\n".join(describe_config(load_config("configs/quickstart.yaml"))))
"""

from __future__ import annotations

from wavenet_lib.configs.experiment import ExperimentConfig

__all__ = ["describe_config"]


def describe_config(cfg: ExperimentConfig) -> list[str]:
    """The derived architecture of an ExperimentConfig, as aligned `label  value` lines."""
    import torch

    from wavenet_lib.data.recordings import window_steps
    from wavenet_lib.models.wavenet import Wavenet

    m = cfg.model
    spf = m.spectral_frames_per_eda_step
    rf, ctx = m.receptive_field_frames, m.context_size_in_frames
    with torch.device("meta"):  # count parameters without allocating them
        n_params = sum(p.numel() for p in Wavenet(m).parameters())
    covered = (
        f"yes: {rf} >= {ctx} frames (+{rf - ctx} frames excess)"
        if rf >= ctx
        else f"NO: {rf} < {ctx} frames (short by {ctx - rf})"
    )
    rows = [
        ("experiment", cfg.name),
        (
            "frames per EDA step",
            f"{spf} = audio_sample_rate / (eda_sample_rate * mfcc_hop_size) "
            f"= {m.audio_sample_rate} / ({m.eda_sample_rate:g} * {m.mfcc_hop_size})",
        ),
        ("audio samples per frame", f"{m.audio_time_steps_per_spectral_frame} (mfcc_hop_size)"),
        (
            "context",
            f"{m.context_size_in_seconds:g} s = {m.context_size_in_eda_steps} EDA steps = {ctx} frames",
        ),
        ("layers per stack", f"{m.layers_per_stack} (dilations 1 .. {2 ** (m.layers_per_stack - 1)})"),
        ("stacks", f"{m.num_stacks} (stack receptive field {m.stack_receptive_field} frames)"),
        ("residual layers", f"{m.num_layers}"),
        (
            "receptive field",
            f"{rf} frames = {m.receptive_field_seconds:.4g} s = {m.receptive_field_eda_steps} EDA steps",
        ),
        ("context covered", covered),
        ("first full step", f"{m.first_full_step}"),
        (
            "training window",
            f"{window_steps(m, cfg.data.target_steps)} EDA steps "
            f"(first_full_step {m.first_full_step} + target_steps {cfg.data.target_steps})",
        ),
        ("quantization levels", f"{m.quantization_levels}"),
        ("parameters", f"{n_params:,} ({n_params})"),
        ("training memory", _memory_line(cfg)),
    ]
    width = max(len(k) for k, _ in rows)
    return [f"{k:<{width}}  {v}" for k, v in rows]


def _memory_line(cfg: ExperimentConfig) -> str:
    """Estimated training memory of one process (see wavenet_lib.models.memory)."""
    from wavenet_lib.models.memory import training_memory

    est, mib = training_memory(cfg), 1024**2
    return (
        f"about {est.total / mib:,.0f} MiB per process (parameters + AdamW {est.fixed / mib:,.0f} MiB, "
        f"activations {est.activations / mib:,.0f} MiB at batch_size {cfg.train.batch_size})"
    )
