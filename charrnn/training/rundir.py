"""Where a training run lives: the run directory's name, and never replacing another run by accident.

It locks the directory (`RunLock`) but writes nothing else in it (the loop does).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import ClassVar

from charrnn.errors import InputError


def label(corpus: str) -> str:
    """The corpus's short name for runs/<name>: a dataset's recorded name, else the file's stem."""
    from charrnn.data.dataset import is_dataset
    from charrnn.data.prep import corpus_name

    meta = Path(corpus) / "meta.json"
    if is_dataset(Path(corpus)):
        try:
            return str(json.loads(meta.read_text(encoding="utf-8"))["name"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return corpus_name([corpus])


def run_dir(out: Path | None, name: str, resume: Path | None) -> Path:
    """--out as given, else the resumed run's directory, else a fresh runs/<name>, runs/<name>-2,
    ... so that no earlier run is ever overwritten by default."""
    if out is not None:
        if out.exists() and not out.is_dir():
            raise InputError(f"--out {out}: is a file, not a directory")
        return out
    if resume is not None:
        return resume.parent
    base, n = Path("runs") / name, 2
    cand = base
    while cand.exists() and any(cand.iterdir()):
        cand, n = Path(f"{base}-{n}"), n + 1
    return cand


def refuse_clobber(out: Path, overwrite: bool, resume: Path | None) -> None:
    """A fresh run never replaces another's checkpoints unless asked to (checked under the lock)."""
    held = [f for f in ("last.ckpt", "best.ckpt") if (out / f).exists()]
    same = resume is not None and resume.resolve().parent == out.resolve()
    if held and not (overwrite or same):
        raise InputError(
            f"{out} already holds a run; continue it with --resume {out / held[0]}, "
            "start over with --overwrite, or choose another --out"
        )


class RunLock:
    """An exclusive lock on a run directory, so two trainings never write the same checkpoints.

    flock is released by the kernel when its holder dies, so a crashed run never blocks the next;
    the pid inside is only for the message.
    """

    # directories this process holds, by the thread holding each: that thread re-entering is a
    # no-op, another thread is refused as another process would be
    _held: ClassVar[dict[Path, int]] = {}

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        holder = RunLock._held.get(self.path.resolve())
        if holder == threading.get_ident():
            return self
        if holder is not None:
            raise InputError(
                f"{self.path.parent} is in use by another training in this process; "
                "wait for it or choose another --out"
            )
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
        RunLock._held[self.path.resolve()] = threading.get_ident()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            RunLock._held.pop(self.path.resolve(), None)
            os.close(self._fd)
            self._fd = None
