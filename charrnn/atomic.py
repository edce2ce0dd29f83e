"""Atomic file replacement, in one place: every file charrnn writes (checkpoints, metrics.jsonl, the
viz page, the novelty index) appears whole or not at all.

A temp file `.NAME.PID.tmp` beside the target is written, optionally fsynced, and renamed over it;
on any failure the temp file is removed and the previous file stays. It does not decide what an error
means to the user: callers turn `OSError` into their own message.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def temp_path(target: Path) -> Path:
    """The temp name beside `target` (`clean_temp_files`-style sweeps match `.*.tmp`)."""
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def replacing(target: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """Yield a temp path to write; when the block ends without error, rename it over `target`.

    durable: fsync the file before the rename and the directory after, so a power cut never leaves
    a renamed but empty file (checkpoints need this; a cache that is validated on read does not)."""
    target = Path(target)
    tmp = temp_path(target)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        if durable:
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
        if durable:
            fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(target: str | os.PathLike, text: str, durable: bool = False) -> None:
    """Replace `target`'s contents with `text` (UTF-8) atomically."""
    with replacing(target, durable) as tmp:
        tmp.write_text(text, encoding="utf-8")


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform; the rename itself is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
