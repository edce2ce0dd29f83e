"""No request holds the others (issue 40, §2), against a real `charrnn serve` over a socket: a
chat session's turn finishes while a long score is still running, a score takes capacity as a
generation does, and a request with several prompts takes all its streams at once or none."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.serving import Server, wait_for

pytestmark = pytest.mark.slow  # every test here starts real servers


def _blocker(srv: Server):
    """A streamed completion that generates until it is closed: it holds one stream."""
    body = {"prompt": "A", "max_tokens": 1_000_000, "stream": True}
    return httpx.stream("POST", srv.url + "/v1/completions", json=body, timeout=60)


def _health(srv: Server) -> dict:
    return httpx.get(srv.url + "/health", timeout=30).json()


def _chat_turn(srv: Server, messages: list[dict]) -> tuple[str, dict, float]:
    """A streamed chat turn in session "talk": (reply, the charrnn facts, when [DONE] came)."""
    body = {"messages": messages, "session": "talk", "max_tokens": 30, "seed": 1, "stream": True}
    reply, facts = "", {}
    with httpx.stream("POST", srv.url + "/v1/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line == "data: [DONE]":
                return reply, facts, time.monotonic()
            if line.startswith("data: "):
                chunk = json.loads(line.removeprefix("data: "))
                facts = chunk.get("charrnn", facts)
                for c in chunk["choices"]:
                    reply += c["delta"].get("content") or ""
    raise AssertionError("no [DONE]")


def test_a_chat_turn_is_not_held_behind_a_long_score(served) -> None:
    srv = served("--chat", "--max-body", 4_000_000)
    text = "def parse(text):\n    return text.split()\n" * 8_000  # 320 KB: seconds of scoring
    scored: dict = {}

    def score() -> None:
        r = httpx.post(srv.url + "/v1/score", json={"text": text}, timeout=600)
        scored.update(status=r.status_code, at=time.monotonic())

    worker = threading.Thread(target=score)
    worker.start()
    time.sleep(1.5)  # the score is on the worker
    assert "at" not in scored, "the score ended before the chat began: make its text longer"
    messages = [{"role": "user", "content": "import os"}]
    reply, _, done_at = _chat_turn(srv, messages)
    # the turn's [DONE] (sent once its session is committed) came while the score still ran
    assert "at" not in scored or done_at < scored["at"]
    # and the session is free at once: the next turn is not a 409, and it reads only what is new
    messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "x"}]
    _, facts, again_at = _chat_turn(srv, messages)
    assert facts["reused_chars"] > 0 and facts["reread"] is None
    worker.join(600)
    assert scored["status"] == 200
    assert again_at < scored["at"], "the second turn waited for the score"


def test_a_score_takes_a_stream_of_capacity(served) -> None:
    srv = served("--max-streams", "1", "--queue-timeout", "0.3", "--max-chars", "1000000")
    with _blocker(srv) as r:
        lines = r.iter_lines()  # held: a dropped iterator closes the response
        next(lines)
        busy = httpx.post(srv.url + "/v1/score", json={"text": "import os\n"}, timeout=60)
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
        assert busy.json()["error"]["type"] == "rate_limit_error"
    assert wait_for(lambda: _health(srv)["streams"] == 0)
    ok = httpx.post(srv.url + "/v1/score", json={"text": "import os\n"}, timeout=60)
    assert ok.status_code == 200 and ok.json()["chars"] > 0


def test_a_request_takes_all_its_streams_at_once_or_none(served) -> None:
    srv = served("--max-streams", "2", "--queue-timeout", "3", "--max-chars", "1000000")
    with _blocker(srv) as r:
        lines = r.iter_lines()  # held: a dropped iterator closes the response
        next(lines)
        got: dict = {}
        body = {"prompt": ["def ", "class "], "max_tokens": 1_000_000}

        def two_prompts() -> None:
            got["r"] = httpx.post(srv.url + "/v1/completions", json=body, timeout=60)

        t = threading.Thread(target=two_prompts)
        t.start()
        assert wait_for(lambda: _health(srv)["queued"] == 1)
        time.sleep(0.5)  # time for a prompt admitted alone to be read and to generate
        # it waits for its two streams while only one is free: none of its prompts runs
        assert _health(srv)["streams"] == 1
        t.join(60)
    assert got["r"].status_code == 429
    # with both streams free it runs, every prompt
    out = httpx.post(srv.url + "/v1/completions", json={**body, "max_tokens": 5}, timeout=60).json()
    assert [c["index"] for c in out["choices"]] == [0, 1]


def test_two_multi_prompt_requests_do_not_starve_each_other(served) -> None:
    srv = served("--max-streams", "2", "--queue-timeout", "5", "--timeout", "8",
                 "--max-chars", "1000000")  # fmt: skip
    body = {"prompt": "A", "n": 2, "max_tokens": 1_000_000, "stream": True}
    got: list[httpx.Response] = []

    def two_prompts() -> None:
        body = {"prompt": ["def ", "class "], "max_tokens": 1_000_000}  # each runs 8 s
        got.append(httpx.post(srv.url + "/v1/completions", json=body, timeout=60))

    with httpx.stream("POST", srv.url + "/v1/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()  # held: a dropped iterator closes the response
        next(lines)  # both streams are taken
        waiting = [threading.Thread(target=two_prompts) for _ in range(2)]
        for t in waiting:
            t.start()
        assert wait_for(lambda: _health(srv)["queued"] == 2)
    # both streams come free at once. Were each request to take one for its first prompt, each
    # would wait for the other's second until both were refused; one runs, the other is refused
    for t in waiting:
        t.join(60)
    assert sorted(r.status_code for r in got) == [200, 429]
    (ok,) = [r.json() for r in got if r.status_code == 200]
    assert [c["index"] for c in ok["choices"]] == [0, 1]
