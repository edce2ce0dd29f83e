"""Large answers written a piece at a time: the same bytes as one `json.dumps`, never a NaN, and a
large body sent in pieces with the event loop free between them."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.responses import Response, StreamingResponse

from charrnn.serve.json_body import BUFFER, SLICE, json_response, pieces

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=SLICE + 40)
    | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=600,
)  # fmt: skip


def whole(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@given(values)
def test_pieces_are_one_dumps(obj) -> None:
    assert "".join(pieces(obj)) == whole(obj)


def test_a_non_finite_number_is_refused() -> None:
    with pytest.raises(ValueError):
        "".join(pieces({"a": [0.0] * (SLICE + 1) + [float("nan")]}))


def body_of(response: Response) -> bytes:
    if not isinstance(response, StreamingResponse):
        return response.body

    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.body_iterator])

    return asyncio.run(read())


def test_a_small_answer_is_one_body_and_a_large_one_streams() -> None:
    small = {"choices": [{"text": "hi", "logprobs": None}]}
    r = json_response(small)
    assert not isinstance(r, StreamingResponse) and r.body == whole(small).encode()
    entries = [{"token": "é", "logprob": -1.25, "top": {"a": -0.5, "b": -2.0}}] * 20_000
    large = {"choices": [{"text": "x" * 20_000, "logprobs": entries}], "usage": {"n": 1}}
    r = json_response(large)
    assert isinstance(r, StreamingResponse) and r.media_type == "application/json"
    got = body_of(r)
    assert got == whole(large).encode() and len(got) > 4 * BUFFER
