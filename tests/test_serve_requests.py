"""What one request may ask of the server, in process: echo with logprobs and per-character scores
are capped (--max-echo) and read a chunk at a time; a session's next request is guarded as one
request over its whole text; streamed usage chunks follow OpenAI's contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from charrnn.infer.engine import Forward
from charrnn.serve.echo import ECHO_CHUNK, chunks, read_with_logprobs
from charrnn.serve.logprobs import prompt_logprobs
from charrnn.serve.protocol import Limits
from tests.conftest import corpus_text
from tests.serving_app import app_client


def _events(client, body: dict) -> list[dict]:
    with client.stream("POST", "/v1/completions", json=body) as r:
        assert r.status_code == 200
        lines = [x for x in r.iter_lines() if x]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(x.removeprefix("data: ")) for x in lines[:-1]]


def test_streamed_usage_is_null_until_the_last_chunk(tiny: Path, tmp_path: Path) -> None:
    body = {"prompt": "def ", "max_tokens": 40, "n": 2, "seed": 1, "stream": True}
    with app_client(tiny, tmp_path) as c:
        events = _events(c, {**body, "stream_options": {"include_usage": True}})
        assert len(events) > 2
        assert all("usage" in e and e["usage"] is None for e in events[:-1])
        assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 80
        assert all("usage" not in e for e in _events(c, body))  # not asked: not there


def test_echo_with_logprobs_past_the_cap_is_a_400_naming_the_flag(
    tiny: Path, tmp_path: Path
) -> None:
    huge = {"prompt": [[0] * 20000] * 16, "echo": True, "logprobs": 20, "max_tokens": 0}
    with app_client(tiny, tmp_path) as c:
        r = c.post("/v1/completions", json=huge)
        assert r.status_code == 400 and r.json()["error"]["param"] == "echo"
        message = r.json()["error"]["message"]
        assert "--max-echo" in message and "120000" in message and "5714 characters" in message
        # every choice's copy of the prompt counts, and each character's alternatives
        ok = {"prompt": "a" * 2857, "echo": True, "logprobs": 20, "max_tokens": 0, "n": 2}
        assert c.post("/v1/completions", json=ok).status_code == 200
        assert c.post("/v1/completions", json={**ok, "n": 3}).status_code == 400
        assert c.post("/v1/completions", json={**ok, "n": 3, "logprobs": 5}).status_code == 200
        # echo alone is not capped by it
        assert c.post("/v1/completions", json={**huge, "logprobs": None}).status_code == 200
    # a smaller cap, as the flag sets it
    with app_client(tiny, tmp_path, limits=Limits(max_echo=5)) as c:
        body = {"prompt": "abc", "echo": True, "logprobs": 1, "max_tokens": 0}
        assert c.post("/v1/completions", json=body).status_code == 400
        assert c.post("/v1/completions", json={**body, "logprobs": 0}).status_code == 200


def test_per_char_scores_past_the_cap_are_a_400(tiny: Path, tmp_path: Path) -> None:
    text = corpus_text(20_001)
    with app_client(tiny, tmp_path) as c:
        r = c.post("/v1/score", json={"text": text, "per_char": True, "top_k": 5})
        assert r.status_code == 400 and r.json()["error"]["param"] == "per_char"
        assert "--max-echo" in r.json()["error"]["message"]
        assert c.post("/v1/score", json={"text": text}).status_code == 200
        # the playground's most: 20,000 characters at top_k 5
        fits = c.post("/v1/score", json={"text": text[:20_000], "per_char": True, "top_k": 5})
        assert fits.status_code == 200 and len(fits.json()["per_char"]) > 15_000
        assert len(fits.content) < 4_000_000
        r = c.post("/v1/score", json={"text": text[:5715], "per_char": True, "top_k": 20})
        assert r.status_code == 400


def test_echoed_logprobs_are_read_a_chunk_at_a_time_and_equal_a_whole_read(tiny: Path) -> None:
    from charrnn.infer.sampler import Sampler

    engine = Sampler.from_checkpoint(tiny).engine
    prompt = "€" + corpus_text(2 * ECHO_CHUNK + 1) + "€"  # a one-row remainder joins the last chunk
    ids = engine.vocab.encode(prompt, "skip")
    assert chunks(len(ids))[-1][1] - chunks(len(ids))[-1][0] == ECHO_CHUNK + 1

    class Watched:
        """The engine, noting how many characters each read holds logits for."""

        def __init__(self) -> None:
            self.rows: list[int] = []

        def __getattr__(self, name: str):
            return getattr(engine, name)

        def forward_steps(self, part, state=None, **kw):
            self.rows.append(len(part))
            return engine.forward_steps(part, state, **kw)

    watched = Watched()
    steps = read_with_logprobs(watched, prompt, ids, None, 5)
    try:
        while True:
            next(steps)
    except StopIteration as end:
        fwd, entries = end.value
    assert max(watched.rows) <= ECHO_CHUNK + 1 and sum(watched.rows) == len(ids)
    whole = engine.forward(ids)
    assert entries == prompt_logprobs(engine.vocab, prompt, whole.logits, 5)
    assert isinstance(fwd, Forward) and fwd.logits.shape == (1, engine.vocab.size)
    np.testing.assert_array_equal(fwd.logits[0], engine.head_logits(whole.state)[0])


def test_a_session_turn_is_guarded_as_one_request_over_its_whole_text(
    tiny: Path, tmp_path: Path
) -> None:
    text = corpus_text(3000)
    guard = {"max_tokens": 120, "temperature": 0, "no_repeat": 3}
    with app_client(tiny, tmp_path, deterministic=True) as c:
        first = {"prompt": text[:2600], "max_tokens": 0, "session": "s"}
        assert c.post("/v1/completions", json=first).status_code == 200
        turn = c.post("/v1/completions", json={"prompt": text[2600:], "session": "s", **guard})
        alone = c.post("/v1/completions", json={"prompt": text, **guard})
        assert turn.status_code == alone.status_code == 200, turn.text
        assert turn.json()["choices"][0]["text"] == alone.json()["choices"][0]["text"]
        service = c.app.state.service  # type: ignore[attr-defined]
        saved = service.store.get("s")
        assert saved.tail == text + turn.json()["choices"][0]["text"]


def test_a_template_named_for_one_model_turns_chat_on_for_it_alone(
    tiny: Path, tmp_path: Path
) -> None:
    from charrnn.cli.serve import _chat_specs

    names = ["a", "b"]
    assert _chat_specs(["a=play"], names, chat=False) == {"a": "play"}
    assert _chat_specs(["a=play"], names, chat=True) == {"a": "play", "b": "plain"}
    assert _chat_specs(["chatbot", "a=play"], names, chat=False) == {"a": "play", "b": "chatbot"}
    assert _chat_specs([], names, chat=True) == {"a": "plain", "b": "plain"}
    assert _chat_specs([], names, chat=False) == {}
    # served so: chat for b is a 404 naming it, and b's card says it has no template
    from starlette.testclient import TestClient

    from charrnn.serve.app import build_app
    from charrnn.serve.chat_template import parse_template
    from charrnn.serve.models import load_models
    from charrnn.serve.service import Settings

    models = load_models([("a", tiny), ("b", tiny)])
    settings = Settings(sessions=tmp_path / "s.sqlite", chat={"a": parse_template("plain")})
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    with TestClient(build_app(models, settings)) as c:
        assert c.post("/v1/chat/completions", json={**chat, "model": "a"}).status_code == 200
        r = c.post("/v1/chat/completions", json={**chat, "model": "b"})
        assert r.status_code == 404 and r.json()["error"]["param"] == "model"
        assert "'b'" in r.json()["error"]["message"]
        assert c.get("/v1/models/b").json()["charrnn"]["chat_template"] is None
