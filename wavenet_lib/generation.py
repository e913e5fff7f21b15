"""Generate EDA for an audio file with a trained checkpoint, in µS, and write it as CSV.

    result = generate_from_audio("runs/quickstart/best.pt", "song.wav", samples=3, seed=0)
    write_eda_csv(result, "song_eda.csv")            # time_s, eda_us_s0, eda_us_s1, eda_us_s2
    write_e4_csv(result, "EDA.csv")                  # Empatica E4 layout

The model works in normalized units on [-1, 1]; `eda_to_microsiemens` maps them back with the
normalization stored in the checkpoint (a `MinMaxNormalizer`). With per-recording
normalization, the stored one is the typical training recording's range (median low and high),
so generated µS are on the scale of a typical training recording.

Start level: without a prime, every sample starts from model unit 0, the middle of that
typical range ((lo + hi) / 2 µS of the stored normalization), with no history. With a prime
(`prime=`, the listener's own EDA before the stimulus; an array in µS at the model's rate or a
file read by `wavenet_lib.data.prime.read_prime`), its last receptive field of steps is fed to
the model as teacher-forced history over silent audio before the stimulus starts, so samples
continue from that person's level and recent trend; the µS scale is set as in
`wavenet_lib.data.prime.prime_normalizer`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from wavenet_lib.atomic_write import atomic_write
from wavenet_lib.configs import GUIDANCE_REFERENCES, MAX_AUDIO_GUIDANCE, ExperimentConfig
from wavenet_lib.data.normalization import MinMaxNormalizer

if TYPE_CHECKING:
    from wavenet_lib.models.wavenet import Wavenet

__all__ = [
    "MIN_TEMPERATURE",
    "MAX_SAMPLES_PER_BATCH",
    "check_sampling",
    "GeneratedEDA",
    "eda_to_microsiemens",
    "generate_from_audio",
    "generate_from_audio_files",
    "batch_groups",
    "draw_batch",
    "finite_audio_features",
    "column_names",
    "write_eda_csv",
    "write_e4_csv",
]


# Below this the softmax of logits / temperature overflows float32 for ordinary logits, and the
# draw is already the most likely level: use greedy decoding instead.
MIN_TEMPERATURE = 1e-3
# Rows generated together: more samples of a file are drawn in consecutive batches of this
# size, so memory stays bounded whatever `samples` is (the random stream continues from batch
# to batch); clips of one length share batches up to it (`batch_groups`). On a 2-core CPU a
# step of 96 rows of the quickstart model costs about 6x a step of 8 (12 recordings x 8
# samples: 3.5 s in one batch, 7.3 s one recording at a time).
MAX_SAMPLES_PER_BATCH = 256


def check_sampling(
    samples: int,
    temperature: float | None,
    greedy: bool,
    top_p: float | None = None,
    min_prob: float | None = None,
    audio_guidance: float | None = None,
    guidance_reference: str | None = None,
) -> None:
    """The one check of the sampling arguments (library and command line).

    `None` for temperature, top_p, min_prob, audio_guidance or guidance_reference means "the
    config's `sampling` section" (checked there).

    Raises:
        ValueError: samples < 1, top_p outside (0, 1], min_prob outside [0, 1), audio_guidance
            outside [0, MAX_AUDIO_GUIDANCE], a guidance_reference not in GUIDANCE_REFERENCES,
            or (unless greedy) a temperature that is not a finite number >= MIN_TEMPERATURE.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if top_p is not None and not (math.isfinite(top_p) and 0.0 < top_p <= 1.0):
        raise ValueError(f"top-p must be in (0, 1], got {top_p:g}")
    if min_prob is not None and not (math.isfinite(min_prob) and 0.0 <= min_prob < 1.0):
        raise ValueError(f"min-prob must be in [0, 1), got {min_prob:g}")
    if audio_guidance is not None and not (
        math.isfinite(audio_guidance) and 0.0 <= audio_guidance <= MAX_AUDIO_GUIDANCE
    ):
        raise ValueError(f"audio-guidance must be in [0, {MAX_AUDIO_GUIDANCE:g}], got {audio_guidance:g}")
    if guidance_reference is not None and guidance_reference not in GUIDANCE_REFERENCES:
        raise ValueError(
            f"guidance-reference must be one of {', '.join(GUIDANCE_REFERENCES)}, got {guidance_reference!r}"
        )
    if greedy or temperature is None:
        return
    if not math.isfinite(temperature) or temperature < MIN_TEMPERATURE:
        raise ValueError(
            f"temperature must be a finite number >= {MIN_TEMPERATURE:g}, got {temperature:g}; "
            "use greedy decoding (--greedy) for the most likely level at every step"
        )


@dataclass
class GeneratedEDA:
    """Generated EDA for one audio file.

    Attributes:
        eda_units: (samples, out_channels, T) in normalized model units.
        eda_us: (samples, out_channels, T) in µS, or None when no normalization was stored.
        sample_rate: EDA steps per second.
        times_s: (T,) start time of each step in seconds (step t covers [t, t+1) / sample_rate).
        seed: the sampling seed (None for greedy decoding).
        features: (C_in, frames, M) the model-ready features the samples were drawn from (on
            the model's device; with a prime, its silent frames first), for statistics that
            re-run the model on the samples (`wavenet_lib.evoked`).
        prime_units: (C_out, P) the prime in normalized units, teacher-forced before the
            stimulus (not part of `eda_units`), or None.
        normalizer: the normalization of `eda_us` (the primed one with a prime), or None.
    """

    eda_units: np.ndarray
    eda_us: np.ndarray | None
    sample_rate: float
    times_s: np.ndarray
    seed: int | None
    features: torch.Tensor | None = None
    prime_units: np.ndarray | None = None
    normalizer: MinMaxNormalizer | None = None

    @property
    def values(self) -> np.ndarray:
        """µS when available, else normalized units: (samples, out_channels, T)."""
        return self.eda_us if self.eda_us is not None else self.eda_units

    @property
    def unit(self) -> str:
        return "us" if self.eda_us is not None else "units"


def eda_to_microsiemens(
    eda_units: np.ndarray | torch.Tensor, normalizer: MinMaxNormalizer | None
) -> np.ndarray | torch.Tensor:
    """Map EDA in normalized model units back to µS with the normalization stored in a checkpoint.

    Args:
        eda_units: any shape, e.g. the (B, out_channels, T) output of `Wavenet.generate`.
        normalizer: the EDA normalization, e.g. the third value of `load_model`.

    Raises:
        ValueError: no normalization (None).
    """
    if normalizer is None:
        raise ValueError("no EDA normalization stored with this model; cannot convert units to µS")
    return normalizer.denormalize(eda_units)


def generate_from_audio(
    model_or_checkpoint: nn.Module | str | Path,
    audio_path: str | Path,
    samples: int = 1,
    seed: int | None = 0,
    temperature: float | None = None,
    greedy: bool = False,
    *,
    top_p: float | None = None,
    min_prob: float | None = None,
    audio_guidance: float | None = None,
    guidance_reference: str | None = None,
    config: ExperimentConfig | None = None,
    normalizer: MinMaxNormalizer | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    start_s: float = 0.0,
    n_steps: int | None = None,
    allow_short: bool = False,
    prime: np.ndarray | str | Path | None = None,
    prime_rate: float | None = None,
) -> GeneratedEDA:
    """Sample `samples` EDA traces for the audio file, one step at a time.

    Args:
        model_or_checkpoint: a checkpoint path (model, config and normalization come from it) or
            a Wavenet (then pass `config`, and `normalizer` for µS).
        audio_path: wav/flac/ogg/mp3; MFCCs are computed and standardized as for training.
        samples: independent traces to draw (in batches of at most MAX_SAMPLES_PER_BATCH).
        seed: seeds the sampling generator (reproducible draws).
        temperature: softmax temperature (finite, >= MIN_TEMPERATURE); None → the config's
            `sampling.temperature`.
        greedy: take the most likely level each step (then all samples are equal).
        top_p: nucleus sampling in (0, 1]; None → the config's `sampling.top_p`.
        min_prob: epsilon sampling in [0, 1); None → the config's `sampling.min_prob`.
        audio_guidance: w in [0, MAX_AUDIO_GUIDANCE], the audio's effect over the guidance
            reference amplified (`Wavenet.generate`); None → the config's `sampling.audio_guidance`.
        guidance_reference: "silent" or "running_mean" (`Wavenet.generate`); None → the
            config's `sampling.guidance_reference`.
        config: the experiment config when a model is passed.
        normalizer: the EDA normalization when a model is passed.
        device: where to run the model.
        progress: tqdm progress bar over steps.
        start_s: audio time of the first EDA step.
        n_steps: steps to generate (default: the whole audio).
        allow_short: generate even when the audio is shorter than the model's receptive field
            (every step then sees only part of the context it was trained with).
        prime: the listener's EDA before the stimulus: (P,) or (out_channels, P) µS at the
            model's EDA rate, or a file (E4 `EDA.csv` or CSV, any rate, resampled). Needs the
            normalization (stored in checkpoints). Default None: start at model unit 0.
        prime_rate: the prime file's rate when it has no time column (checked against the
            rate a file states).

    Raises:
        FileNotFoundError, CheckpointError: a bad checkpoint path.
        DataError: the audio is missing, unreadable, shorter than one EDA step, gives
            non-finite features, or (unless `allow_short`) is shorter than the receptive field.
        ValueError: see `check_sampling` (samples, temperature, top_p, min_prob, the guidance).
    """
    from wavenet_lib.train.checkpoints import model_for_inference

    check_sampling(samples, temperature, greedy, top_p, min_prob, audio_guidance, guidance_reference)
    loaded, config, normalizer = model_for_inference(model_or_checkpoint, config, normalizer, device)
    model = cast("Wavenet", loaded)
    knobs = _sampling(config, temperature, greedy, top_p, min_prob, audio_guidance, guidance_reference)
    mfcc, prime_units, normalizer = _prepared(
        model, config, audio_path, normalizer, device, start_s, n_steps, allow_short, prime, prime_rate
    )
    generator = None
    if seed is not None and not greedy:
        generator = torch.Generator(device=mfcc.device).manual_seed(int(seed))
    units = _draw_alone(model, mfcc, prime_units, samples, generator, knobs, progress)
    return _generated(units, mfcc, prime_units, normalizer, config, None if greedy else seed)


def generate_from_audio_files(
    model_or_checkpoint: nn.Module | str | Path,
    audio_paths: Sequence[str | Path],
    samples: int = 1,
    seed: int | None = 0,
    temperature: float | None = None,
    greedy: bool = False,
    *,
    top_p: float | None = None,
    min_prob: float | None = None,
    audio_guidance: float | None = None,
    guidance_reference: str | None = None,
    config: ExperimentConfig | None = None,
    normalizer: MinMaxNormalizer | None = None,
    device: str | torch.device = "cpu",
    allow_short: bool = False,
    prime: np.ndarray | str | Path | None = None,
    prime_rate: float | None = None,
    max_rows: int = MAX_SAMPLES_PER_BATCH,
) -> Iterator[tuple[Path, GeneratedEDA | Exception]]:
    """`generate_from_audio` for several files, in shared batches: yields (path, result) in order.

    Every file gets the samples `generate_from_audio(path, samples=samples, seed=seed, ...)`
    gives (the same seed for every file: common random numbers). Files whose features have the
    same length are drawn in one batch of at most `max_rows` rows, each file with its own
    generator (`Wavenet.generate`), which on a CPU costs far less than one call per file. A file
    that cannot be read yields its `DataError` (or the decoder's `RuntimeError` / `OSError`) in
    place of a result, and the others go on. A prime file is read once, before any audio. A
    model other than a `Wavenet` (a stand-in) is run one file per call.

    Raises:
        DataError: a prime file that cannot be read (not reported per audio file).
        ValueError: see `check_sampling`; a prime without the EDA normalization.
    """
    from wavenet_lib.data.prime import read_prime
    from wavenet_lib.errors import DataError
    from wavenet_lib.models.wavenet import Wavenet
    from wavenet_lib.train.checkpoints import model_for_inference

    check_sampling(samples, temperature, greedy, top_p, min_prob, audio_guidance, guidance_reference)
    loaded, config, normalizer = model_for_inference(model_or_checkpoint, config, normalizer, device)
    model = cast("Wavenet", loaded)
    if isinstance(prime, (str, Path)):  # once for all files; its errors are not the audio's
        prime = read_prime(prime, config.model.eda_sample_rate, sample_rate=prime_rate)
    knobs = _sampling(config, temperature, greedy, top_p, min_prob, audio_guidance, guidance_reference)
    shared = isinstance(model, Wavenet) and samples <= min(max_rows, MAX_SAMPLES_PER_BATCH)
    per_batch = max(1, max_rows // samples) if shared else 1  # more samples: a file alone, in chunks
    paths = [Path(p) for p in audio_paths]
    for first in range(0, len(paths), per_batch):
        ready: list[tuple[Path, torch.Tensor, torch.Tensor | None, MinMaxNormalizer | None]] = []
        failed: dict[Path, Exception] = {}
        for path in paths[first : first + per_batch]:
            try:
                prepared = _prepared(
                    model, config, path, normalizer, device, 0.0, None, allow_short, prime, prime_rate
                )
                ready.append((path, *prepared))
            except (DataError, RuntimeError, OSError) as exc:
                failed[path] = exc
        results: dict[Path, GeneratedEDA] = {}
        shapes = [(tuple(item[1].shape), None if item[2] is None else tuple(item[2].shape)) for item in ready]
        for group in batch_groups(shapes, 1, per_batch):  # one shape per batch
            members = [ready[i] for i in group]
            generators: list[torch.Generator] | torch.Generator | None = None
            if seed is not None and not greedy:
                gens = [torch.Generator(device=m[1].device).manual_seed(int(seed)) for m in members]
                generators = gens if len(gens) > 1 else gens[0]
            if isinstance(generators, list):
                drawn = _draw(model, [(m[1], m[2]) for m in members], samples, generators, knobs, False)
            else:  # one file (or greedy): in chunks, exactly as generate_from_audio draws it
                drawn = [_draw_alone(model, m[1], m[2], samples, generators, knobs, False) for m in members]
            for (path, mfcc, prime_units, norm), units in zip(members, drawn, strict=True):
                results[path] = _generated(units, mfcc, prime_units, norm, config, None if greedy else seed)
        for path in paths[first : first + per_batch]:
            yield path, failed[path] if path in failed else results[path]


def batch_groups(
    keys: Sequence[Hashable], samples: int, max_rows: int = MAX_SAMPLES_PER_BATCH
) -> list[list[int]]:
    """Indices of clips sampled together: runs of equal keys (their length), in order, balanced.

    Consecutive clips with one key (their number of steps, or their features' shape) share a
    batch of at most `max_rows` rows (`samples` rows each; a clip with more samples than that
    goes alone). Each run is cut into as few groups as that allows, of sizes that differ by at
    most one.
    """
    per = max(1, max_rows // max(1, samples))
    groups: list[list[int]] = []
    i = 0
    while i < len(keys):
        j = i
        while j < len(keys) and keys[j] == keys[i]:
            j += 1
        run = list(range(i, j))
        n = -(-len(run) // per)  # ceil
        size, extra = divmod(len(run), n)
        start = 0
        for k in range(n):
            stop = start + size + (k < extra)
            groups.append(run[start:stop])
            start = stop
        i = j
    return groups


def _sampling(
    config: ExperimentConfig,
    temperature: float | None,
    greedy: bool,
    top_p: float | None,
    min_prob: float | None,
    audio_guidance: float | None,
    guidance_reference: str | None,
) -> dict[str, Any]:
    """`Wavenet.generate`'s sampling arguments: the given ones, else the config's `sampling`."""
    guidance = config.sampling.audio_guidance if audio_guidance is None else audio_guidance
    knobs: dict[str, Any] = {
        "temperature": config.sampling.temperature if temperature is None else temperature,
        "greedy": greedy,
        "top_p": config.sampling.top_p if top_p is None else top_p,
        "min_prob": config.sampling.min_prob if min_prob is None else min_prob,
    }
    if guidance:  # passed only when on: a stand-in model's `generate` need not know the argument
        knobs["audio_guidance"] = guidance
        reference = config.sampling.guidance_reference if guidance_reference is None else guidance_reference
        if reference != "silent":  # the model's default
            knobs["guidance_reference"] = reference
    return knobs


def _prepared(
    model: Wavenet,
    config: ExperimentConfig,
    audio_path: str | Path,
    normalizer: MinMaxNormalizer | None,
    device: str | torch.device,
    start_s: float,
    n_steps: int | None,
    allow_short: bool,
    prime: np.ndarray | str | Path | None,
    prime_rate: float | None,
) -> tuple[torch.Tensor, torch.Tensor | None, MinMaxNormalizer | None]:
    """A file's model-ready features (with a prime's silent frames first), the prime, the normalization."""
    mfcc = finite_audio_features(audio_path, config, device, n_steps=n_steps, start_s=start_s)
    if not allow_short:  # after the features: the file's length is known from their decode
        _refuse_short_audio(audio_path, config, start_s, n_steps)
    if prime is None:
        return mfcc, None, normalizer
    return _with_prime(model, config, mfcc, prime, prime_rate, normalizer)


def _draw_alone(
    model: Wavenet,
    mfcc: torch.Tensor,
    prime_units: torch.Tensor | None,
    samples: int,
    generator: torch.Generator | None,
    knobs: dict[str, Any],
    progress: bool,
) -> np.ndarray:
    """`samples` traces of one input, in consecutive batches of `MAX_SAMPLES_PER_BATCH` (one stream)."""
    chunks = []
    for start in range(0, samples, MAX_SAMPLES_PER_BATCH):
        n = min(MAX_SAMPLES_PER_BATCH, samples - start)
        chunks += _draw(model, [(mfcc, prime_units)], n, generator, knobs, progress)
    return np.concatenate(chunks)


def _draw(
    model: Wavenet,
    inputs: Sequence[tuple[torch.Tensor, torch.Tensor | None]],
    samples: int,
    generator: torch.Generator | Sequence[torch.Generator] | None,
    knobs: dict[str, Any],
    progress: bool,
) -> list[np.ndarray]:
    """`samples` traces (S, C_out, T) in units for each (features, prime) input, in one batch.

    The inputs must have one shape; with several, `generator` is one per input (or None). A
    prime's steps are cut off: the traces cover the stimulus only.
    """
    eda = cast(torch.Tensor, draw_batch(model, inputs, samples, generator, progress, **knobs))
    out = []
    for k, (_, p) in enumerate(inputs):
        units = eda[k * samples : (k + 1) * samples]
        if p is not None:
            units = units[..., p.shape[-1] :]  # keep the stimulus only
        out.append(units.float().cpu().numpy())
    return out


def draw_batch(
    model: Wavenet,
    inputs: Sequence[tuple[torch.Tensor, torch.Tensor | None]],
    samples: int,
    generator: torch.Generator | Sequence[torch.Generator] | None,
    progress: bool = False,
    **generate_kwargs: Any,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """One `Wavenet.generate` call for several clips of one shape, `samples` rows each, in order.

    Args:
        inputs: per clip, its features (C_in, F, M) and its prime (1, C_out, P) in units, or
            None (all None or none).
        generator: one per clip (each clip then draws what a call of its own would), one for
            the whole batch, or None.

    Returns:
        what `generate` returns: traces (len(inputs) * samples, C_out, P + T) in units, prime
        steps included (and the logits with `return_logits=True`).
    """
    batch = torch.cat([mfcc.unsqueeze(0).expand(samples, *mfcc.shape) for mfcc, _ in inputs])
    primes = [p for _, p in inputs]
    prime = (
        None if primes[0] is None else torch.cat([p.expand(samples, -1, -1) for p in primes if p is not None])
    )
    return model.generate(batch, prime=prime, generator=generator, progress=progress, **generate_kwargs)


def _generated(
    units: np.ndarray,
    mfcc: torch.Tensor,
    prime_units: torch.Tensor | None,
    normalizer: MinMaxNormalizer | None,
    config: ExperimentConfig,
    seed: int | None,
) -> GeneratedEDA:
    """The `GeneratedEDA` of drawn traces in units (µS too when there is a normalization)."""
    eda_us = (
        None if normalizer is None else np.asarray(eda_to_microsiemens(units.astype(np.float64), normalizer))
    )
    rate = float(config.model.eda_sample_rate)
    return GeneratedEDA(
        eda_units=units,
        eda_us=eda_us,
        sample_rate=rate,
        times_s=np.arange(units.shape[-1]) / rate,
        seed=seed,
        features=mfcc,
        prime_units=None if prime_units is None else prime_units[0].float().cpu().numpy(),
        normalizer=normalizer,
    )


def finite_audio_features(
    audio_path: str | Path,
    config: ExperimentConfig,
    device: str | torch.device = "cpu",
    n_steps: int | None = None,
    start_s: float = 0.0,
) -> torch.Tensor:
    """The model-ready features of an audio file (`audio_features`) on `device`, refused if not finite.

    Raises:
        DataError: the audio is missing, unreadable or shorter than one EDA step, or its
            features hold NaN or infinite values.
    """
    from wavenet_lib.data.recordings import audio_features
    from wavenet_lib.errors import DataError

    mfcc = audio_features(audio_path, config, n_steps=n_steps, start_s=start_s).to(device)
    if not bool(torch.isfinite(mfcc).all()):
        raise DataError(audio_path, "its features hold NaN or infinite values (clipped or corrupt audio?)")
    return mfcc


def _refuse_short_audio(
    audio_path: str | Path, config: ExperimentConfig, start_s: float, n_steps: int | None
) -> None:
    """DataError when the audio to generate from is shorter than the model's receptive field."""
    from wavenet_lib.data.audio import audio_duration
    from wavenet_lib.errors import DataError

    span = audio_duration(audio_path) - start_s
    if n_steps is not None:
        span = min(span, n_steps / config.model.eda_sample_rate)
    field = config.model.receptive_field_seconds
    if span < field:
        raise DataError(
            audio_path,
            f"audio is {span:.2f} s long (from {start_s:g} s), shorter than the model's receptive field "
            f"of {field:.2f} s; generating would give every step a partial context. Pass "
            "--allow-short-audio (allow_short=True) to generate anyway",
        )


def _with_prime(
    model: nn.Module,
    config: ExperimentConfig,
    mfcc: torch.Tensor,
    prime: np.ndarray | str | Path,
    prime_rate: float | None,
    normalizer: MinMaxNormalizer | None,
) -> tuple[torch.Tensor, torch.Tensor, MinMaxNormalizer]:
    """Silent frames + the audio's MFCCs, the prime in units (1, C_out, P), and the primed normalization."""
    from wavenet_lib.data.features import silent_frame
    from wavenet_lib.data.prime import check_prime, prime_normalizer, read_prime

    m = config.model
    if normalizer is None:
        raise ValueError("a prime in µS needs the EDA normalization; this model/checkpoint has none")
    if isinstance(prime, (str, Path)):
        prime_us = read_prime(prime, m.eda_sample_rate, sample_rate=prime_rate)
    else:
        prime_us = np.asarray(prime, dtype=np.float64)
        check_prime(prime_us, float(m.eda_sample_rate))
    prime_us = np.atleast_2d(prime_us)
    if prime_us.shape[0] not in (1, m.out_channels):
        raise ValueError(f"prime must be (P,) or ({m.out_channels}, P) µS, got {prime_us.shape}")
    prime_us = np.broadcast_to(prime_us, (m.out_channels, prime_us.shape[-1]))
    prime_us = prime_us[:, -m.receptive_field_eda_steps :]  # older history cannot reach the model
    primed = prime_normalizer(prime_us, normalizer, config.data.normalization == "per_recording")
    units = primed.normalize(prime_us)
    p = units.shape[-1]
    spf = int(m.spectral_frames_per_eda_step)
    silence = silent_frame(mfcc, m.num_mfccs).expand(-1, p * spf, -1)  # as silent_mfcc_like
    mfcc = torch.cat([silence, mfcc], dim=-2)
    prime_units = torch.as_tensor(np.ascontiguousarray(units), dtype=torch.float32, device=mfcc.device)
    return mfcc, prime_units[None], primed


def column_names(samples: int, channels: int, unit: str = "us") -> list[str]:
    """Value columns: eda_us; eda_us_s{n} per sample; eda_us_c{c} per channel; both: eda_us_s{n}_c{c}."""
    base = f"eda_{unit}"
    names = []
    for n in range(samples):
        for c in range(channels):
            name = base
            if samples > 1:
                name += f"_s{n}"
            if channels > 1:
                name += f"_c{c}"
            names.append(name)
    return names


def _flat(result: GeneratedEDA) -> np.ndarray:
    values = result.values  # (N, C, T) → (T, N*C), sample-major like column_names
    return values.reshape(-1, values.shape[-1]).T


def write_eda_csv(result: GeneratedEDA, path: str | Path) -> Path:
    """CSV with a `time_s` column and one value column per sample (and EDA channel)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n, c, _ = result.values.shape
    with atomic_write(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["time_s", *column_names(n, c, result.unit)])
        for t, row in zip(result.times_s, _flat(result), strict=True):
            writer.writerow([f"{t:.6f}", *(f"{v:.6f}" for v in row)])
    return path


def write_e4_csv(result: GeneratedEDA, path: str | Path, start_time: float = 0.0) -> Path:
    """Empatica E4 `EDA.csv`: row 1 start time (unix s), row 2 sample rate (Hz), then values.

    One column per sample (and EDA channel), as E4 writes multi-column signals: the start time
    and rate are repeated in every column. No header, no time column.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = _flat(result)
    cols = flat.shape[1]
    with atomic_write(path, "w", newline="") as fh:
        fh.write(", ".join([f"{start_time:.6f}"] * cols) + "\n")
        fh.write(", ".join([f"{result.sample_rate:.6f}"] * cols) + "\n")
        for row in flat:
            fh.write(", ".join(f"{v:.6f}" for v in row) + "\n")
    return path
