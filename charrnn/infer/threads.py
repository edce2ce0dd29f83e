"""How many threads inference uses: every core by default, BLAS's own thread count set only when it
changes, and a tuner that re-measures the choice for a few streams while they run.

It knows nothing about models: the engine asks it before a step and reports how long the step took.
"""

from __future__ import annotations

import os
import time


def default_threads() -> int:
    """All the cores this process may use: measured faster for one stream and for batches, and,
    with another program busy on the other core, no slower than one thread (docs/performance.md)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class ThreadTuner:
    """Chooses BLAS's thread count for a few streams from how busy the machine is.

    Every core is fastest on an idle machine (measured: 1.4× one thread for one 2×512 stream), but a
    BLAS thread that must share a core with another busy program makes every step wait for it (2×
    slower than one thread, measured). Timing the steps themselves proved too noisy to tell under load,
    so every WINDOW seconds it compares the machine's busy CPU time with this process's own: if other
    programs kept more than half a core busy, one thread, else every core. The thread count never
    changes a result: the same products run, split by column (tested).
    """

    WINDOW = 0.2  # seconds between looks
    OTHERS = 0.5  # cores that other programs may keep busy before one thread is chosen

    def __init__(self, most: int) -> None:
        self.most, self.best = most, most
        self.last: tuple[float, float, float] | None = None
        self.next = 0.0

    def choose(self) -> int:
        """The thread count for the next step."""
        if self.most == 1:
            return 1
        now = time.monotonic()
        if now >= self.next:
            self.next = now + self.WINDOW
            sample = _cpu_sample(now)
            if sample is not None and self.last is not None:
                busy, ours, wall = (a - b for a, b in zip(sample, self.last, strict=True))
                others = (busy - ours) / max(wall, 1e-9)
                self.best = 1 if others > self.OTHERS else self.most
            self.last = sample
        return self.best


def _cpu_sample(now: float) -> tuple[float, float, float] | None:
    """(seconds of CPU the whole machine spent busy, seconds this process spent, wall time), or
    None where /proc/stat is not available (then every core is used)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    tick = os.sysconf("SC_CLK_TCK")
    t = os.times()
    return (sum(fields[:8]) - idle) / tick, t.user + t.system, now


def _blas_default() -> list[int]:
    """What BLAS uses before anyone sets it: OpenBLAS takes every core unless told otherwise, so
    only a changed count needs threadpoolctl (whose import and library scan cost start-up time)."""
    if any(
        os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    ):
        return []
    return [default_threads()]


_blas_now: list[int] = _blas_default()


def blas_threads(n: int) -> None:
    """Set BLAS's thread count, only when it changes (the call itself costs ~0.1 ms)."""
    if _blas_now and _blas_now[0] == n:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(n, user_api="blas")
    _blas_now[:] = [n]
