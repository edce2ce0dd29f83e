"""Numeric precision of a training run: which one `auto` means on this machine (does this CPU or GPU do
bf16 natively), whether an explicit one is supported, and the autocast context.

Kept apart from the loop because these answer questions about the machine, not about training; the
device itself is `charrnn.device`'s choice.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch

from charrnn.errors import InputError


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
