"""The batching worker's queue of engine work other than a batch step: prompts being read, session
commits, scores. Between two batch steps the worker runs one slice of it, bounded in time, so no
queued piece of work (a 400 KB score, a 20,000-character prompt) holds the streams that generate.

A slice is `SLICE` seconds of work taken from the queue in turn: session commits first (a
conversation's next turn waits for its commit, and a commit is short: one reply), then work that
has had less than `FRESH` seconds so far (a prompt being read, the start of anything), then the
long-running rest round-robin. So a new request's prompt is read ahead of the scores and echoes
already running, and its first character does not wait for a turn of each of them (measured under
the soak's mix: that wait was most of the first character's delay); the rest still gets a turn at
least every `STARVE` slices however much new work arrives. Work runs in units that its engine
chooses (the numpy engine pauses every few recurrence steps), and a slice ends at the first pause
past its time: a slice overruns by at most one unit.

It does not decide what the work is or what happens when it ends: a piece of work's `done` does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, Protocol

SLICE = 0.01  # seconds of engine work between two batch steps
FRESH = 0.02  # seconds of work after which a piece of work runs behind newer ones
STARVE = 4  # slices in a row without a turn for the long-running work, at most


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
    """Engine work waiting for the worker: commits first, then fresh work, then the rest."""

    def __init__(self) -> None:
        self._commits: deque[Work] = deque()
        self._fresh: deque[tuple[Work, float]] = deque()  # with the seconds it has had
        self._rest: deque[Work] = deque()
        self._waited = 0  # slices in a row in which the rest waited without a turn

    def add(self, work: Work, commit: bool = False) -> None:
        if commit:
            self._commits.append(work)
        else:
            self._fresh.append((work, 0.0))

    def __len__(self) -> int:
        return len(self._commits) + len(self._fresh) + len(self._rest)

    def run(self, budget: float = SLICE) -> None:
        """One slice: work from the front of the queues until `budget` seconds are spent; work
        that has not ended goes to the back of its queue (round-robin), fresh work that has had
        FRESH seconds to the back of the rest."""
        until = time.monotonic() + budget
        rest_first = bool(self._rest) and self._waited >= STARVE
        rest_ran = False
        while self and time.monotonic() < until:
            if self._commits:
                work = self._commits.popleft()
                if not work.advance(until):
                    self._commits.append(work)
            elif self._fresh and not rest_first:
                self._run_fresh(until)
            else:
                rest_first, rest_ran = False, True
                work = self._rest.popleft()
                if not work.advance(until):
                    self._rest.append(work)
        self._waited = 0 if rest_ran or not self._rest else self._waited + 1

    def _run_fresh(self, until: float) -> None:
        work, had = self._fresh.popleft()
        start = time.monotonic()
        if work.advance(until):
            return
        had += time.monotonic() - start
        if had < FRESH:
            self._fresh.append((work, had))
        else:
            self._rest.append(work)
