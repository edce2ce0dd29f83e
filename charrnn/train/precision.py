"""Where a run executes: device choice, numeric precision, and the run-directory lock.

Kept apart from the loop because these answer questions about the machine (is there a GPU, does this
CPU do bf16 natively, is another process using this directory), not about training.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import ClassVar

import torch

from charrnn.errors import InputError
from charrnn.train import distributed


def resolve_device(name: str, world: distributed.World | None = None) -> torch.device:
    """'auto' → cuda, else mps, else cpu; an explicit choice that is unavailable is an error."""
    if name not in ("auto", "cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise InputError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if _mps() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA GPU is available to this torch build")
        if world is not None and world.size > 1:
            return distributed.cuda_device(world)
    if name == "mps" and not _mps():
        raise InputError("--device mps: Apple's Metal backend is not available here")
    return torch.device(name)


def _mps() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def native_bf16_cpu() -> bool:
    """True where the CPU has bf16 arithmetic (AVX512-BF16 or AMX), so bf16 beats fp32."""
    if sys.platform != "linux":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(name: str, device: torch.device, cell: str) -> str:
    """'auto' picks bf16 only where it is native and measured faster (all three cells on CPUs with
    AVX512-BF16; Ampere+ GPUs), else fp32. Explicit choices are checked for support."""
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if device.type == "cpu" and native_bf16_cpu() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise InputError("--precision fp16 needs a CUDA GPU; on CPU use bf16")
    if name == "bf16" and device.type == "cpu" and not torch.backends.mkldnn.is_available():
        raise InputError("--precision bf16 is not supported by this torch build on CPU")
    return name


def autocast(device: torch.device, precision: str):
    """Mixed precision: weights and optimizer stay fp32, matrix products run in bf16/fp16."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


class RunLock:
    """An exclusive lock on a run directory, so two trainings never write the same checkpoints.

    flock is released by the kernel when its holder dies, so a crashed run never blocks the next;
    the pid inside is only for the message.
    """

    _held: ClassVar[set[Path]] = set()  # directories this process holds: re-entering is a no-op

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.resolve() in RunLock._held:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; run unguarded
            self._fd = fd
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InputError(
                f"{self.path.parent} is in use by another charrnn train (pid {other}); "
                "wait for it or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        RunLock._held.add(self.path.resolve())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            RunLock._held.discard(self.path.resolve())
            os.close(self._fd)
            self._fd = None
