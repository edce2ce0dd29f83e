"""Streams in use against --max-streams: a request waits briefly for room for all of its streams
at once, then gets a 429. A score takes one stream; a choice guided toward a voice takes two.

It does not decide how many streams a request needs (the routes and `service` do).
"""

from __future__ import annotations

import asyncio

from charrnn.serve.protocol import ApiError


class Capacity:
    """Streams in use against --max-streams (a score counts as one); a request waits briefly for
    room for all its streams at once, then gets 429. Never some now and the rest later: a request
    holding part of its streams while it waits for the rest could do work only to be refused, and
    two such requests could each hold what the other waits for."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used, self.waiting = limit, 0, 0
        self._cond = asyncio.Condition()

    async def acquire(self, n: int, wait: float) -> None:
        async with self._cond:
            self.waiting += 1
            try:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self.used + n <= self.limit), wait
                )
            except TimeoutError:
                raise ApiError(
                    429,
                    f"the server is busy ({self.used} of {self.limit} streams in use); retry soon",
                    kind="rate_limit_error",
                    code="busy",
                    headers={"Retry-After": "1"},
                ) from None
            finally:
                self.waiting -= 1
            self.used += n

    async def release(self, n: int) -> None:
        async with self._cond:
            self.used -= n
            self._cond.notify_all()
