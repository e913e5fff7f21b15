"""Audio files in: read (wav, flac, ogg, mp3), match channels, resample, measure duration."""

from __future__ import annotations

import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from wavenet_lib.errors import DataError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


def _read_raw(path: Path) -> tuple[np.ndarray, int]:
    """Decode a file to (channels, samples) float32 at its own rate; DataError if impossible."""
    if not path.is_file():
        raise DataError(path, "audio file not found")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (n, channels)
        audio = np.ascontiguousarray(data.T)
    except Exception as sf_exc:  # libsndfile cannot read it (some mp3s): try librosa/audioread
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                audio, sr = librosa.load(str(path), sr=None, mono=False)
        except Exception as exc:
            raise DataError(path, f"unreadable audio ({sf_exc}; librosa: {exc})") from exc
        audio = np.atleast_2d(audio).astype(np.float32)
    if audio.shape[-1] == 0:
        raise DataError(path, "audio file is empty (0 samples)")
    if not np.isfinite(audio).all():
        raise DataError(path, "audio contains NaN or infinite samples")
    return audio, int(sr)


def audio_duration(path: str | Path) -> float:
    """Duration of an audio file in seconds, from its header when possible.

    Raises:
        DataError: the file is missing, unreadable or empty.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "audio file not found")
    try:
        info = sf.info(str(path))
        duration = info.frames / info.samplerate
    except Exception:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                duration = float(librosa.get_duration(path=str(path)))
        except Exception as exc:
            raise DataError(path, f"unreadable audio ({exc})") from exc
    if duration <= 0:
        raise DataError(path, "audio file is empty (0 samples)")
    return float(duration)


def match_channels(audio: np.ndarray, channels: int, path: str | Path | None = None) -> np.ndarray:
    """Make `audio` (C, n) have `channels` rows.

    Mono is duplicated to any number of channels; more channels than wanted are mixed down by
    averaging `C / channels` neighbouring channels per output (all of them for mono output).

    Raises:
        DataError: asked to upmix a multi-channel file (e.g. stereo to 4 channels).
    """
    have = audio.shape[0]
    if have == channels:
        return audio
    if have == 1:
        return np.repeat(audio, channels, axis=0)
    if have > channels:
        return np.stack([g.mean(axis=0) for g in np.array_split(audio, channels, axis=0)]).astype(np.float32)
    raise DataError(path, f"audio has {have} channels; cannot make the {channels} asked for (in_channels)")


def load_audio(path: str | Path, sample_rate: int, channels: int, start_s: float = 0.0) -> np.ndarray:
    """Load wav/flac/ogg/mp3 as float32 (channels, samples) at `sample_rate`, from `start_s` on.

    soundfile reads the file; librosa (audioread) is the fallback for what libsndfile cannot
    decode (some mp3s). Channels are matched with `match_channels`, then the audio is resampled
    with `librosa.resample` and the first `start_s` seconds are dropped.

    Raises:
        DataError: missing, unreadable or empty file, non-finite samples, impossible channel
            layout, or nothing left after `start_s`.
    """
    path = Path(path)
    audio, sr = _read_raw(path)
    audio = match_channels(audio, channels, path)
    if sr != sample_rate:
        audio = librosa.resample(audio, orig_sr=sr, target_sr=sample_rate, axis=-1).astype(np.float32)
    start = int(round(start_s * sample_rate))
    if start < 0:
        raise DataError(path, f"audio start {start_s} s is negative")
    if start >= audio.shape[-1]:
        raise DataError(
            path, f"audio is {audio.shape[-1] / sample_rate:.2f} s long; nothing after {start_s} s"
        )
    return np.ascontiguousarray(audio[:, start:])
