"""Audio files in: read (wav, flac, ogg, mp3), match channels, resample, measure duration.

Durations are measured by decoding, not read from the header: a truncated mp3 or flac (a
partial download) keeps a header that states the full length, and trusting it would pad the
missing part with silence. A file that decodes shorter than its header states (by more than
`TRUNCATION_TOLERANCE_S`) is rejected as truncated with a `DataError` giving both lengths.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from wavenet_lib.errors import DataError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
TRUNCATION_TOLERANCE_S = 0.1  # decoded length may fall short of the header's by this much


def _reason(exc: BaseException) -> str:
    """A readable reason for a decoder exception, never an empty string."""
    if type(exc).__name__ == "NoBackendError":  # audioread's, raised without a message
        return "no decoder could read it (not an audio file, or a damaged one)"
    text = str(exc).strip()
    if text:
        return text
    code = getattr(exc, "code", None)
    return type(exc).__name__ + (f" (libsndfile error code {code})" if code is not None else "")


def _librosa_decode(path: Path, sf_exc: Exception) -> tuple[np.ndarray, int]:
    """Decode what libsndfile could not open (some mp3s) with librosa/audioread: (channels, n), rate.

    Raises:
        DataError: neither decoder can read it, with both reasons.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            audio, sr = librosa.load(str(path), sr=None, mono=False)
    except Exception as exc:
        raise DataError(
            path, f"unreadable audio (soundfile: {_reason(sf_exc)}; librosa: {_reason(exc)})"
        ) from exc
    return np.atleast_2d(audio).astype(np.float32), int(sr)


def _decode(path: Path, keep: bool) -> tuple[float, np.ndarray | None, int]:
    """Decode a whole file block by block: (decoded seconds, (channels, n) float32 or None, rate).

    The one decoder of this module: `keep=False` measures the length without holding the
    audio (`audio_duration`), `keep=True` also returns it (`load_audio`). Either way the file
    is checked against its header (`TRUNCATION_TOLERANCE_S`) and its decoded length remembered,
    so a file read for its samples is never decoded again for its length.

    Raises:
        DataError: missing, unreadable (with both decoders' reasons), damaged or truncated.
    """
    if not path.is_file():
        raise DataError(path, "audio file not found")
    blocks: list[np.ndarray] = []
    try:
        with sf.SoundFile(str(path)) as fh:
            sr = fh.samplerate
            header = fh.frames / sr
            frames = 0
            try:
                while n := len(block := fh.read(1 << 16, dtype="float32", always_2d=True)):
                    frames += n  # blocks() would pad to the header
                    if keep:
                        blocks.append(block)
            except Exception as exc:
                raise DataError(
                    path,
                    f"audio is damaged: decoding stops after {frames / sr:.2f} s of the "
                    f"{header:.2f} s its header states ({_reason(exc)}); re-export or re-download it",
                ) from exc
    except DataError:
        raise
    except Exception as sf_exc:  # libsndfile cannot open it: decode with librosa/audioread
        audio, sr = _librosa_decode(path, sf_exc)
        _remember_duration(path, audio.shape[-1] / sr)
        return audio.shape[-1] / sr, audio if keep else None, sr
    decoded = frames / sr
    if decoded < header - TRUNCATION_TOLERANCE_S:
        raise DataError(
            path,
            f"audio is truncated: its header says {header:.2f} s but only {decoded:.2f} s decode "
            "(a damaged or partly downloaded file); re-export or re-download it",
        )
    _remember_duration(path, decoded)
    if not keep:
        return decoded, None, sr
    audio = np.ascontiguousarray(np.concatenate(blocks).T) if blocks else np.zeros((1, 0), np.float32)
    return decoded, audio, sr


def decode_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a file to (channels, samples) float32 at its own rate; DataError if impossible.

    Its length is remembered (`audio_duration` then answers without decoding); `load_audio`
    takes the result as `decoded` to match channels, resample and cut it without decoding again.
    """
    path = Path(path)
    _, audio, sr = _decode(path, keep=True)
    assert audio is not None
    if audio.shape[-1] == 0:
        raise DataError(path, "audio file is empty (0 samples)")
    if not np.isfinite(audio).all():
        raise DataError(path, "audio contains NaN or infinite samples")
    return audio, int(sr)


_duration_memo: dict[tuple[str, int, int], float] = {}


def _memo_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def _remember_duration(path: Path, seconds: float) -> None:
    _duration_memo[_memo_key(path)] = float(seconds)


def duration_known(path: str | Path) -> bool:
    """Whether this process has decoded the file (as it is now) already, so that
    `audio_duration` answers without decoding."""
    path = Path(path)
    return path.is_file() and _memo_key(path) in _duration_memo


def audio_duration(path: str | Path) -> float:
    """Duration of an audio file in seconds, as decoded (the header is not trusted).

    The result is remembered per (file, size, modification time), so a file is decoded for
    its length once per process, and not at all after `load_audio` decoded it.

    Raises:
        DataError: the file is missing, unreadable, empty, or truncated (decodes shorter than
            its header states).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "audio file not found")
    key = _memo_key(path)
    if key not in _duration_memo:
        _decode(path, keep=False)
    duration = _duration_memo[key]
    if duration <= 0:
        raise DataError(path, "audio file is empty (0 samples)")
    return duration


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


def load_audio(
    path: str | Path,
    sample_rate: int,
    channels: int,
    start_s: float = 0.0,
    decoded: tuple[np.ndarray, int] | None = None,
) -> np.ndarray:
    """Load wav/flac/ogg/mp3 as float32 (channels, samples) at `sample_rate`, from `start_s` on.

    soundfile reads the file; librosa (audioread) is the fallback for what libsndfile cannot
    decode (some mp3s). Channels are matched with `match_channels`, then the audio is resampled
    with `librosa.resample` and the first `start_s` seconds are dropped. `decoded`: the file's
    `decode_audio` result when the caller has it (the file is then not read again).

    Raises:
        DataError: missing, unreadable or empty file, non-finite samples, impossible channel
            layout, or nothing left after `start_s`.
    """
    path = Path(path)
    audio, sr = decode_audio(path) if decoded is None else decoded
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
