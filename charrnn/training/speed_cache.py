"""The plan's speed cache on disk (`$CHARRNN_CACHE/speed.json`): training chars/s by shape under a
key naming everything that changes them, read leniently and updated under a lock.

Two processes (two runs finishing at once, a plan beside a run) each read, merge and replace the
file while holding an exclusive `flock` on `speed.json.lock`, so neither loses the other's
readings. Anything unusable in the file (not JSON, wrong types, a shape name that is not `LxH`, a
speed that is not a finite number above zero) reads as missing, so the caller measures it again.
Torch-free; deciding the key and measuring are `calibrate`'s job.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

from charrnn import atomic
from charrnn.data.dataset import cache_dir

# 2: readings keyed by batch, seq-len, embed, weight-drop and locked dropout as well as the
# machine. Version 1 files (no "format" field) kept readings of any batch under one key: they are
# ignored, and the next write replaces them.
FORMAT = 2
_SHAPE = re.compile(r"([1-9][0-9]{0,2})x([1-9][0-9]{0,5})")


def cache_file() -> Path:
    return cache_dir() / "speed.json"


def lock_file() -> Path:
    return cache_dir() / "speed.json.lock"


def read(key: str) -> dict[str, float]:
    """The usable readings under `key` (shape name → chars/s); nothing usable reads as {}."""
    entry = _entries(_load()).get(key)
    if not isinstance(entry, dict):
        return {}
    return {k: float(v) for k, v in entry.items() if is_shape(k) and usable(v)}


def merge(key: str, readings: dict[str, float]) -> None:
    """Add or replace these readings under `key`, keeping every other reading (of this key and
    of others) as the file holds it now. A cache that cannot be written only costs a measurement
    next time."""
    try:
        with locked():
            entries = _entries(_load())
            old = entries.get(key)
            kept = (
                {k: v for k, v in old.items() if is_shape(k) and usable(v)}
                if isinstance(old, dict)
                else {}
            )
            entries[key] = kept | {k: v for k, v in readings.items() if usable(v)}
            text = json.dumps({"format": FORMAT, "readings": entries}, indent=1, sort_keys=True)
            atomic.write_text(cache_file(), text)
    except OSError:
        pass


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Hold the cache's lock (an exclusive flock, released by the kernel if the holder dies).
    Where the platform has no flock (Windows) the update runs unguarded."""
    path = lock_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl
        except ImportError:
            fcntl = None
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def is_shape(name: object) -> bool:
    """`2x512`: layers and hidden size as positive integers, nothing else."""
    return isinstance(name, str) and _SHAPE.fullmatch(name) is not None


def usable(value: object) -> bool:
    """A speed the planner can divide by: a finite number above zero (not a bool, not a string)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _load() -> object:
    try:
        return json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None


def _entries(data: object) -> dict:
    """The keyed readings of a current file; an older or damaged file has none."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    entries = data.get("readings")
    return (
        {k: v for k, v in entries.items() if isinstance(v, dict)}
        if isinstance(entries, dict)
        else {}
    )
