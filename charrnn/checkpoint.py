"""The checkpoint file: one safetensors file holding weights, vocabulary, configs, history and the
optimizer / data-position state needed to resume; written atomically, read as data only.

The header (8-byte length + JSON) is parsed and validated here without torch, so `inspect` is instant and
a hostile file is refused before any large allocation; tensor bytes are then read by safetensors, which
never executes anything. It does not know how training works: callers pass tensors and JSON metadata.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charrnn import atomic, hub
from charrnn.digits import decimal
from charrnn.errors import CharRNNError, InputError

if TYPE_CHECKING:
    import torch

# 2: adds `ema.*` tensors (the weight average that sampling uses) and the optional `init_from`
# metadata; version-1 files still load (their `model.*` weights are what sampling uses).
# 3: adds the optional `plan` metadata (how a run was sized); a file without it resumes as before.
# 4: adds the optional `voices` metadata and the `voice.weight` tensor of a model trained on
# labelled texts (docs/formats.md); an unvoiced model is still written as format 3, so an earlier
# charrnn reads it, and one that cannot read voices says to upgrade instead of misreading them.
FORMAT_VERSION = 4
UNVOICED_FORMAT = 3
MAX_HEADER_BYTES = 64 << 20
_ITEMSIZE = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
# metadata key → the JSON type its value must have
_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "model": dict,
    "train": dict,
    "vocab": list,
    "vocab_counts": list,
    "corpus": dict,
    "state": dict,
    "optim": dict,
    "history": dict,
    "parameters": int,
    "versions": dict,
    "created": str,
}
# metadata keys a file may lack (format 2 on): key → its JSON type
_OPTIONAL_META: dict[str, type | tuple[type, ...]] = {
    "init_from": dict,
    "plan": dict,
    "voices": dict,
}


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


@dataclass(frozen=True)
class Header:
    """A checkpoint's validated header: metadata (JSON values) and the tensor index."""

    path: Path
    size: int
    format_version: int
    meta: dict[str, Any]
    tensors: dict[str, TensorInfo]
    data_start: int = 0  # byte offset of the tensor data (TensorInfo offsets count from here)


def _bad(path: Path, why: str) -> InputError:
    return InputError(f"{path}: {why}")


def read_header(path: str | os.PathLike) -> Header:
    """Parse and validate the header only; raises InputError for anything that is not our file."""
    p = Path(path)
    if p.is_dir():
        raise _bad(p, "is a directory, not a checkpoint file")
    try:
        with p.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise _bad(p, "not a charrnn checkpoint (file too short)")
            (n,) = struct.unpack("<Q", f.read(8))
            if n > MAX_HEADER_BYTES or n > size - 8 or n < 2:
                raise _bad(p, "not a charrnn checkpoint (bad header length; truncated?)")
            raw = f.read(n)
    except FileNotFoundError:
        raise _bad(p, "no such checkpoint file") from None
    except OSError as e:
        raise _bad(p, f"cannot read ({e.strerror})") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad(p, "not a charrnn checkpoint (header is not JSON)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("__metadata__"), dict):
        raise _bad(p, "not a charrnn checkpoint (no metadata)")
    raw_meta = doc.pop("__metadata__")
    version = _format_version(p, raw_meta)
    tensors = _tensor_index(p, doc, size - 8 - n)
    meta = _parse_meta(p, raw_meta)
    return Header(p, size, version, meta, tensors, 8 + n)


def _format_version(p: Path, raw_meta: dict) -> int:
    v = raw_meta.get("charrnn.format")
    version = decimal(v) if isinstance(v, str) else None
    if version is None:
        raise _bad(p, "not a charrnn checkpoint (no charrnn.format in metadata)")
    if version > FORMAT_VERSION:
        raise _bad(
            p,
            f"checkpoint format {v} is newer than this charrnn reads "
            f"({FORMAT_VERSION}); upgrade charrnn",
        )
    return version


def _tensor_index(p: Path, doc: dict, data_len: int) -> dict[str, TensorInfo]:
    """Check every entry's dtype, shape and byte range before safetensors touches the data."""
    out: dict[str, TensorInfo] = {}
    for name, e in doc.items():
        ok = (
            isinstance(e, dict)
            and e.get("dtype") in _ITEMSIZE
            and isinstance(e.get("shape"), list)
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in e["shape"])
            and isinstance(e.get("data_offsets"), list)
            and len(e["data_offsets"]) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in e["data_offsets"])
        )
        if not ok:
            raise _bad(p, f"corrupt checkpoint (bad entry for tensor {name[:60]!r})")
        start, end = e["data_offsets"]
        if not 0 <= start <= end:
            raise _bad(p, f"corrupt checkpoint (bad offsets for tensor {name[:60]!r})")
        if end > data_len:
            raise _bad(p, "truncated checkpoint (tensor data runs past the end of the file)")
        if end - start != math.prod(e["shape"]) * _ITEMSIZE[e["dtype"]]:
            raise _bad(p, f"corrupt checkpoint (size of tensor {name[:60]!r} disagrees with shape)")
        out[name] = TensorInfo(e["dtype"], tuple(e["shape"]), start, end)
    return out


def _parse_meta(p: Path, raw: dict) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key, typ in _META_TYPES.items():
        value = raw.get(key)
        if not isinstance(value, str):
            raise _bad(p, f"corrupt checkpoint (metadata {key!r} missing)")
        try:
            meta[key] = json.loads(value)
        except ValueError:
            raise _bad(p, f"corrupt checkpoint (metadata {key!r} is not JSON)") from None
        if not isinstance(meta[key], typ) or isinstance(meta[key], bool):
            raise _bad(p, f"corrupt checkpoint (metadata {key!r} has the wrong type)")
    for key, typ in _OPTIONAL_META.items():
        if key not in raw:
            continue
        try:
            value = json.loads(raw[key]) if isinstance(raw[key], str) else None
        except ValueError:
            value = None
        if not isinstance(value, typ):
            raise _bad(p, f"corrupt checkpoint (metadata {key!r} is not a JSON object)")
        meta[key] = value
    return meta


AVERAGE = (
    "ema."  # the tensor-name prefix of the weight average (charrnn.training.averaging writes it)
)


def has_average(header: Header) -> bool:
    """Whether the file holds a weight average beside the raw weights (format 2 on)."""
    return any(k.startswith(AVERAGE) for k in header.tensors)


def sampling_prefix(header: Header) -> str:
    """Which weights sample, score and serve use: the average (`ema.*`) where the file has one and
    it scored better than the raw training weights (`model.*`) when the file was saved."""
    if header.meta["state"].get("weights") == "raw":
        return "model."
    return AVERAGE if has_average(header) else "model."


def save(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write atomically: a temp file beside the target, fsync, rename, fsync the directory.

    A crash or a full disk at any moment leaves the previous file whole; the temp file is removed
    on failure (and `clean_temp_files` sweeps those a killed process left).
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    import charrnn

    target = Path(path)
    header = {"charrnn.format": str(FORMAT_VERSION if "voices" in meta else UNVOICED_FORMAT)}
    meta = {**meta, "created": datetime.now(UTC).isoformat(timespec="seconds")}
    meta.setdefault("versions", {})["charrnn"] = charrnn.__version__
    header.update({k: json.dumps(v, ensure_ascii=True) for k, v in meta.items()})
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    try:
        with atomic.replacing(target, durable=True) as tmp:
            save_file(cpu, str(tmp), metadata=header)
    except (OSError, SafetensorError) as e:  # disk full, file too large, permissions
        why = getattr(e, "strerror", None) or str(e).rsplit("I/O error: ", 1)[-1]
        raise CharRNNError(f"could not save {target}: {why}; the previous file is intact") from None


def link(src: Path, dst: Path) -> None:
    """Make dst a second name for the finished file src, atomically (hard link, else a copy)."""
    try:
        with atomic.replacing(dst, durable=True) as tmp:
            try:
                os.link(src, tmp)
            except OSError:
                import shutil

                shutil.copyfile(src, tmp)
    except OSError as e:
        raise CharRNNError(
            f"could not save {dst}: {e.strerror or e}; the previous file is intact"
        ) from None


def clean_temp_files(directory: Path) -> list[Path]:
    """Remove temp files that a killed writer left (call only while holding the run's lock)."""
    removed = [p for p in directory.glob(".*.ckpt.*.tmp") if p.is_file()]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def fingerprint(path: str | os.PathLike) -> str:
    """The file's sha256, first 16 hex digits: which checkpoint a session or a fine-tuned model
    came from, whatever its name now."""
    import hashlib

    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_tensors(header: Header, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Read the tensors of an already validated header (memory-mapped, no code execution)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(header.path, device=device)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise _bad(header.path, f"corrupt checkpoint ({str(e).splitlines()[0][:120]})") from None


def summarize(header: Header, with_vocab: bool = False) -> dict[str, Any]:
    """What `inspect --json` prints: a stable, documented view of the header (docs/formats.md)."""
    m, s, meta = header.meta["model"], header.meta["state"], header.meta
    vocab = meta["vocab"]
    best = s.get("best_val_loss")
    hist = meta["history"]

    def series(key: str) -> dict[str, list]:
        rows = [r for r in hist.get(key, []) if isinstance(r, list) and len(r) == 2]
        return {"step": [r[0] for r in rows], "loss": [r[1] for r in rows]}

    info: dict[str, Any] = {
        "file": str(header.path),
        "size_bytes": header.size,
        "format_version": header.format_version,
        "created": meta["created"],
        "versions": meta["versions"],
        "model": {**m, "parameters": meta["parameters"]},
        "vocab": {
            "size": len(vocab),
            "preview": "".join(c for c in vocab if c.isprintable() and c != " ")[:80],
        },
        "corpus": meta["corpus"],
        "training": {
            "steps": s.get("step", 0),
            "epochs": s.get("epoch", 0),
            "chars_seen": s.get("chars_seen", 0),
            "elapsed_seconds": s.get("elapsed", 0.0),
            "device": s.get("device"),
            "precision": s.get("precision"),
            "world_size": s.get("world_size", 1),
            "best_val_loss": best,
            "best_val_bpc": best / math.log(2) if isinstance(best, int | float) else None,
            "best_step": s.get("best_step"),
            "last_train_loss": s.get("last_train_loss"),
            "finished": bool(s.get("finished")),
            "stop_reason": s.get("stop_reason"),
            "config": meta["train"],
        },
        "history": {"train": series("train"), "val": series("val")},
        "weights": _weights(header),
        "init_from": meta.get("init_from"),
        "plan": meta.get("plan"),
        "voices": _voices(meta),
        "hub": hub.origin(header.path),  # {repo, commit} of a model loaded as hf:OWNER/NAME
    }
    if with_vocab:
        info["vocab"]["chars"] = vocab
        info["vocab"]["counts"] = meta["vocab_counts"] or None
    return info


def _voices(meta: dict[str, Any]) -> dict[str, Any] | None:
    """A voiced model's voices as inspect shows them: names, characters per split and the latest
    validation per voice (None: a model without voices). Per-character counts stay in the file."""
    n = meta["model"].get("voices") or 0
    if not n:
        return None
    v = meta.get("voices") or {}
    names = v.get("names") if isinstance(v.get("names"), list) else [str(i) for i in range(n)]
    chars = v.get("chars") if isinstance(v.get("chars"), dict) else {}
    val = v.get("val") if isinstance(v.get("val"), dict) else {}
    rest = {k: x for k, x in v.items() if k not in ("names", "counts", "chars", "val")}
    return {"names": names, "chars": chars, "val": val, **rest}


def _weights(header: Header) -> dict[str, Any]:
    """Which weight sets the file holds and which one sampling uses."""
    averaged = sampling_prefix(header) == AVERAGE
    return {
        "sampling": "average" if averaged else "raw",
        "average": has_average(header),
        "ema_decay": header.meta["train"].get("ema") or None,
        "resumable": any(k.startswith("optim.") for k in header.tensors),
    }
