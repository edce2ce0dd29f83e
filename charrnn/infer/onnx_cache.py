"""The ONNX engine's graph cache (`$CHARRNN_CACHE/onnx/`): one graph file per checkpoint, dtype and
the versions that shape the bytes, the least recently used removed past a size cap.

A graph is a pure function of the checkpoint's weights and of the code that builds it: charrnn's
graph builder (`onnx_graph.GRAPH_VERSION`), the `onnx` package that serializes it and onnxruntime,
whose quantizer writes the int8 graph and whose loader must read it. Each is in the file name, so
a graph built under other versions is never reused (it ages out under the cap). Every load marks
its file as used (its modification time), and every new graph prunes the least recently used
graphs until the folder holds at most CACHE_BYTES. It does not build graphs or open sessions
(`onnx_engine` does) and never fails a load: an unwritable cache only costs a rebuild.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from charrnn import __version__, atomic
from charrnn.data.dataset import cache_dir

# The most the folder keeps: about twenty of the largest graphs a default plan makes (a 3×512 LSTM
# at float32 is about 22 MB; int8 a quarter of that), so every model in use stays built, while a
# folder that saw every checkpoint of every run stays bounded.
CACHE_BYTES = 512 * 2**20
# A temporary file this old is a build that was killed before its rename.
STALE_TEMP_SECONDS = 3600.0


def folder() -> Path:
    return cache_dir() / "onnx"


def versions() -> str:
    """The versions a cached graph depends on, as they appear in its file name."""
    import onnx
    import onnxruntime

    from charrnn.infer.export.onnx_graph import GRAPH_VERSION

    return (
        f"charrnn{__version__}-graph{GRAPH_VERSION}-onnx{onnx.__version__}"
        f"-ort{onnxruntime.__version__}"
    )


def path(fingerprint: str, dtype: str) -> Path:
    """Where a checkpoint's graph is kept: by file hash, dtype and `versions()`."""
    return folder() / f"{fingerprint}-{dtype}-{versions()}.onnx"


def read(target: Path) -> bytes | None:
    """The cached graph's bytes (None: not cached), marked as used now."""
    try:
        data = target.read_bytes()
    except OSError:
        return None
    with contextlib.suppress(OSError):
        os.utime(target)  # last use, for pruning; a read-only cache keeps its order
    return data


def write(target: Path, data: bytes) -> None:
    """Keep a new graph, then prune the folder to CACHE_BYTES (the new graph stays)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(target) as tmp:
            tmp.write_bytes(data)
    except OSError:
        return  # a read-only or full cache only costs the build next time
    prune(target.parent, keep=target, limit=CACHE_BYTES)


def prune(where: Path, keep: Path, limit: int) -> list[Path]:
    """Remove the least recently used graphs until those left total at most `limit` bytes (never
    `keep`, the graph just built), and temporary files of builds killed long ago. Returns what
    was removed. Another process removing the same file at once is no error."""
    graphs: list[tuple[float, int, Path]] = []
    removed: list[Path] = []
    now = time.time()
    for p in where.iterdir() if where.is_dir() else ():
        try:
            st = p.stat()
        except OSError:
            continue
        if p.suffix == ".onnx":
            graphs.append((st.st_mtime, st.st_size, p))
        elif _stale_temp(p, now - st.st_mtime) and _unlink(p):
            removed.append(p)
    total = sum(size for _, size, _ in graphs)
    for _, size, p in sorted(graphs):  # least recently used first
        if total <= limit:
            break
        if p != keep and _unlink(p):
            removed.append(p)
            total -= size
    return removed


def _stale_temp(p: Path, age: float) -> bool:
    """A temporary file (`atomic`'s `.NAME.PID.tmp`) of a build killed long ago."""
    return p.name.startswith(".") and p.name.endswith(".tmp") and age > STALE_TEMP_SECONDS


def _unlink(p: Path) -> bool:
    """Whether `p` is gone now (removed here, or by another process just before)."""
    try:
        p.unlink()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True
