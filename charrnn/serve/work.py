"""The batching worker's queue of engine work other than a batch step: prompts being read, session
commits, scores. Between two batch steps the worker runs one slice of it, bounded in time, so no
queued piece of work (a 400 KB score, a 20,000-character prompt) holds the streams that generate.

A slice is `SLICE` seconds of work taken from the queue in turn: session commits first (a
conversation's next turn waits for its commit, and a commit is short: one reply), then the rest
round-robin, so a short prompt read is never queued behind a long score. Work runs in units that
its engine chooses (the numpy engine pauses every few recurrence steps), and a slice ends at the
first pause past its time: a slice overruns by at most one unit.

It does not decide what the work is or what happens when it ends: a piece of work's `done` does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, Protocol

SLICE = 0.01  # seconds of engine work between two batch steps


class Work(Protocol):
    """A piece of engine work the worker runs a slice at a time."""

    def advance(self, until: float) -> bool:
        """Run until the first pause past `until` (time.monotonic()); True once it has ended."""
        ...


class Steps:
    """Work written as a generator that yields at its pauses (an engine's `forward_steps`, or code
    around it): `done(value, error)` gets its return value or its exception, on the worker.
    `gone()` True: the work is dropped at its next turn, and `done(None, None)` says so."""

    def __init__(
        self,
        steps: Generator[None, None, Any],
        done: Callable[[Any, BaseException | None], None],
        gone: Callable[[], bool] = lambda: False,
    ) -> None:
        self.steps, self.done, self.gone = steps, done, gone

    def advance(self, until: float) -> bool:
        if self.gone():
            self.steps.close()
            self.done(None, None)
            return True
        try:
            while True:
                next(self.steps)
                if time.monotonic() >= until:
                    return False
        except StopIteration as end:
            self.done(end.value, None)
        except Exception as e:  # handed to whoever waits for the result
            self.done(None, e)
        return True


class WorkQueue:
    """Engine work waiting for the worker: commits ahead of everything else, each kind in turn."""

    def __init__(self) -> None:
        self._commits: deque[Work] = deque()
        self._rest: deque[Work] = deque()

    def add(self, work: Work, commit: bool = False) -> None:
        (self._commits if commit else self._rest).append(work)

    def __len__(self) -> int:
        return len(self._commits) + len(self._rest)

    def run(self, budget: float = SLICE) -> None:
        """One slice: work from the front of the queue until `budget` seconds are spent; work
        that has not ended goes to the back of its queue (round-robin)."""
        until = time.monotonic() + budget
        while self and time.monotonic() < until:
            queue = self._commits if self._commits else self._rest
            work = queue.popleft()
            if not work.advance(until):
                queue.append(work)
