"""The residual layers and head of one generation step as one compiled call (CPU, float32).

`incremental.Stepper` runs a step as about 75 PyTorch calls; at batch 1 each costs more in
dispatch than in arithmetic. `csrc/fused_step.cpp` does `ResidualLayer.step` for every layer,
the skip sum and `Wavenet.head_params` (post-net, attention pooling, projection) in one call:
register-tiled GEMMs on the step's rows, the gate with a vectorized exp, one thread barrier per
layer. It implements the layers whose `ResidualLayer.STEP_KIND` is `STEP_KIND` below (else the
PyTorch step runs) and the head when `Wavenet.HEAD_KIND` is `HEAD_KIND` (else the head runs as
PyTorch calls on the compiled skip sum). `Downsampler.to_levels` and sampling stay in PyTorch.

Build: the first use compiles the source with the system C++ compiler (`$CXX`, else `c++`/`g++`;
about 5 s) into a cache folder (`$WAVENET_EDA_CACHE`, else `~/.cache/wavenet-eda`), keyed by the
source, the compiler, its flags and this CPU's instruction sets; later processes load it from
there. No compiler, or a failed build, means the PyTorch step with one warning.
`WAVENET_EDA_FUSED=0` turns the compiled step off (no warning).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from wavenet_lib.models.incremental import Stepper

__all__ = ["STEP_KIND", "HEAD_KIND", "FusedLayers", "fused_layers_for", "load_library", "cache_dir"]

STEP_KIND = "gated-dilated-k2-residual-skip/v1"
HEAD_KIND = "relu-1x1-relu-1x1-relu-attention-pool-proj/v1"
SOURCE = Path(__file__).parent / "csrc" / "fused_step.cpp"
FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-fopenmp"]

_library: ctypes.CDLL | None = None
_tried = False


def cache_dir() -> Path:
    """Folder of compiled kernels: `$WAVENET_EDA_CACHE/fused_step`, default ~/.cache/wavenet-eda."""
    root = os.environ.get("WAVENET_EDA_CACHE") or Path.home() / ".cache" / "wavenet-eda"
    return Path(root) / "fused_step"


def _compiler() -> str | None:
    cxx = os.environ.get("CXX")
    if cxx:
        return shutil.which(cxx)
    return shutil.which("c++") or shutil.which("g++")


def _cpu_features() -> str:
    """This CPU's instruction-set flags (a build with -march=native is only valid on its kind)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _build(cxx: str) -> Path:
    """Compile the kernel into the cache (once per source/compiler/flags/CPU) and return its path."""
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout
    for march in (["-march=native"], []):
        flags = FLAGS + march
        key = hashlib.sha1(
            "\n".join([SOURCE.read_text(), cxx, version, " ".join(flags), _cpu_features()]).encode()
        ).hexdigest()[:16]
        target = cache_dir() / f"fused_step_{key}.so"
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            out = Path(tmp) / target.name
            done = subprocess.run([cxx, *flags, str(SOURCE), "-o", str(out)], capture_output=True, text=True)
            if done.returncode == 0:
                os.replace(out, target)  # atomic: a concurrent build or reader never sees half a file
                return target
            error = done.stderr.strip().splitlines()[-1:] or ["unknown error"]
    raise RuntimeError(f"{cxx} failed to build {SOURCE.name}: {error[0]}")


def load_library() -> ctypes.CDLL | None:
    """The compiled kernel, built on first use; None (after one warning) when it cannot be built."""
    global _library, _tried
    if _tried:
        return _library
    _tried = True
    cxx = _compiler()
    try:
        if cxx is None:
            raise RuntimeError("no C++ compiler found ($CXX, c++, g++)")
        lib = ctypes.CDLL(str(_build(cxx)))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        warnings.warn(
            f"fast generation step not compiled ({exc}); generation uses the PyTorch step, "
            "several times slower at batch 1. Install a C++ compiler (g++) to enable it.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    pp = ctypes.POINTER(ctypes.c_void_p)
    lib.fused_create.restype = p
    lib.fused_create.argtypes = [i32] * 7 + [ctypes.POINTER(i32)] + [pp] * 6 + [p] * 4
    lib.fused_step.restype = None
    lib.fused_step.argtypes = [p, i64, p, p, p, p, i32]
    lib.fused_head.restype = None
    lib.fused_head.argtypes = [p, i32, i32, i32] + [p] * 9
    lib.fused_free.restype = None
    lib.fused_free.argtypes = [p]
    _library = lib
    return lib


class FusedLayers:
    """`Stepper._layers` compiled: conditioning rows (n*B, cond) of step t → Σ skips (n*B, S),
    or, with the head (`self.head`), → head parameters (B, C_out, P).

    Borrows the stepper's weights and audio-only tensors (kept alive here); owns the layers'
    history buffers, so one instance serves one clip from step 0 on, as a `Stepper` does.
    """

    def __init__(self, lib: ctypes.CDLL, stepper: Stepper) -> None:
        s = stepper
        w = s.weights
        g = w[0].cur.shape[1] // 2
        self._keep = keep = []  # everything the C side points into

        def ptr(t: torch.Tensor | None) -> int | None:
            if t is None:
                return None
            t = t.detach().contiguous()
            keep.append(t)
            return t.data_ptr()

        def array(tensors: list[torch.Tensor | None]) -> ctypes.Array:
            return (ctypes.c_void_p * len(tensors))(*[ptr(t) for t in tensors])

        skip = torch.cat([wi.skip[:-1] for wi in w])  # (L*G, S)
        skip_b = torch.stack([wi.skip[-1] for wi in w]).sum(0)  # (S,)
        dil = (ctypes.c_int * len(w))(*[layer.dilation for layer in s.layers])
        self.rows, self.s = s.n * s.batch, skip.shape[1]
        self._lib = lib
        self._net = lib.fused_create(
            len(w), s.n, s.batch, s.x0.shape[2], g, self.s, w[0].cond.shape[0], dil,
            array([wi.prev for wi in w]), array([wi.cur for wi in w]), array([wi.cond for wi in w]),
            array([wi.bias for wi in w]),
            array([None if wi.residual is None else wi.residual[:-1] for wi in w]),
            array([None if wi.residual is None else wi.residual[-1] for wi in w]),
            ptr(skip), ptr(skip_b), ptr(s.x0), ptr(s.h0),
        )  # fmt: skip
        self.head = stepper.model.HEAD_KIND == HEAD_KIND
        if self.head:  # the step then ends at the head parameters, not the skip sum
            hw = stepper.model.head_step_weights()
            outs, d, params = hw.proj.shape
            lib.fused_head(self._net, d, params, outs, *[ptr(t) for t in hw])
            self.out = s.x0.new_empty(s.batch, outs, params)
        else:
            self.out = s.x0.new_empty(self.rows, self.s)
        self.table = s.c_table
        self.threads = s.threads

    @staticmethod
    def supports(stepper: Stepper, mfcc: torch.Tensor) -> bool:
        """Whether the kernel computes this model's step: CPU float32 and layers of `STEP_KIND`."""
        return (
            mfcc.device.type == "cpu"
            and stepper.x0.dtype == torch.float32
            and all(layer.STEP_KIND == STEP_KIND for layer in stepper.layers)
        )

    def __call__(self, t: int, c: torch.Tensor | None, level: torch.Tensor | None = None) -> torch.Tensor:
        """Step t from conditioning rows c (n*B, cond), or, with c None, from the stepper's
        conditioning table at each sample's previous level `level` (B,) int64: the head
        parameters (B, C_out, P) when `self.head` (the model's head is of `HEAD_KIND`), else
        Σ skips (n*B, S). The returned tensor is overwritten by the next call."""
        if c is None:
            level = level.contiguous()  # kept referenced until the call returns
            args = (None, self.table.data_ptr(), level.data_ptr())
        else:
            c = c.contiguous()
            args = (c.data_ptr(), None, None)
        self._lib.fused_step(self._net, t, *args, self.out.data_ptr(), self.threads)
        return self.out

    def __del__(self) -> None:
        net, self._net = getattr(self, "_net", None), None
        if net:
            self._lib.fused_free(net)


def fused_layers_for(stepper: Stepper, mfcc: torch.Tensor) -> FusedLayers | None:
    """The compiled layers for this stepper, or None: not supported (see `FusedLayers.supports`),
    turned off (`WAVENET_EDA_FUSED=0`) or not buildable (one warning per process)."""
    if os.environ.get("WAVENET_EDA_FUSED", "1") == "0" or not FusedLayers.supports(stepper, mfcc):
        return None
    lib = load_library()
    return None if lib is None else FusedLayers(lib, stepper)
