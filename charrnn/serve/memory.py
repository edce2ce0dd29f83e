"""The server's memory handed back to the system (glibc only; elsewhere these do nothing).

Each `/v1/score` runs on a thread of its own (`tasks`), and glibc gives threads malloc arenas of
their own, up to eight per core, each keeping what it once held: a server that scored many long
texts kept growing. `limit_arenas` caps them at start-up and `trim` returns freed memory after a
large piece of work. It does not bound what a request may allocate (`protocol` caps that).
"""

from __future__ import annotations

import contextlib
import ctypes
import sys

M_ARENA_MAX = -8  # mallopt's parameter numbers in glibc's malloc.h
M_MMAP_THRESHOLD = -3
ARENAS = 2
# Allocations from this size up get pages of their own, returned to the system when freed. glibc
# otherwise raises the threshold to the largest block freed so far (up to 32 MB), after which a
# long text's arrays come from the heap, whose free holes RSS kept between requests.
MMAP_FROM = 1 << 20


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim  # noqa: B018  (glibc has both; musl lacks mallopt)
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(arenas: int = ARENAS) -> None:
    """At most `arenas` malloc arenas for the threads made from now on, and large blocks mapped
    on their own (`MMAP_FROM`)."""
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(Exception):
            libc.mallopt(M_ARENA_MAX, arenas)
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_FROM)


def trim() -> None:
    """Return the heap's free memory to the system."""
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(Exception):
            libc.malloc_trim(0)
