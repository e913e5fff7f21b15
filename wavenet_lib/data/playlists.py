"""Listening sessions cut from the real recordings shipped in `wavenet_lib/data/music/`.

A session is what a participant hears in a music-listening study: excerpts of real pieces,
each at its own level, faded in or starting abruptly, sometimes turned up or down part-way,
separated by short pauses, over a faint noise floor (room noise, hiss). The pieces bring their
own dynamics (crescendos, accents, changes of instrumentation); the session adds the level
changes of real listening. Each excerpt may also play slightly fast or slow (varispeed: tempo
and pitch together), so sessions built from three pieces do not repeat sample for sample.

Everything is drawn from the generator passed in, so a seed gives the same session.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

from wavenet_lib.configs import SyntheticDataConfig

__all__ = ["PIECES", "Excerpt", "music_path", "load_piece", "make_session"]

PIECES: tuple[str, ...] = (
    "brahms_hungarian_dance_5",
    "hobbs_lets_go_fishin",
    "macleod_sugar_plum_fairy",
)
NATIVE_RATE = 44100
PIECE_RMS_DBFS = -20.0  # every piece is brought to this RMS before the excerpt's gain
NOISE_FLOOR_DBFS = -66.0  # RMS of the session's noise floor


def music_path(piece: str):
    """Path (importlib Traversable) of a shipped recording, e.g. `music_path(PIECES[0])`."""
    if piece not in PIECES:
        raise ValueError(f"unknown piece {piece!r}; shipped pieces: {', '.join(PIECES)}")
    return resources.files("wavenet_lib.data") / "music" / f"{piece}.ogg"


@lru_cache(maxsize=4)
def _native(piece: str) -> np.ndarray:
    with music_path(piece).open("rb") as fh:
        audio, rate = sf.read(fh, dtype="float32", always_2d=True)
    if rate != NATIVE_RATE:
        raise ValueError(f"{music_path(piece)}: expected {NATIVE_RATE} Hz, got {rate}")
    mono = audio.mean(axis=1, dtype=np.float64)
    rms = np.sqrt(np.mean(mono**2))
    mono *= 10 ** (PIECE_RMS_DBFS / 20) / rms
    mono.setflags(write=False)
    return mono


def load_piece(piece: str, sample_rate: int) -> np.ndarray:
    """One shipped piece as float64 mono at `sample_rate`, at an RMS of -20 dBFS; shape (samples,)."""
    import librosa

    return librosa.resample(_native(piece), orig_sr=NATIVE_RATE, target_sr=sample_rate, res_type="soxr_hq")


@dataclass(frozen=True)
class Excerpt:
    """One excerpt of a session (times in seconds of the session unless said otherwise).

    Attributes:
        piece: name of the shipped recording.
        start_s, end_s: where it plays in the session.
        source_start_s: where it starts in the piece (seconds of the original recording).
        gain_db: level relative to the piece at -20 dBFS RMS.
        playback_rate: varispeed factor (1.05 plays 5 % fast and 5 % high).
        fade_in_s, fade_out_s: linear fades (a few ms means an abrupt start or stop).
        step_at_s, step_db: a level change part-way through (session time, dB; 0 dB: none).
    """

    piece: str
    start_s: float
    end_s: float
    source_start_s: float
    gain_db: float
    playback_rate: float
    fade_in_s: float
    fade_out_s: float
    step_at_s: float
    step_db: float

    def as_row(self) -> dict:
        return asdict(self)


def _excerpt_audio(ex: Excerpt, sample_rate: int, n: int) -> np.ndarray:
    import librosa

    native = _native(ex.piece)
    first = int(ex.source_start_s * NATIVE_RATE)
    need = int(np.ceil((n + 64) / sample_rate * ex.playback_rate * NATIVE_RATE))
    src = native[first : first + need]
    # Playing at rate r: the source's samples are taken as if recorded at r * 44.1 kHz.
    y = librosa.resample(
        src, orig_sr=NATIVE_RATE * ex.playback_rate, target_sr=sample_rate, res_type="soxr_hq"
    )
    y = np.pad(y[:n], (0, max(0, n - len(y))))
    t = np.arange(n) / sample_rate
    dur = n / sample_rate
    env = np.minimum(1.0, np.minimum((t + 1 / sample_rate) / ex.fade_in_s, (dur - t) / ex.fade_out_s))
    # the level change takes 0.3 s, as a hand on a volume knob
    ramp = np.clip((t + ex.start_s - ex.step_at_s) / 0.3, 0.0, 1.0)
    level_db = ex.gain_db + ramp * ex.step_db
    return y * np.clip(env, 0.0, 1.0) * 10 ** (level_db / 20)


def make_session(
    rng: np.random.Generator, duration_s: float, sample_rate: int, cfg: SyntheticDataConfig
) -> tuple[np.ndarray, list[Excerpt]]:
    """A listening session of `duration_s` seconds at `sample_rate`.

    Args:
        rng: the session's random generator.
        duration_s: session length (s).
        sample_rate: audio rate (Hz) of the result.
        cfg: excerpt lengths, gains, pauses, varispeed and level-change chance (see
            `SyntheticDataConfig`).

    Returns:
        audio: float64 (samples,) mono in [-1, 1].
        excerpts: what plays when, in order.
    """
    n_total = int(round(duration_s * sample_rate))
    excerpts: list[Excerpt] = []
    t = float(rng.uniform(*cfg.pause_s))
    previous = None
    while t < duration_s - 1.0:
        piece = PIECES[int(rng.choice([i for i in range(len(PIECES)) if PIECES[i] != previous]))]
        previous = piece
        rate = float(rng.uniform(1 - cfg.varispeed, 1 + cfg.varispeed))
        length = min(float(rng.uniform(*cfg.excerpt_s)), duration_s - t)
        piece_s = len(_native(piece)) / NATIVE_RATE
        span = length * rate
        source_start = float(rng.uniform(0.0, max(piece_s - span - 0.1, 0.0)))
        length = min(length, (piece_s - source_start) / rate - 0.05)
        abrupt_in, abrupt_out = rng.random(2) < 0.5
        fade_in = 0.01 if abrupt_in else float(rng.uniform(0.5, 3.0))
        fade_out = 0.01 if abrupt_out else float(rng.uniform(0.5, 4.0))
        has_step = rng.random() < cfg.level_change_probability and length > 8.0
        step_at = t + float(rng.uniform(3.0, length - 3.0)) if has_step else t + length
        step_db = float(rng.choice([-1, 1]) * rng.uniform(4.0, 12.0)) if has_step else 0.0
        gain = float(rng.uniform(*cfg.gain_db))
        excerpts.append(
            Excerpt(piece, t, t + length, source_start, gain, rate, min(fade_in, length / 2),
                    min(fade_out, length / 2), step_at, step_db)
        )  # fmt: skip
        t += length + float(rng.uniform(*cfg.pause_s))
    audio = np.zeros(n_total)
    for ex in excerpts:
        a = int(round(ex.start_s * sample_rate))
        b = min(int(round(ex.end_s * sample_rate)), n_total)
        audio[a:b] += _excerpt_audio(ex, sample_rate, b - a)
    pink = lfilter([1.0], [1.0, -0.95], rng.standard_normal(n_total))
    audio += pink * (10 ** (NOISE_FLOOR_DBFS / 20) / np.sqrt(np.mean(pink**2)))
    return np.clip(audio, -1.0, 1.0), excerpts
