"""MFCC features aligned to EDA steps, their standardization, contrast, and their on-disk cache.

Alignment (docs/design.md, "Time bases"): EDA step `t` owns MFCC frames `[t*spf, (t+1)*spf)` and a
recording of `T` steps yields exactly `T*spf` frames. Frames are computed with `center=False`
on audio left-padded by `window - hop` zeros, so frame `f` covers audio samples
`[(f+1)*hop - window, (f+1)*hop)`: it *ends* at the end of its hop and sees no audio after
time `(f+1)*hop/sr`. Step `t` therefore sees audio up to `(t+1)/eda_sample_rate` s, the end of
the interval `[t, t+1)/eda_sample_rate` the step stands for, and nothing later: the features
are causal in audio time (the log-mel floor is the fixed `amin`, not librosa's default
"loudest frame - 80 dB", which would depend on the whole file). Audio is zero-padded or
trimmed at the end to exactly `T*spf*hop` samples (callers check beforehand that audio and
EDA durations agree).

What the model reads (`model_features`): the MFCCs, standardized (`data.mfcc_standardize`:
each recording's mean removed, then divided by its own std, or by one scale shared by every
recording, `mfcc_divisor`), and when
`model.mfcc_contrast_seconds` > 0 their *contrast*: each frame minus the mean of the frames of
the last `mfcc_contrast_seconds` (fewer at the start of a recording). A listener responds to
what changed against the recent past (a level rise, a new timbre); the contrast hands the
network that difference instead of asking it to learn a long average from a few recordings.
It is causal and computed from the recording's frames alone, so a training window (read with
its history) and the whole recording give the same values.

Features are cached as `.npy` files (memory-mappable) named by a hash of the feature settings
and of the audio file's bytes, so an edited file or a changed setting never reuses stale
features and an unchanged one is never recomputed. Features are checked before they are cached
or used: non-finite MFCCs (audio far outside [-1, 1], e.g. a float wav at ±1e30) are a
`DataError` naming the file, and are never written. A cache file that cannot be read, has the
wrong shape or holds non-finite values is recomputed (with a warning), not reused.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from functools import lru_cache
from pathlib import Path

import librosa
import numpy as np
import scipy.fft
import torch

from wavenet_lib.atomic_write import atomic_call
from wavenet_lib.configs import DataConfig, WavenetConfig
from wavenet_lib.data.audio import load_audio
from wavenet_lib.errors import DataError

_FEATURE_VERSION = 2  # bump when the feature computation changes, to invalidate caches


@lru_cache(maxsize=64)
def n_mels_for(sample_rate: int, n_fft: int, num_mfccs: int) -> int:
    """Mel bands for the MFCCs: the largest of 128, 64, 40, 32 (then 31, 30, ... down to
    `num_mfccs`) with no empty mel filter.

    Small windows at low rates leave some of librosa's default 128 filters empty; we take
    fewer bands instead. Never fewer than `num_mfccs` (a DCT needs at least that many bands);
    when even that many leave a filter empty, librosa's warning says so.
    """
    for n_mels in (128, 64, 40, *range(32, num_mfccs - 1, -1)):
        if n_mels < num_mfccs:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
                return n_mels
            except UserWarning:
                continue
    return num_mfccs


_AMIN = 1e-10  # power floor of the log-mel (librosa.power_to_db's amin), a fixed constant: causal
_CHUNK_FRAMES = 16384  # frames per FFT batch: bounded memory (~30 MB at a 400-sample window)


_MEL_GROUP = 32  # mel filters per banded GEMM


@lru_cache(maxsize=16)
def _mfcc_matrices(
    sample_rate: int, n_fft: int, n_mels: int, n_mfcc: int
) -> tuple[torch.Tensor, tuple[tuple[int, int, torch.Tensor], ...], torch.Tensor]:
    """librosa's analysis window, mel filterbank and DCT: (n_fft,), mel bands, (n_mels, n_mfcc).

    The same matrices `librosa.feature.melspectrogram` and `librosa.feature.mfcc` apply (periodic
    Hann, Slaney mel filters, orthonormal DCT-II), so `compute_mfcc` computes their features.
    The filterbank is laid out for the FFT's interleaved (re, im) pairs squared (each frequency
    row twice, so power → mel is one GEMM) and cut into groups of `_MEL_GROUP` filters, each with
    only the rows its filters touch, (lo, hi, (hi - lo, group)): mel filters are narrow bands,
    so this skips most of the zeros of the dense (2*bins, n_mels) matrix.
    """
    window = librosa.filters.get_window("hann", n_fft, fftbins=True)
    mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)  # (n_mels, bins)
    mel2 = torch.as_tensor(np.repeat(mel.T, 2, axis=0), dtype=torch.float32)  # (2*bins, n_mels)
    bands = []
    for m0 in range(0, n_mels, _MEL_GROUP):
        group = mel2[:, m0 : m0 + _MEL_GROUP]
        rows = group.ne(0).any(dim=1).nonzero()
        lo, hi = (int(rows.min()), int(rows.max()) + 1) if len(rows) else (0, 1)
        bands.append((lo, hi, group[lo:hi].contiguous()))
    dct = scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc]  # (n_mfcc, n_mels)
    return (
        torch.as_tensor(window, dtype=torch.float32),
        tuple(bands),
        torch.as_tensor(dct.T, dtype=torch.float32).contiguous(),
    )


def compute_mfcc(audio: np.ndarray, cfg: WavenetConfig, n_steps: int) -> np.ndarray:
    """MFCCs aligned to EDA steps (see module docstring for the alignment).

    librosa's MFCC (power mel spectrogram, `power_to_db` with a fixed floor, orthonormal DCT-II)
    computed with PyTorch's FFT and matmuls over chunks of frames, with librosa's own window,
    filterbank and DCT matrices: equal to `librosa.feature.mfcc` within float32 rounding
    (tests/unit/data/test_mfcc_equivalence.py states the tolerance) and several times faster.

    Args:
        audio: (in_channels, samples) float audio at `cfg.audio_sample_rate`, starting at EDA step 0.
        cfg: the model config (rates, window, hop, num_mfccs).
        n_steps: T, the number of EDA steps.

    Returns:
        float32 (in_channels, T*spf, num_mfccs); frame f covers samples [(f+1)*hop - window, (f+1)*hop).
    """
    hop, window = cfg.mfcc_hop_size, cfg.mfcc_window_size
    frames = n_steps * cfg.spectral_frames_per_eda_step
    needed = frames * hop
    audio = np.asarray(audio, dtype=np.float32)
    audio = audio[:, :needed]
    y = torch.from_numpy(np.pad(audio, ((0, 0), (window - hop, needed - audio.shape[-1]))))
    n_mels = n_mels_for(cfg.audio_sample_rate, window, cfg.num_mfccs)
    win, mel_bands, dct = _mfcc_matrices(cfg.audio_sample_rate, window, n_mels, cfg.num_mfccs)
    bins, n = window // 2 + 1, min(frames, _CHUNK_FRAMES)
    # Buffers reused across chunks: fresh large tensors per chunk cost as much in page faults.
    windowed, spec = torch.empty(n, window), torch.empty(n, bins, dtype=torch.complex64)
    log_mel = torch.empty(n, n_mels)
    out = torch.empty(y.shape[0], frames, cfg.num_mfccs)
    with torch.no_grad():
        for ch in range(y.shape[0]):
            for f0 in range(0, frames, _CHUNK_FRAMES):
                m = min(frames, f0 + _CHUNK_FRAMES) - f0
                # frame f is y[f*hop : f*hop + window] (center=False on the left-padded audio)
                chunk = y[ch, f0 * hop : (f0 + m - 1) * hop + window].unfold(0, window, hop)  # (m, window)
                torch.mul(chunk, win, out=windowed[:m])
                torch.fft.rfft(windowed[:m], dim=-1, out=spec[:m])
                power_pairs = torch.view_as_real(spec[:m]).square_().view(m, 2 * bins)  # re², im²
                bands = [torch.matmul(power_pairs[:, lo:hi], w) for lo, hi, w in mel_bands]
                torch.cat(bands, dim=1, out=log_mel[:m])  # the mel power spectrogram
                # top_db=None: librosa's default clips every frame at (loudest frame of the file - 80 dB),
                # which would let a loud sound change the features of earlier frames (a causality leak).
                log_mel[:m].clamp_(min=_AMIN).log10_().mul_(10.0)
                torch.matmul(log_mel[:m], dct, out=out[ch, f0 : f0 + m])
    return out.numpy()


_hash_memo: dict[tuple[str, int, int], str] = {}


def _file_sha1(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _hash_memo:
        digest = hashlib.sha1()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _hash_memo[key] = digest.hexdigest()
    return _hash_memo[key]


def _check_finite(mfcc: np.ndarray, audio: np.ndarray, path: Path) -> None:
    """DataError naming the file when features are NaN/inf (the audio is far too loud or broken)."""
    if np.isfinite(mfcc).all():
        return
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    raise DataError(
        path,
        f"MFCCs are not finite (NaN or infinite): the audio peaks at {peak:.3g}, expected samples in "
        "about [-1, 1]; rescale or re-export the file",
    )


def _featurize(
    path: str | Path,
    cfg: WavenetConfig,
    n_steps: int,
    start_s: float,
    decoded: tuple[np.ndarray, int] | None = None,
) -> np.ndarray:
    audio = load_audio(path, cfg.audio_sample_rate, cfg.in_channels, start_s, decoded=decoded)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by _check_finite
        mfcc = compute_mfcc(audio, cfg, n_steps)
    _check_finite(mfcc, audio, Path(path))
    return mfcc


def _load_cached(target: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached features, or None (after removing the file) when it is missing or corrupt."""
    if not target.is_file():
        return None
    mfcc, problem = None, None
    try:
        mfcc = np.load(target, mmap_mode="r")
        if mfcc.shape != shape or mfcc.dtype != np.float32:
            problem = f"shape {mfcc.shape} {mfcc.dtype}, expected {shape} float32"
        elif not np.isfinite(mfcc).all():
            problem = "non-finite values"
    except Exception as exc:  # truncated, not an .npy, unreadable
        problem = str(exc).strip() or type(exc).__name__
    if problem is None:
        return mfcc
    warnings.warn(f"{target}: corrupt MFCC cache file ({problem}); recomputing it", stacklevel=3)
    del mfcc
    target.unlink(missing_ok=True)
    return None


def mfcc_cache_key(path: str | Path, cfg: WavenetConfig, n_steps: int, start_s: float = 0.0) -> str:
    """Hex key naming a cached feature file: sha1 of the audio bytes and of every feature setting."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "audio file not found")
    settings = {
        "version": _FEATURE_VERSION,
        "audio_sha1": _file_sha1(path),
        "sr": cfg.audio_sample_rate,
        "eda_sr": cfg.eda_sample_rate,
        "n_fft": cfg.mfcc_window_size,
        "hop": cfg.mfcc_hop_size,
        "n_mfcc": cfg.num_mfccs,
        "n_mels": n_mels_for(cfg.audio_sample_rate, cfg.mfcc_window_size, cfg.num_mfccs),
        "channels": cfg.in_channels,
        "n_steps": int(n_steps),
        "start_sample": int(round(start_s * cfg.audio_sample_rate)),
    }
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def mfcc_for_recording(
    path: str | Path,
    cfg: WavenetConfig,
    n_steps: int,
    start_s: float = 0.0,
    cache_dir: str | Path | None = None,
    decoded: tuple[np.ndarray, int] | None = None,
) -> np.ndarray:
    """MFCCs of one audio file for `n_steps` EDA steps, from the disk cache when possible.

    Args:
        path: audio file (wav, flac, ogg, mp3).
        cfg: model config.
        n_steps: T, EDA steps the features must cover.
        start_s: audio time (s) of EDA step 0 (audio before it is dropped).
        cache_dir: feature cache folder; None computes without caching.
        decoded: the file already decoded (`decode_audio(path)`), used on a cache miss instead
            of decoding it again.

    Returns:
        float32 (in_channels, T*spf, num_mfccs); a read-only memory map when cached.

    Raises:
        DataError: the audio cannot be used (see `load_audio`), or its MFCCs are not finite.
    """
    if cache_dir is None:
        return _featurize(path, cfg, n_steps, start_s, decoded)
    cache_dir = Path(cache_dir)
    target = cache_dir / f"{mfcc_cache_key(path, cfg, n_steps, start_s)}.npy"
    shape = (cfg.in_channels, int(n_steps) * cfg.spectral_frames_per_eda_step, cfg.num_mfccs)
    cached = _load_cached(target, shape)
    if cached is not None:
        return cached
    mfcc = _featurize(path, cfg, n_steps, start_s, decoded)
    atomic_call(target, lambda fh: np.save(fh, mfcc))  # concurrent readers never see half a file
    return np.load(target, mmap_mode="r")


def mfcc_statistics(mfcc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel and coefficient mean and std of a recording's MFCCs, for `standardize_mfcc`.

    Args:
        mfcc: (C, F, M) features.

    Returns:
        float32 (C, M) mean and std; a std below 1e-4 (a constant coefficient) becomes 1.
    """
    mean = np.asarray(mfcc.mean(axis=1, dtype=np.float64), dtype=np.float32)
    std = np.asarray(mfcc.std(axis=1, dtype=np.float64), dtype=np.float32)
    return mean, np.where(std > 1e-4, std, 1.0).astype(np.float32)


def mfcc_divisor(data: DataConfig, own_std: np.ndarray) -> np.ndarray:
    """What a recording's MFCCs are divided by under `data.mfcc_standardize`.

    Args:
        data: the data config.
        own_std: (C, M) the recording's own std (`mfcc_statistics`).

    Returns:
        `own_std` for "per_recording" (and "none", which divides by nothing), the shared
        `data.mfcc_scale` as float32 (C, M) for "dataset".

    Raises:
        ValueError: "dataset" without `data.mfcc_scale`, or a scale of another shape.
    """
    if data.mfcc_standardize != "dataset":
        return own_std
    if data.mfcc_scale is None:
        raise ValueError(
            "data.mfcc_standardize is 'dataset' but data.mfcc_scale is not set: generate from the "
            "run's checkpoint (its config holds the scale), or take the config from build_datasets "
            "(`DataBundle.feature_config`)"
        )
    scale = np.asarray(data.mfcc_scale, dtype=np.float32)
    if scale.shape != own_std.shape:
        raise ValueError(
            f"data.mfcc_scale must be {own_std.shape[0]} row(s) of {own_std.shape[1]} values "
            f"(in_channels x num_mfccs), got {scale.shape}"
        )
    return scale


def standardize_mfcc(mfcc: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Cepstral mean and variance normalization: (mfcc - mean) / std per channel and coefficient.

    Args:
        mfcc: (C, F, M) features.
        mean, std: (C, M) statistics (e.g. of the whole recording).

    Returns:
        float32 (C, F, M).
    """
    return ((np.asarray(mfcc, dtype=np.float32) - mean[:, None, :]) / std[:, None, :]).astype(np.float32)


def model_features(
    mfcc: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    cfg: WavenetConfig,
    first: int = 0,
    last: int | None = None,
    standardize: bool = True,
) -> np.ndarray:
    """Frames `[first, last)` of a recording's model input (module docstring).

    Args:
        mfcc: (C, F, num_mfccs) raw MFCCs of the whole recording; a memory map is fine, only
            frames `[first - contrast_frames + 1, last)` are read.
        mean, std: (C, num_mfccs) the recording's statistics (`mfcc_statistics`).
        cfg: model config (`mfcc_contrast_seconds`).
        first, last: the frames wanted (default: all).
        standardize: apply `standardize_mfcc` (`data.mfcc_standardize` is not "none").

    Returns:
        float32 (C, last - first, cfg.features_per_frame): the MFCCs, then their contrasts if on.
    """
    last = mfcc.shape[1] if last is None else int(last)
    n = cfg.contrast_frames
    lo = max(0, first - n + 1) if n else first
    x = np.array(mfcc[:, lo:last, :], dtype=np.float32)
    if standardize:
        x = standardize_mfcc(x, mean, std)
    if not n:
        return x
    csum = np.zeros((x.shape[0], x.shape[1] + 1, x.shape[2]), dtype=np.float64)
    np.cumsum(x, axis=1, dtype=np.float64, out=csum[:, 1:])
    end = np.arange(first - lo, last - lo) + 1  # local frame f is averaged over (start, end]
    start = np.maximum(end - n, 0)
    recent = (csum[:, end] - csum[:, start]) / (end - start)[None, :, None]
    own = x[:, first - lo :]
    return np.concatenate([own, (own - recent).astype(np.float32)], axis=-1)


def silent_mfcc_like(mfcc: torch.Tensor, num_mfccs: int | None = None) -> torch.Tensor:
    """A constant "silent" input of the same shape: each MFCC's minimum over the clip, repeated.

    Silence after MFCC extraction is a time-constant frame at the bottom of the log-energy
    range (c0 at its minimum). Taking each coefficient's minimum over the clip gives such a frame
    in the clip's own units — whatever scaling or per-recording standardization was applied —
    without re-running feature extraction on zeroed audio. A constant input changes nothing, so
    its contrast features (`model.mfcc_contrast_seconds`, the columns after the first
    `num_mfccs`) are zero. What matters for the baseline is that the input carries no audio
    events; pass any other mfcc to `audio_blind_metrics` to try another.

    Args:
        mfcc: (..., frames, F); the minimum is taken over the frames axis (-2), per channel.
        num_mfccs: the MFCC columns (`model.config.num_mfccs`); later columns are contrasts, set
            to 0. None: every column is an MFCC.
    """
    return silent_frame(mfcc, num_mfccs).expand_as(mfcc).clone()


def silent_frame(mfcc: torch.Tensor, num_mfccs: int | None = None) -> torch.Tensor:
    """The one frame `silent_mfcc_like` repeats, (..., 1, F): to expand to any length without a copy."""
    frame = mfcc.amin(dim=-2, keepdim=True)
    if num_mfccs is not None:
        frame[..., num_mfccs:] = 0.0
    return frame


def mean_mfcc_like(mfcc: torch.Tensor, num_mfccs: int | None = None, first_frame: int = 0) -> torch.Tensor:
    """The clip's sound held constant: each MFCC's mean over the clip's frames, repeated.

    Same timbre and loudness on average, with nothing changing: a model that responds to
    changes predicts no response to it, one that responds to loudness itself still does.
    Contrast columns (after the first `num_mfccs`) are 0, as for any constant input.

    Args:
        mfcc: (..., frames, F); the mean is taken over the frames axis (-2), per channel.
        num_mfccs: the MFCC columns (`model.config.num_mfccs`); None: every column is an MFCC.
        first_frame: frames before it (a prime's silent lead-in) are left out of the mean.
    """
    if not 0 <= first_frame < mfcc.shape[-2]:
        raise ValueError(f"first_frame must be in [0, {mfcc.shape[-2]}), got {first_frame}")
    # The mean in float64: a constant clip gives back exactly its own value.
    frame = mfcc[..., first_frame:, :].double().mean(dim=-2, keepdim=True).to(mfcc.dtype)
    if num_mfccs is not None:
        frame[..., num_mfccs:] = 0.0
    return frame.expand_as(mfcc).clone()


def recent_past_mfcc_like(mfcc: torch.Tensor, frames: int, num_mfccs: int | None = None) -> torch.Tensor:
    """Each frame replaced by the mean of the `frames` frames before it: "nothing new happened".

    Frame f of the result is the mean of frames [f − frames, f) (fewer at the start; frame 0 is
    itself). A steady sound equals its own recent past; a sudden change differs from it for
    the `frames` frames after it. Causal: frame f of the result reads no frame after f − 1.
    Contrast columns (after the first `num_mfccs`) are 0: a sound equal to its past has none.

    Args:
        mfcc: (..., frames, F).
        frames: the length of the recent past, >= 1.
        num_mfccs: the MFCC columns (`model.config.num_mfccs`); None: every column is an MFCC.
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be a whole number >= 1, got {frames!r}")
    n = mfcc.shape[-2]
    x = mfcc.double()
    csum = torch.cat([torch.zeros_like(x[..., :1, :]), torch.cumsum(x, dim=-2)], dim=-2)
    end = torch.arange(n, device=mfcc.device)
    start = (end - frames).clamp(min=0)
    count = (end - start).clamp(min=1).to(x.dtype)[:, None]
    out = (csum[..., end, :] - csum[..., start, :]) / count
    out[..., 0, :] = x[..., 0, :]
    out = out.to(mfcc.dtype)
    if num_mfccs is not None:
        out[..., num_mfccs:] = 0.0
    return out


def running_mean_mfcc_like(
    mfcc: torch.Tensor, num_mfccs: int | None = None, first_frame: int = 0
) -> torch.Tensor:
    """Each frame from `first_frame` on replaced by the mean of all frames since: the sound so far.

    Frame f >= `first_frame` of the result is the mean of frames [first_frame, f]; earlier frames
    are left as they are. It has the clip's timbre and loudness as heard up to each moment with
    nothing new in it: music-like, where silence is an input a model trained on music never saw.
    Causal: frame f of the result reads no frame after f. A constant input is returned exactly.
    Contrast columns (after the first `num_mfccs`) are 0, as for `recent_past_mfcc_like`.

    Args:
        mfcc: (..., frames, F).
        num_mfccs: the MFCC columns (`model.config.num_mfccs`); None: every column is an MFCC.
        first_frame: where the mean starts (a prime's frames before it stay as they are).
    """
    n = mfcc.shape[-2]
    if isinstance(first_frame, bool) or not isinstance(first_frame, int) or not 0 <= first_frame < n:
        raise ValueError(f"first_frame must be a whole number in [0, {n}), got {first_frame!r}")
    x = mfcc[..., first_frame:, :].double()  # float64: k equal values sum and divide back exactly
    count = torch.arange(1, n - first_frame + 1, device=mfcc.device, dtype=x.dtype)[:, None]
    out = mfcc.clone()
    out[..., first_frame:, :] = (torch.cumsum(x, dim=-2) / count).to(mfcc.dtype)
    if num_mfccs is not None:
        out[..., first_frame:, num_mfccs:] = 0.0
    return out
