"""Ctrl-C and SIGTERM during training: finish the step, save `last.pt`, stop with a way back.

While `StopSignals` is active, SIGINT and SIGTERM only set a flag; the loop asks `poll` at each
step boundary and, once any process saw a signal, every process saves the same checkpoint and
raises `TrainingInterrupted`, so the run resumes bitwise from there with `--resume`. A second
signal of the same kind while saving falls back to the default behaviour (a hard stop). The
same poll also says when `last.pt` is older than `train.checkpoint_every_minutes`, so a crash
(kill -9, power loss) loses at most that much work; both answers are agreed by all ranks (one
all-reduce) so DDP processes always save together.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import torch

from wavenet_lib.train.distributed import DistEnv, all_reduce_max

__all__ = ["TrainingInterrupted", "StopSignals"]

_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving `last.pt`; resume with `--resume`.

    Attributes:
        step: steps done (and saved).
        signal_name: "SIGINT" or "SIGTERM".
        checkpoint: the saved `last.pt`.
        exit_status: 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, step: int, signum: int, checkpoint: Path) -> None:
        self.step, self.checkpoint = step, checkpoint
        self.signal_name = signal.Signals(signum).name
        self.exit_status = 128 + int(signum)
        super().__init__(
            f"training interrupted by {self.signal_name} at step {step}; saved {checkpoint}; "
            f"continue with: wavenet-eda train CONFIG --run-dir {checkpoint.parent} --resume"
        )


class StopSignals:
    """Context manager turning SIGINT/SIGTERM into a stop request (main thread only; elsewhere
    the handlers are left alone and only `poll`'s checkpoint timer works)."""

    def __init__(self, env: DistEnv) -> None:
        self.env = env
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))  # a second one stops hard

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in _SIGNALS:
                self._previous[s] = signal.getsignal(s)
                signal.signal(s, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def poll(self, checkpoint_due: bool, device: torch.device) -> tuple[int | None, bool]:
        """At a step boundary: (the signal any process received or None, save last.pt now?).

        Collective under DDP: every rank calls it once per step and gets the same answer.
        """
        flags = torch.tensor([float(self.signum or 0), float(checkpoint_due)], dtype=torch.float64)
        flags = all_reduce_max(flags.to(device), self.env).cpu()
        signum = int(flags[0].item()) or None
        return signum, bool(flags[1].item()) or signum is not None
