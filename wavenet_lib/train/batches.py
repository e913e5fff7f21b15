"""The training data order: which windows each process takes at each step, across epochs.

Epoch e is one pass of a `DistributedSampler` (shuffled, seeded by (seed, e), also with one
process) cut into batches of `batch_size / world_size` windows, so batch b of epoch e is a
pure function of (seed, e, b): a resumed run picks up exactly where the checkpoint left off.
"""

from __future__ import annotations

from collections.abc import Generator, Sized
from typing import Any, cast

import torch
from torch.utils.data import Dataset, DistributedSampler

from wavenet_lib.seeding import derive_seed
from wavenet_lib.train.distributed import DistEnv
from wavenet_lib.train.step import window_loader

__all__ = ["TrainingBatches"]


class TrainingBatches:
    """This process's training batches from any step on.

    Args:
        dataset: the training windows (with an optional `set_epoch(epoch)` for random crops).
        batch_size: the global batch size (divisible by the number of processes).
        seed: the experiment seed.
        env: the process group.

    Raises:
        ValueError: the batch does not split evenly over processes, or the dataset holds
            fewer windows than one batch.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, env: DistEnv) -> None:
        if batch_size % env.world_size:
            raise ValueError(
                f"train.batch_size ({batch_size}) is the global batch and must be divisible by "
                f"the number of processes ({env.world_size})"
            )
        self.dataset, self.seed, self.env = dataset, seed, env
        self.local_batch = batch_size // env.world_size
        self.windows = len(cast(Sized, dataset))
        self.sampler: DistributedSampler = DistributedSampler(
            dataset, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=seed, drop_last=True
        )
        self.per_epoch = len(self.sampler) // self.local_batch
        if self.per_epoch == 0:
            raise ValueError(
                f"the training set has {self.windows} windows, fewer than one batch "
                f"(train.batch_size={batch_size}); lower batch_size or add data"
            )

    def from_step(
        self, step: int, num_workers: int, device: torch.device
    ) -> Generator[dict[str, Any], None, None]:
        """Batches for steps `step + 1, step + 2, ...`, without end (a new epoch when one runs out)."""
        while True:
            epoch, offset = divmod(step, self.per_epoch)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            self.sampler.set_epoch(epoch)
            indices = list(self.sampler)
            b = self.local_batch
            batches = [indices[i * b : (i + 1) * b] for i in range(offset, self.per_epoch)]
            seed = derive_seed(self.seed, epoch, self.env.rank)
            for batch in window_loader(self.dataset, batches, num_workers, seed, device):
                step += 1
                yield batch
