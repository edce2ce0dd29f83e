"""A checkpoint's sampling weights as the exported files store them: the checkpoint's own tensors
(never folded: a vocab × gates first-layer table would make a large-vocabulary export several times
the model), each matrix in the chosen dtype, and the arrays an engine gets back from them.

Layout of the binary blob (`model.bin`; base64 in `model.js`): tensors one after another in the
manifest's order, each starting on a 4-byte boundary, little-endian. A float32 or float16 tensor is
its values, row-major. An int8 matrix is its values (one signed byte each) followed by one float32
scale per row; a value dequantizes to `q × scale[row]`, computed in float32 (so numpy here and
JavaScript in a page produce the same bits). Vectors (biases) stay float32 in every dtype: they are
a few kilobytes, and their rounding would shift every step.

It does not choose files or formats (`web`, `onnx`) and never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from charrnn.errors import InputError

F32 = np.float32
INT8_MAX = 127
F16_MAX = 65504.0
DTYPES: tuple[str, ...] = ("f32", "f16", "int8")
_ALIGN = 4


@dataclass(frozen=True)
class Packed:
    """The blob and, per tensor, where it lies and how it is stored (JSON-ready)."""

    tensors: list[dict]
    data: bytes


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one float32 scale per row: scale = max |row| / 127, q = round(w / scale).
    A row of zeros gets scale 0 (it dequantizes to zeros)."""
    w = np.asarray(w, dtype=F32)
    peak = np.abs(w).max(axis=1)
    scale = (peak / INT8_MAX).astype(F32)
    safe = np.where(scale > 0, scale, F32(1))
    q = np.clip(np.rint(w / safe[:, None]), -INT8_MAX, INT8_MAX).astype(np.int8)
    return q, scale


def dequantize_rows(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """q × scale[row] in float32: exactly what the JavaScript engine computes at load."""
    return q.astype(F32) * scale.astype(F32)[:, None]


def stored_dtype(shape: tuple[int, ...], dtype: str) -> str:
    """How a tensor is stored under an export dtype: matrices take it, vectors stay float32."""
    return dtype if len(shape) == 2 else "f32"


def pack(tensors: Mapping[str, np.ndarray], dtype: str) -> Packed:
    """The blob of these float32 tensors (names without `model.`), matrices stored as `dtype`."""
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    parts: list[bytes] = []
    entries: list[dict] = []
    offset = 0
    for name, value in tensors.items():
        arr = np.asarray(value, dtype=F32)
        kind = stored_dtype(arr.shape, dtype)
        entry: dict = {"name": name, "shape": list(arr.shape), "dtype": kind, "offset": offset}
        if kind == "int8":
            q, scale = quantize_rows(arr)
            body = q.tobytes()
            entry["scales"] = offset + _aligned(len(body))
            body = _pad(body) + scale.astype("<f4").tobytes()
        elif kind == "f16":
            if np.abs(arr).max(initial=0) > F16_MAX:
                raise InputError(
                    f"{name} holds values beyond float16's range (±65504); export with --dtype "
                    "f32 or int8"
                )
            body = arr.astype("<f2").tobytes()
        else:
            body = arr.astype("<f4").tobytes()
        body = _pad(body)
        entry["bytes"] = len(body)
        entries.append(entry)
        parts.append(body)
        offset += len(body)
    return Packed(entries, b"".join(parts))


def unpack(entries: list[dict], data: bytes) -> dict[str, np.ndarray]:
    """The float32 arrays an engine uses, decoded from a blob (dequantized where int8)."""
    out: dict[str, np.ndarray] = {}
    for e in entries:
        shape = tuple(e["shape"])
        n = int(np.prod(shape))
        start = e["offset"]
        if e["dtype"] == "int8":
            q = np.frombuffer(data, np.int8, n, start).reshape(shape)
            scale = np.frombuffer(data, "<f4", shape[0], e["scales"])
            out[e["name"]] = dequantize_rows(q, scale)
        elif e["dtype"] == "f16":
            out[e["name"]] = np.frombuffer(data, "<f2", n, start).astype(F32).reshape(shape)
        else:
            out[e["name"]] = np.frombuffer(data, "<f4", n, start).astype(F32).reshape(shape)
    return out


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _pad(body: bytes) -> bytes:
    return body + b"\0" * (_aligned(len(body)) - len(body))
