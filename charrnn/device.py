"""Which device a command runs on: `auto`, `cpu`, `cuda` (or `cuda:N`) and `mps`, checked once for
every path (training, sampling, scoring, serving).

`cpu` is answered without importing torch, so CPU sampling stays torch-free; any other name asks
torch. It does not place tensors or choose precision.
"""

from __future__ import annotations

from charrnn.digits import decimal
from charrnn.errors import InputError

NAMES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str) -> str:
    """'auto' → cuda, else mps, else cpu; an explicit device that is not there is an `InputError`
    (one line, exit 2) rather than a failure deep inside torch."""
    if name not in NAMES and not (name.startswith("cuda:") and decimal(name[5:], 4) is not None):
        raise InputError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    if name == "cpu":
        return name
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if _mps() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: no CUDA GPU is available to this torch build")
        index = (decimal(name[5:]) or 0) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: this machine has {torch.cuda.device_count()} GPUs")
    if name == "mps" and not _mps():
        raise InputError("--device mps: Apple's Metal backend is not available here")
    return name


def _mps() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
