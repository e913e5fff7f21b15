"""Tiny experiments and in-memory window datasets for the training tests.

A module (not conftest) so spawned DDP worker processes can import it.
"""

from __future__ import annotations

import faulthandler
import os
import socket
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from tests.tiny_configs import SPF1, tiny_model
from wavenet_lib.configs import ExperimentConfig
from wavenet_lib.models.quantization import dequantize, quantize

# spf 1: 64 Hz audio, hop 16, EDA 4 Hz; 2 s context → 3 layers, first_full_step 7.
TINY_MODEL = tiny_model(SPF1)


def tiny_experiment(
    name: str = "tiny", seed: int = 0, model: dict[str, Any] | None = None, **train: Any
) -> ExperimentConfig:
    """Experiment with the tiny model, 4 target steps and a short, fast training schedule."""
    train_cfg = dict(
        batch_size=4,
        max_steps=6,
        learning_rate=3e-3,
        warmup_steps=2,
        val_every=3,
        val_batches=2,
        checkpoint_every=2,
        log_every=1,
        device="cpu",
    )
    train_cfg.update(train)
    return ExperimentConfig.model_validate(
        {
            "name": name,
            "seed": seed,
            "model": {**TINY_MODEL, **(model or {})},
            "data": {"target_steps": 4},
            "train": train_cfg,
        }
    )


class WindowDataset(Dataset):
    """Random MFCCs and a smooth random EDA walk, shaped like the data pipeline's windows.

    `nan_after`: items fetched after this many `__getitem__` calls have NaN MFCCs (to make the
    loss NaN at a known step when num_workers=0).
    """

    def __init__(self, cfg: ExperimentConfig, n: int, seed: int = 0, nan_after: int | None = None) -> None:
        m = cfg.model
        steps = m.first_full_step + cfg.data.target_steps
        spf, q = m.spectral_frames_per_eda_step, m.quantization_levels
        g = torch.Generator().manual_seed(seed)
        self.mfcc = torch.randn(n, m.in_channels, steps * spf, m.num_mfccs, generator=g)
        walk = torch.tanh(torch.cumsum(0.3 * torch.randn(n, m.out_channels, steps + 1, generator=g), -1))
        levels = quantize(walk, q)
        self.eda_prev = dequantize(levels[..., :-1], q)
        self.target = levels[..., 1:]
        self.nan_after = nan_after
        self.calls = 0

    def __len__(self) -> int:
        return self.mfcc.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        self.calls += 1
        mfcc = self.mfcc[i]
        if self.nan_after is not None and self.calls > self.nan_after:
            mfcc = torch.full_like(mfcc, float("nan"))
        return {
            "mfcc": mfcc,
            "eda_prev": self.eda_prev[i],
            "target": self.target[i],
            "recording_id": f"rec{i % 3}",
            "start_step": i,
        }


def datasets(cfg: ExperimentConfig, n_train: int = 16, n_val: int = 8) -> tuple[WindowDataset, WindowDataset]:
    return WindowDataset(cfg, n_train, seed=1), WindowDataset(cfg, n_val, seed=2)


def load_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if atol == 0.0:
            assert torch.equal(a[k], b[k]), f"{k} differs"
        else:
            torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=f"{k} differs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join_local_group(rank: int, world_size: int, port: int) -> None:
    """Environment of one process of a loopback gloo group; one thread; a 90 s hang watchdog."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    torch.set_num_threads(1)
    faulthandler.dump_traceback_later(90, exit=True)  # a hung collective fails the test, never blocks CI


def ddp_worker(rank: int, world_size: int, port: int, run_dir: str, out_dir: str, train_kw: dict) -> None:
    """One process of a gloo DDP run (torch.multiprocessing.spawn target): train, save weights."""
    _join_local_group(rank, world_size, port)
    from wavenet_lib.train.loop import train

    cfg = tiny_experiment(**train_kw)
    result = train(cfg, *datasets(cfg), run_dir, progress=False)
    torch.save(result.model.state_dict(), Path(out_dir) / f"rank{rank}.pt")


def ddp_interrupt_worker(rank: int, world_size: int, port: int, run_dir: str, out_dir: str, at: int) -> None:
    """A gloo DDP run in which only rank 1 gets SIGTERM (at its `at`-th window fetch); each
    rank records the step at which it stopped."""
    import signal

    _join_local_group(rank, world_size, port)
    from wavenet_lib.train.interrupts import TrainingInterrupted
    from wavenet_lib.train.loop import train

    class SignalOnRank1(WindowDataset):
        def __getitem__(self, i: int) -> dict[str, Any]:
            item = super().__getitem__(i)
            if rank == 1 and self.calls == at:
                os.kill(os.getpid(), signal.SIGTERM)
            return item

    cfg = tiny_experiment(max_steps=50, checkpoint_every=100, val_every=100)
    try:
        train(cfg, SignalOnRank1(cfg, 16, seed=1), None, run_dir, progress=False)
        stopped = "finished"
    except TrainingInterrupted as exc:
        stopped = str(exc.step)
    (Path(out_dir) / f"rank{rank}.txt").write_text(stopped)
