"""A fingerprint of the prepared training data, so `--resume` can tell when the data changed.

The digest (BLAKE2b) covers, per recording in id order: its manifest row, the EDA in µS as
prepared in memory (every sample), and its audio file's size plus three 1 MiB samples (start,
middle, end; whole files are not read, so the check stays fast for hours of audio), then the
stored EDA normalization. Besides the digest, the fingerprint keeps a few readable facts for
the warning: number of recordings, the EDA range (µS) and the training windows per epoch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from wavenet_lib.data.normalization import MinMaxNormalizer

__all__ = ["data_fingerprint", "file_sample_digest"]

_SAMPLE = 1 << 20


def file_sample_digest(path: str | Path) -> str:
    """Hex digest of a file's size and three 1 MiB samples (start, middle, end); "missing" if absent."""
    path = Path(path)
    try:
        size = path.stat().st_size
        h = hashlib.blake2b(str(size).encode(), digest_size=16)
        with path.open("rb") as fh:
            for start in sorted({0, max(0, size // 2 - _SAMPLE // 2), max(0, size - _SAMPLE)}):
                fh.seek(start)
                h.update(fh.read(_SAMPLE))
    except OSError:
        return "missing"
    return h.hexdigest()


def data_fingerprint(bundle: Any, normalizer: MinMaxNormalizer | None) -> dict[str, Any]:
    """Fingerprint of the training data of a `wavenet_lib.data.bundle.DataBundle`.

    Args:
        bundle: the prepared data (its `splits["train"]`, `recordings` and `train` are read).
        normalizer: the EDA normalization stored with the model.

    Returns:
        {"digest": hex str, "recordings": int, "eda_range_us": [lo, hi] or None, "windows": int}
    """
    h = hashlib.blake2b(digest_size=20)
    ids = sorted(bundle.splits["train"])
    for rid in ids:
        rec = bundle.recordings[rid]
        h.update(rec.row.model_dump_json().encode())
        h.update(np.ascontiguousarray(rec.eda_us, dtype=np.float64).tobytes())
        h.update(file_sample_digest(rec.row.audio_path).encode())
    if normalizer is not None:
        h.update(repr(sorted(normalizer.to_dict().items())).encode())
    return {
        "digest": h.hexdigest(),
        "recordings": len(ids),
        "eda_range_us": None if normalizer is None else [float(normalizer.lo), float(normalizer.hi)],
        "windows": len(bundle.train),
    }
