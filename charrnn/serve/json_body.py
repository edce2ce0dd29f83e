"""Answers that may be large (echoed log-probabilities, per-character scores) encoded a piece at a
time, so one answer never holds the event loop, or the batching worker, while it is written.

`json.dumps` holds the GIL for the whole call: an echo answer of 8,000 characters at logprobs 5 is
~1.3 MB of JSON and ~50 ms in one call, during which no other request is answered and no stream
steps. Here a long list is encoded a slice at a time (each slice a short `json.dumps` call) and the
event loop gets its turn between buffers. The text is byte for byte what `JSONResponse` writes
(same separators, `ensure_ascii=False`, `allow_nan=False`). A small answer stays one body with its
Content-Length. It does not decide what an answer holds or how large it may be (`protocol` caps it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.responses import Response, StreamingResponse

SLICE = 256  # list items encoded per json.dumps call
BUFFER = 1 << 16  # bytes sent per piece of the body


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def pieces(obj: Any) -> Iterator[str]:
    """The JSON text of obj, in pieces: lists longer than SLICE a slice at a time."""
    if isinstance(obj, dict):
        yield "{"
        for n, (key, value) in enumerate(obj.items()):
            yield ("," if n else "") + _dumps(str(key)) + ":"
            yield from pieces(value)
        yield "}"
    elif isinstance(obj, list | tuple) and len(obj) > SLICE:
        yield "["
        for a in range(0, len(obj), SLICE):
            yield ("," if a else "") + _dumps(list(obj[a : a + SLICE]))[1:-1]
        yield "]"
    else:
        yield _dumps(obj)


def _buffers(obj: Any) -> Iterator[bytes]:
    held: list[str] = []
    size = 0
    for piece in pieces(obj):
        held.append(piece)
        size += len(piece)
        if size >= BUFFER:
            yield "".join(held).encode("utf-8")
            held, size = [], 0
    if held:
        yield "".join(held).encode("utf-8")


def json_response(body: Any, status_code: int = 200) -> Response:
    """`JSONResponse(body)`, written a piece at a time when it is large."""
    buffers = _buffers(body)
    first = next(buffers)
    second = next(buffers, None)
    if second is None:
        return Response(first, status_code=status_code, media_type="application/json")

    async def rest() -> AsyncIterator[bytes]:
        yield first
        yield second
        for buf in buffers:
            await asyncio.sleep(0)  # other requests, and the worker, between two pieces
            yield buf

    return StreamingResponse(rest(), status_code=status_code, media_type="application/json")
