"""Atomic replacement, in one place: every file charrnn writes (checkpoints, metrics.jsonl, the
viz page, the novelty index) and every folder it replaces (an export, a dataset) appears whole or
not at all, and a replacement killed half-way is finished by the next one.

A temp file `.NAME.PID.tmp` beside the target is written, optionally fsynced, and renamed over it;
on any failure the temp file is removed and the previous file stays. A folder is swapped into place
by `swap_into_place` (one `renameat2` exchange where Linux allows it). It does not decide whether a
path may be replaced (`charrnn.owned` does) nor what an error means to the user: callers turn
`OSError` into their own message.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from charrnn.digits import decimal

# A file name's bytes on the usual filesystems; `.NAME.PID.tmp` must fit beside a NAME that does.
NAME_MAX = 255


def _stem(name: str) -> str:
    """`name`, cut (at a character) so that `.NAME.PID.SUFFIX` fits NAME_MAX bytes: a target whose
    own name nearly fills them still gets a temporary name beside it."""
    room = NAME_MAX - len(".." + ".tmp") - 10  # a pid has at most 10 digits here
    return name.encode("utf-8")[:room].decode("utf-8", "ignore")


def temp_path(target: Path) -> Path:
    """The temp name beside `target` (`clean_temp_files`-style sweeps match `.*.tmp`)."""
    return target.with_name(f".{_stem(target.name)}.{os.getpid()}.tmp")


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


# --- replacing a whole folder (or file) that a reader may be using --------------------------------

AT_FDCWD = -100
RENAME_EXCHANGE = 2
# A test hook, never set in use: "fallback" forces the two-rename path; "pause" (or
# "fallback-pause") sleeps between the two steps of a replacement so a test can kill it there.
TEST_HOOK = "CHARRNN_TEST_SWAP"


def old_path(dest: Path) -> Path:
    """Where the fallback moves the previous `dest` aside while the new one takes its place."""
    return dest.with_name(f".{_stem(dest.name)}.{os.getpid()}.old")


def swap_into_place(new: Path, dest: Path) -> None:
    """Put the finished `new` at `dest`, then remove what stood there (the caller has checked that
    it may be removed). Where the kernel can (Linux `renameat2(RENAME_EXCHANGE)`), the two paths
    trade places in one step, so `dest` is never missing; elsewhere the old one is moved aside to
    `old_path(dest)` first, and a kill between the two renames leaves it there for `leftovers`."""
    if not os.path.lexists(dest):
        os.rename(new, dest)
        return
    if _exchange(new, dest):
        _pause()
        remove(new)  # it now holds what `dest` held
        return
    old = old_path(dest)
    os.rename(dest, old)
    _pause()
    try:
        os.rename(new, dest)
    except OSError:
        os.rename(old, dest)
        raise
    remove(old)


def leftovers(dest: Path) -> list[str]:
    """Finish what a killed replacement of `dest` left beside it, and say so: a previous copy moved
    aside (`.NAME.PID.old`) is put back where `dest` is missing (else kept, and named), and a
    half-written `.NAME.PID.tmp` is removed. Only leftovers of processes that are gone count."""
    notes: list[str] = []
    for p in _dead_siblings(dest, "old"):
        if os.path.lexists(dest):
            notes.append(
                f"{p}: an earlier copy of {dest.name} left by an interrupted replacement; "
                "kept (remove it if it is not needed)"
            )
            continue
        os.rename(p, dest)
        notes.append(f"{dest}: restored from {p.name}, left by an interrupted replacement")
    for p in _dead_siblings(dest, "tmp"):
        remove(p)
    return notes


def _dead_siblings(dest: Path, suffix: str) -> list[Path]:
    """`.NAME.PID.suffix` beside `dest` whose process no longer runs."""
    found = []
    head = f".{_stem(dest.name)}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(dest.parent):
            name = entry.name
            if not (name.startswith(head) and name.endswith("." + suffix)):
                continue
            pid = decimal(name[len(head) : -len(suffix) - 1], 10)
            if pid is not None and not _alive(pid):
                found.append(dest.parent / name)
    return sorted(found)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step; False where the OS or filesystem cannot."""
    if os.environ.get(TEST_HOOK, "").startswith("fallback") or not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a libc older than glibc 2.28, or not glibc
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False  # a filesystem or sandbox without the exchange: two renames instead
    raise OSError(err, os.strerror(err), str(b))


def _pause() -> None:
    if os.environ.get(TEST_HOOK, "").endswith("pause"):
        time.sleep(60)


def remove(path: Path) -> None:
    """Remove a file, link or folder tree, whichever `path` is (nothing if it is gone)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()
