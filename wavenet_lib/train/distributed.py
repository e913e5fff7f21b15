"""Multi-process training helpers: process groups, ranks and collective shortcuts.

Training runs unchanged in one process or under ``torchrun --nproc_per_node=N``: torchrun sets
RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, and `init_distributed` turns them
into a process group (gloo on CPU, nccl on CUDA). Every collective here is a no-op in a single
process, so callers never branch on "am I distributed". Only rank 0 writes checkpoints, metrics
and progress bars (`DistEnv.is_main`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistEnv",
    "env_world_size",
    "init_distributed",
    "cleanup_distributed",
    "barrier",
    "all_reduce_sum",
    "all_reduce_max",
    "all_gather_objects",
]


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: global rank, rank on its node, number of processes."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and shows progress (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    """WORLD_SIZE from the environment (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device_type: str = "cpu") -> DistEnv:
    """Join the process group torchrun (or a test) described in the environment.

    With WORLD_SIZE unset or 1 this does nothing and returns rank 0 of 1. An already
    initialized group is reused (then `initialized_here` is False and the caller must not
    destroy it).

    Args:
        device_type: "cuda" picks the nccl backend, anything else gloo.

    Raises:
        RuntimeError: WORLD_SIZE > 1 but RANK / MASTER_ADDR / MASTER_PORT are missing.
    """
    if dist.is_available() and dist.is_initialized():
        return DistEnv(
            rank=dist.get_rank(),
            local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
            world_size=dist.get_world_size(),
        )
    world_size = env_world_size()
    if world_size <= 1:
        return DistEnv()
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world_size} but {', '.join(missing)} not set; launch with "
            "`torchrun --nproc_per_node=N -m wavenet_lib train CONFIG`"
        )
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistEnv(rank=rank, local_rank=local_rank, world_size=world_size, initialized_here=True)


def cleanup_distributed(env: DistEnv) -> None:
    """Destroy the process group if `init_distributed` created it."""
    if env.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    """Wait for every process (no-op in one process)."""
    if env.distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum `tensor` over processes in place and return it (unchanged in one process)."""
    if env.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Element-wise maximum of `tensor` over processes, in place (unchanged in one process)."""
    if env.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def all_gather_objects(obj: Any, env: DistEnv) -> list[Any]:
    """Every process's `obj`, in rank order ([obj] in one process)."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out
