"""Engine work written as plain calls (scoring a text), run on the batching worker's turn.

The worker steps the batch with an engine and sets BLAS's thread count before a step; scoring on
another thread at the same time raced both (two computations on one engine, and a thread count
changed under a running product). A `Task` runs `work(engine)` on a thread of its own, but only
while the worker waits for it: `advance(until)` (a `work.Work`, called by the worker between two
steps) lets the work run until the first pause of the engine it was given (inside `forward`) past
`until`, or until the work ends. So nothing a task computes ever overlaps a step, and a long text
stalls the batch for one slice at a time, as a long prompt does while it is read. The thread
checks the time at each pause itself: handing the turn back and forth at every pause would cost
more than the few steps between two pauses. The result goes to `done(value, error)`, called on
the task's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from charrnn.serve import memory

log = logging.getLogger("charrnn.serve")


class Cancelled(Exception):
    """Raised inside a task's work when the request that wanted it has gone away."""


class Task:
    def __init__(
        self,
        engine: Any,
        work: Callable[[Any], Any],
        done: Callable[[Any, BaseException | None], None],
    ) -> None:
        self.engine, self.work, self.done = engine, work, done
        self.cancelled = False  # set from any thread; the work stops at its next pause
        self.ended = False
        self._until = 0.0  # the end of the slice the work is running in
        self._turn = threading.Semaphore(0)  # the work may run
        self._back = threading.Semaphore(0)  # the work has paused or ended
        self._thread: threading.Thread | None = None

    def cancel(self) -> None:
        self.cancelled = True

    def advance(self, until: float) -> bool:
        """On the worker: let the work run until its first pause past `until`; True once it
        has ended."""
        self._until = until
        if self._thread is None:
            if self.cancelled:
                self.ended = True
                return True
            self._thread = threading.Thread(target=self._main, name="charrnn-task", daemon=True)
            self._thread.start()
        else:
            self._turn.release()
        self._back.acquire()
        return self.ended

    def _main(self) -> None:
        value, error = None, None
        try:
            value = self.work(_Pausing(self.engine, self._pause))
        except BaseException as e:  # handed to whoever waits for the result
            error = e
        try:
            self.done(value, error)
        except Exception:  # the event loop has closed: nobody waits any more
            log.debug("task result not delivered", exc_info=True)
        self.ended = True
        self._back.release()
        memory.trim()  # a long text's arrays are free now; the worker is not waiting for this

    def _pause(self) -> None:
        if time.monotonic() < self._until and not self.cancelled:
            return  # the slice goes on
        self._back.release()
        self._turn.acquire()
        if self.cancelled:
            raise Cancelled


class _Pausing:
    """The engine as a task sees it: `forward` runs in slices and hands the turn back between them
    (the arithmetic is forward's, to the bit); everything else is the engine's own."""

    def __init__(self, engine: Any, pause: Callable[[], None]) -> None:
        self._engine, self._pause = engine, pause

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def pause(self) -> None:
        """Hand the turn back if the slice is spent: for work done between forward calls (a
        score's log-softmax, its records), which would otherwise run unpaused."""
        self._pause()

    def forward(self, ids, state=None, **kw: Any):
        steps = self._engine.forward_steps(ids, state, **kw)
        while True:
            try:
                next(steps)
            except StopIteration as end:
                return end.value
            self._pause()
