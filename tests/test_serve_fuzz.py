"""The request parsers under mutation: valid bodies for /v1/completions, /v1/chat/completions,
/v1/score and /generate, changed by hypothesis (a field set to any JSON value, removed, added, or
changed deep inside), sent to the app in process. Every answer is a 2xx or a 4xx in OpenAI's error
shape: a request can be refused, never crash the server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.serve.protocol import Limits
from tests.serving_app import app_client

COMPLETIONS = [
    {"model": "m", "prompt": "def ", "max_tokens": 5, "seed": 1},
    {"prompt": ["a", "b"], "max_tokens": 4, "n": 2, "best_of": 2, "logprobs": 2, "echo": True,
     "stop": ["\n", "):"], "temperature": 0.7, "top_k": 5, "top_p": 0.9, "min_p": 0.05},
    {"prompt": [[1, 2, 3]], "max_tokens": 4, "stream": True,
     "stream_options": {"include_usage": True}, "logit_bias": {"3": -100},
     "logit_bias_chars": {"e": 2}, "no_repeat": 3, "ban": ["ab"], "frequency_penalty": 0.5},
    {"prompt": "x", "max_tokens": 6, "until": "sentence", "min_words": 1, "max_words": 3,
     "unknown": "skip", "session": "fuzz"},
]  # fmt: skip
CHATS = [
    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
    {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
     {"role": "user", "name": "Bob", "content": [{"type": "text", "text": "hi"}]},
     {"role": "assistant", "content": "Hel"}], "max_completion_tokens": 4, "n": 2,
     "logprobs": True, "top_logprobs": 2, "stream": True,
     "stream_options": {"include_usage": True}, "stop": "\n", "seed": 3},
    {"messages": [{"role": "user", "content": "again"}], "max_tokens": 3, "session": "chat-fuzz"},
]  # fmt: skip
SCORES = [{"text": "def f(x):\n    return x\n", "per_char": True, "top_k": 3, "model": "m"}]
GENERATES = [{"start_text": "The ", "n": "2", "seed": "4", "temperature": "0.5"}]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def mutate(data: st.DataObject, value: Any) -> Any:
    """One change somewhere in value: a key or item replaced, removed, added, or changed deeper;
    or the whole value replaced."""
    if isinstance(value, dict) and value and data.draw(st.integers(0, 4)):
        key = data.draw(st.sampled_from(sorted(value)) | st.text(max_size=10))
        out = dict(value)
        how = data.draw(st.sampled_from(["set", "drop", "deeper"]))
        if how == "drop":
            out.pop(key, None)
        elif how == "deeper" and key in out:
            out[key] = mutate(data, out[key])
        else:
            out[key] = data.draw(values)
        return out
    if isinstance(value, list) and value and data.draw(st.integers(0, 3)):
        out = list(value)
        out[data.draw(st.integers(0, len(out) - 1))] = mutate(data, out[0])
        return out
    return data.draw(values)


SEEN: list[int] = []


def _answer_ok(r, what: object) -> None:
    SEEN.append(r.status_code)
    assert r.status_code < 500, (what, r.status_code, r.text)
    if r.status_code >= 400:
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}, (what, r.text)
        assert isinstance(err["message"], str) and err["message"] and "\n" not in err["message"]
    elif r.headers["content-type"].startswith("text/event-stream"):
        events = [x for x in r.text.split("\n\n") if x]
        assert events[-1] == "data: [DONE]", (what, r.text)
        for e in events[:-1]:
            assert "error" not in json.loads(e.removeprefix("data: ")), (what, r.text)


def test_mutated_requests_get_a_2xx_or_an_openai_shaped_4xx(tiny: Path, tmp_path: Path) -> None:
    limits = Limits(max_chars=40, max_prompt=200, max_n=4, max_echo=100)
    with app_client(tiny, tmp_path, limits=limits, timeout=5.0, max_body=1 << 16) as c:

        @settings(
            max_examples=150,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(data=st.data(), route=st.sampled_from(["cmpl", "chat", "score", "generate"]))
        def send(data: st.DataObject, route: str) -> None:
            if route == "generate":
                q = mutate(data, data.draw(st.sampled_from(GENERATES)))
                params = {str(k): str(v) for k, v in q.items()} if isinstance(q, dict) else {}
                _answer_ok(c.get("/generate", params=params), params)
                return
            path, bodies = {
                "cmpl": ("/v1/completions", COMPLETIONS),
                "chat": ("/v1/chat/completions", CHATS),
                "score": ("/v1/score", SCORES),
            }[route]
            body = data.draw(st.sampled_from(bodies))
            for _ in range(data.draw(st.integers(1, 3))):
                body = mutate(data, body)
            raw = json.dumps(body).encode()  # NaN and Infinity as Python writes them
            r = c.post(path, content=raw, headers={"content-type": "application/json"})
            _answer_ok(r, body)

        send()
    assert {200, 400} <= set(SEEN)  # both kinds of answer were met


def test_what_the_fuzzing_found_stays_fixed(tiny: Path, tmp_path: Path) -> None:
    with app_client(tiny, tmp_path) as c:
        for path, body in [
            ("/v1/score", {"text": "a", "model": []}),  # was a TypeError: a 500
            ("/v1/completions", {"prompt": "a", "model": {"x": 1}}),
            ("/v1/completions", {"prompt": "a", "\n": None}),  # the key's line end in the message
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "a", "\n": 1}]}),
            ("/v1/score", {"text": "a", "x\ny": 1}),
        ]:
            r = c.post(path, json=body)
            assert r.status_code == 400, (body, r.text)
            _answer_ok(r, body)
