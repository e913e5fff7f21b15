"""Seeds: one way to derive independent seeds from a base seed, and to seed every library.

Every random stream of the library (window sampling per epoch and item, data-loader order per
epoch and rank, the synthetic dataset per recording and subject) comes from `derive_seed`
(numpy's `SeedSequence`, built to turn a tuple of integers into well-mixed, independent
streams), so no module carries its own magic mixing constants.
"""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["derive_seed", "seed_everything", "seed_worker"]


def derive_seed(*keys: int) -> int:
    """A 63-bit seed for the stream named by `keys` (e.g. `derive_seed(seed, epoch, index)`).

    The same keys always give the same seed; keys differing in any position give unrelated
    seeds. Keys must be non-negative integers.
    """
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and python `random`."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: seed numpy and `random` from the worker's torch seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
