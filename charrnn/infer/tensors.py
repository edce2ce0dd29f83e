"""A checkpoint's sampling weights read as numpy arrays, straight from the file: no torch, no pickle,
nothing executed. The engines without torch (numpy, onnx) and the exports load through here.

It does not validate the header (`checkpoint.read_header` did) nor arrange the weights for an engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from charrnn import checkpoint
from charrnn.errors import InputError

F32 = np.float32
_NP_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "BF16": "<u2"}


def read_model_tensors(header: checkpoint.Header) -> dict[str, np.ndarray]:
    """The sampling weights of a validated header (the average where there is one, see
    `checkpoint.sampling_prefix`) as float32 arrays named `model.*`, read straight from the file at
    the offsets the header check already bounded (no pickle, no code, optimizer state skipped)."""
    out: dict[str, np.ndarray] = {}
    prefix = checkpoint.sampling_prefix(header)
    try:
        with Path(header.path).open("rb") as f:
            for name, info in header.tensors.items():
                if not name.startswith(prefix):
                    continue
                if info.dtype not in _NP_DTYPES:
                    raise InputError(f"{header.path}: tensor {name} has dtype {info.dtype}")
                f.seek(header.data_start + info.start)
                raw = f.read(info.end - info.start)
                arr = np.frombuffer(raw, dtype=_NP_DTYPES[info.dtype]).reshape(info.shape)
                if info.dtype == "BF16":  # numpy has no bf16: widen the bits into float32
                    arr = (arr.astype(np.uint32) << 16).view(F32)
                out["model." + name.removeprefix(prefix)] = arr.astype(F32)
    except OSError as e:
        raise InputError(f"{header.path}: cannot read ({e.strerror})") from None
    if len(out) and not all(np.isfinite(a).all() for a in out.values()):
        raise InputError(f"{header.path}: corrupt checkpoint (non-finite weights)")
    return out
