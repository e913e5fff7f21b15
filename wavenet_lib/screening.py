"""Stimulus screening: which candidate sounds will evoke the strongest skin-conductance responses?

    result = screen_stimuli("runs/quickstart/best.pt", ["stimuli/"], samples=16, seed=0)
    result.ranking            # one row per file, best first (see RANKING_COLUMNS)
    result.skipped            # [(path, reason)] for files that could not be read
    write_ranking(result, "ranking.csv")

For every audio file the model generates `samples` EDA traces in one batch; consecutive files
of the same length share a batch (`generate_from_audio_files`), which on a CPU costs far less
than a call per file, with a progress bar over files. Every file uses the same sampling seed:
common random numbers, so differences between files come from the audio rather than from
different draws (a file draws the same traces alone or in a shared batch). Each trace is
measured in µS:

- SCRs per minute and their mean amplitude, detected by `wavenet_lib.evaluate.scrs.detect_scrs`
  (neurokit2 with an absolute amplitude threshold, `amplitude_min_us`);
- the mean rise of EDA over the file: the trace's mean minus its first value (µS);
- whether it holds at least one SCR;
- the response score: the summed amplitude of its SCRs per minute (µS/min), which grows with
  both the number and the size of the responses;
- the evoked rise (µS/min): how much more EDA rise the model expects with the sound than with
  a reference input (`reference`: by default the file's own mean frame held constant, so a file
  is credited for what changes in it; or silence) along the trace, summed over its steps
  (`wavenet_lib.evoked`). It leaves out what the model would do anyway (spontaneous SCRs) and
  needs no SCR detector; files differ by more standard errors in it than in any other
  statistic (NaN for a stand-in model without `forward`).

Files are ranked by the evoked rise (or any statistic, `rank_by`): on the quickstart's held-out
recordings it follows the listener's true events best (notebook 04).

Each statistic is reported as the mean over samples with its standard error (`*_se`; for the
fraction with an SCR, the binomial standard error). How much the ranking itself would change with
new samples is its split-half reliability (`ranking_reliability`): the rank correlation between
the files' means over the even- and the odd-numbered samples, stepped up to all samples with the
Spearman-Brown formula; `samples_for_reliability` says how many samples per file a wanted
reliability needs. The mean SCR amplitude averages the samples
that have SCRs (NaN when none has). Files that cannot be read (missing, not audio, too short)
are listed in `skipped` with the reason and left out of the ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from wavenet_lib.atomic_write import atomic_write
from wavenet_lib.configs import ExperimentConfig
from wavenet_lib.data.audio import AUDIO_EXTENSIONS
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.errors import DataError
from wavenet_lib.evaluate.scrs import detect_scrs
from wavenet_lib.evoked import REFERENCES, evoked_rise_us, has_forward
from wavenet_lib.generation import GeneratedEDA, generate_from_audio_files

__all__ = [
    "DEFAULT_RANK_BY",
    "RANKING_COLUMNS",
    "STATISTICS",
    "ScreeningResult",
    "find_audio_files",
    "sample_statistics",
    "summarize_samples",
    "ranking_reliability",
    "samples_for_reliability",
    "screen_stimuli",
    "write_ranking",
]

STATISTICS = (
    "evoked_rise_us_per_min",
    "scr_per_min",
    "scr_amplitude_us",
    "eda_rise_us",
    "frac_with_scr",
    "response_us_per_min",
)
DEFAULT_RANK_BY = "evoked_rise_us_per_min"
RANKING_COLUMNS = [
    "rank",
    "file",
    "duration_s",
    "samples",
    *[c for s in STATISTICS for c in (s, f"{s}_se")],
]


@dataclass
class ScreeningResult:
    """The outcome of screening a set of audio files.

    Attributes:
        ranking: one row per readable file, best first, columns `RANKING_COLUMNS`.
        per_sample: one row per file and sample: file, sample, n_scr, scr_per_min,
            scr_amplitude_us, eda_rise_us, frac_with_scr (0/1), response_us_per_min,
            evoked_rise_us_per_min.
        skipped: (path, reason) for every file that could not be screened.
        generated: file (as in `ranking.file`) → its generated samples (traces, times and
            normalization; without their `features`, which are dropped once the evoked rise is
            measured so that screening hundreds of long files does not hold all their features
            in (GPU) memory).
        config: the experiment config of the model used.
        rank_by: the statistic the ranking is sorted by.
        reliability: split-half reliability of the ranking by `rank_by` (`ranking_reliability`;
            NaN with fewer than 2 samples or 3 files).
        reference: what the evoked rise compared each file against (`wavenet_lib.evoked.REFERENCES`).
    """

    ranking: pd.DataFrame
    per_sample: pd.DataFrame
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    generated: dict[str, GeneratedEDA] = field(default_factory=dict)
    config: ExperimentConfig | None = None
    rank_by: str = DEFAULT_RANK_BY
    reliability: float = float("nan")
    reference: str = "clip_mean"


def find_audio_files(inputs: Sequence[str | Path]) -> list[Path]:
    """Audio files named directly or found (recursively, sorted) in folders.

    A file named directly is kept whatever its extension (if it is not audio, screening lists
    it as skipped); folders contribute their .wav, .flac, .ogg and .mp3 files.

    Raises:
        DataError: a path that does not exist, a folder without audio files, or no inputs.
    """
    if not inputs:
        raise DataError(None, "no audio files or folders given")
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise DataError(item, f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder")
            files += found
        elif item.exists():
            files.append(item)
        else:
            raise DataError(item, "no such file or folder")
    return list(dict.fromkeys(files))  # in order, without duplicates


def sample_statistics(
    eda_us: np.ndarray,
    sample_rate: float,
    amplitude_min_us: float = 0.05,
    evoked_rise_us: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-trace statistics of generated EDA.

    Args:
        eda_us: (S, T) traces in µS.
        sample_rate: EDA steps per second.
        amplitude_min_us: SCR amplitude threshold (µS).
        evoked_rise_us: (S,) each trace's evoked rise (`wavenet_lib.evoked.evoked_rise_us`), or
            None (the column is then NaN).

    Returns:
        One row per trace: n_scr, scr_per_min, scr_amplitude_us (NaN without SCRs), eda_rise_us,
        frac_with_scr (0 or 1), response_us_per_min, evoked_rise_us_per_min.
    """
    traces = np.atleast_2d(np.asarray(eda_us, dtype=np.float64))
    minutes = traces.shape[-1] / sample_rate / 60.0
    evoked = np.full(len(traces), np.nan) if evoked_rise_us is None else np.asarray(evoked_rise_us, float)
    if evoked.shape != (len(traces),):
        raise ValueError(f"evoked_rise_us must be ({len(traces)},), got {evoked.shape}")
    rows = []
    for trace, rise in zip(traces, evoked, strict=True):
        scrs = detect_scrs(trace, sample_rate, amplitude_min_us=amplitude_min_us)
        amps = scrs["amplitude_us"].to_numpy(float)
        rows.append(
            {
                "n_scr": float(len(amps)),
                "scr_per_min": len(amps) / minutes,
                "scr_amplitude_us": float(amps.mean()) if amps.size else float("nan"),
                "eda_rise_us": float(trace.mean() - trace[0]),
                "frac_with_scr": float(amps.size > 0),
                "response_us_per_min": float(amps.sum()) / minutes,
                "evoked_rise_us_per_min": float(rise) / minutes,
            }
        )
    return pd.DataFrame(rows)


def summarize_samples(per_sample: pd.DataFrame) -> dict[str, float]:
    """Mean and standard error over samples of each statistic in `STATISTICS`.

    Standard errors are std(ddof=1)/sqrt(n) over the samples that have a value (NaN with fewer
    than two); for `frac_with_scr` the binomial sqrt(p(1-p)/n).
    """
    out: dict[str, float] = {}
    for name in STATISTICS:
        values = per_sample[name].dropna().to_numpy(float)
        n = values.size
        mean = float(values.mean()) if n else float("nan")
        if name == "frac_with_scr":
            se = float(np.sqrt(mean * (1 - mean) / n)) if n else float("nan")
        else:
            se = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        out[name], out[f"{name}_se"] = mean, se
    return out


def ranking_reliability(per_sample: pd.DataFrame, statistic: str = DEFAULT_RANK_BY) -> float:
    """Split-half reliability of a screening ranking: how well a rerun with new samples would agree.

    Each file's mean of `statistic` over its even-numbered samples and over its odd-numbered
    samples give two rankings of the files; their Spearman correlation r is that of two rankings
    from half the samples each, and the Spearman-Brown formula 2r / (1 + r) steps it up to the
    ranking from all samples. 1: new samples would give the same order; 0: the order is noise.
    It says nothing about whether the order is right (that needs the truth, see
    `wavenet_lib.evaluate.stimulus_validation`), only whether more samples would change it.

    Args:
        per_sample: `ScreeningResult.per_sample` (columns file, sample and the statistic).
        statistic: the ranked column.

    Returns:
        The reliability in [-1, 1]; NaN with fewer than 3 files that have a value in both halves,
        or when a half does not vary between files.
    """
    table = per_sample.dropna(subset=[statistic])
    half = table["sample"].to_numpy(int) % 2
    means = table.assign(half=half).groupby(["file", "half"])[statistic].mean().unstack("half")
    if means.shape[1] < 2:
        return float("nan")
    means = means.dropna()
    if len(means) < 3 or means[0].nunique() < 2 or means[1].nunique() < 2:
        return float("nan")
    from scipy.stats import spearmanr

    r = float(spearmanr(means[0], means[1])[0])
    return 2.0 * r / (1.0 + r) if r > -1.0 else -1.0


def samples_for_reliability(reliability: float, samples: int, target: float = 0.9) -> int | None:
    """Samples per file for a ranking of `target` reliability, by the Spearman-Brown prophecy.

    Args:
        reliability: the ranking's reliability measured with `samples` samples per file.
        samples: how many that was.
        target: the wanted reliability, in (0, 1).

    Returns:
        The number of samples (at least 1), or None when the measured reliability is not
        positive (no number of samples is predicted to get there) or NaN.
    """
    if not 0.0 < target < 1.0:
        raise ValueError(f"target must be in (0, 1), got {target}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not np.isfinite(reliability) or reliability <= 0.0:
        return None
    if reliability >= 1.0:
        return 1
    factor = target * (1.0 - reliability) / (reliability * (1.0 - target))
    return max(1, int(np.ceil(factor * samples - 1e-9)))


def screen_stimuli(
    model_or_checkpoint: nn.Module | str | Path,
    audio: Sequence[str | Path],
    samples: int = 16,
    seed: int = 0,
    *,
    config: ExperimentConfig | None = None,
    normalizer: MinMaxNormalizer | None = None,
    prime: np.ndarray | str | Path | None = None,
    prime_rate: float | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    min_prob: float | None = None,
    audio_guidance: float | None = None,
    guidance_reference: str | None = None,
    rank_by: str | None = None,
    amplitude_min_us: float = 0.05,
    device: str | torch.device = "cpu",
    progress: bool = True,
    reference: str = "clip_mean",
) -> ScreeningResult:
    """Generate `samples` EDA traces for every audio file and rank the files by their responses.

    Args:
        model_or_checkpoint: a checkpoint path, or a Wavenet with `config` and `normalizer`.
        audio: audio files and/or folders (see `find_audio_files`).
        samples: traces per file (in one batch, shared with other files of the same length).
        seed: the sampling seed, the same for every file (common random numbers).
        config, normalizer: with a model instead of a checkpoint.
        prime: the listener's EDA before the stimuli, as for `generate_from_audio` (read once).
        prime_rate: the prime file's rate when it has no time column.
        temperature, top_p, min_prob, audio_guidance, guidance_reference: sampling settings
            (`generate_from_audio`); None → the config's `sampling` section, as for `generate`.
        rank_by: the statistic to rank by, descending (one of `STATISTICS`); None: the evoked
            rise (`DEFAULT_RANK_BY`), or SCRs per minute for a stand-in model without `forward`.
        amplitude_min_us: SCR amplitude threshold (µS).
        device: where to run the model.
        progress: tqdm progress bar over files.
        reference: what the evoked rise compares the audio against (`wavenet_lib.evoked`):
            "clip_mean" (each file's mean frame held constant) or "silent".

    Raises:
        DataError: no files, a folder without audio, a bad prime.
        ValueError: samples < 1, no EDA normalization (µS are needed), unknown `rank_by` or
            `reference`.
    """
    from tqdm.auto import tqdm

    from wavenet_lib.train.checkpoints import model_for_inference

    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    if rank_by is not None and rank_by not in STATISTICS:
        raise ValueError(f"rank_by must be one of {STATISTICS}, got {rank_by!r}")
    files = find_audio_files(audio)
    model, config, normalizer = model_for_inference(model_or_checkpoint, config, normalizer, device)
    if normalizer is None:
        raise ValueError("screening measures SCRs in µS and needs the EDA normalization; the model has none")
    if rank_by is None:
        rank_by = DEFAULT_RANK_BY if has_forward(model) else "scr_per_min"

    rows, per_sample, skipped, generated = [], [], [], {}
    drawn = generate_from_audio_files(
        model,
        files,
        samples=samples,
        seed=seed,
        temperature=temperature,
        top_p=top_p,
        min_prob=min_prob,
        audio_guidance=audio_guidance,
        guidance_reference=guidance_reference,
        config=config,
        normalizer=normalizer,
        device=device,
        prime=prime,
        prime_rate=prime_rate,
    )  # files of one length share batches, each with the same seed; a prime file is read once
    for path, result in tqdm(drawn, total=len(files), desc="screening", unit="file", disable=not progress):
        if isinstance(result, DataError):
            skipped.append((path, result.problem.replace(" ()", "")))  # some decoders give empty messages
            continue
        if isinstance(result, Exception):  # decoder failures that escape the readers
            skipped.append((path, " ".join(str(result).split())[:300]))
            continue
        name = str(path)
        traces = result.values[:, 0]  # EDA signal 0, (S, T) µS
        evoked = evoked_rise_us(model, result, reference) if has_forward(model) else None
        stats = sample_statistics(traces, result.sample_rate, amplitude_min_us, evoked)
        per_sample.append(stats.assign(file=name, sample=np.arange(len(stats))))
        rows.append(
            {
                "file": name,
                "duration_s": traces.shape[-1] / result.sample_rate,
                "samples": samples,
                **summarize_samples(stats),
            }
        )
        generated[name] = replace(result, features=None)  # the features were only needed for `evoked`
    ranking = pd.DataFrame(rows, columns=[c for c in RANKING_COLUMNS if c != "rank"])
    ranking = ranking.sort_values(rank_by, ascending=False, na_position="last", kind="stable")
    ranking.insert(0, "rank", np.arange(1, len(ranking) + 1))
    sample_table = (
        pd.concat(per_sample, ignore_index=True)[["file", "sample", *stats.columns]]
        if per_sample
        else pd.DataFrame(columns=["file", "sample", "n_scr", *STATISTICS])
    )
    reliability = ranking_reliability(sample_table, rank_by) if per_sample else float("nan")
    return ScreeningResult(
        ranking.reset_index(drop=True),
        sample_table,
        skipped,
        generated,
        config,
        rank_by,
        reliability,
        reference,
    )


def write_ranking(result: ScreeningResult, path: str | Path) -> Path:
    """The ranking as CSV (atomic write); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w", newline="") as fh:
        result.ranking.to_csv(fh, index=False, float_format="%.6g")
    return path
