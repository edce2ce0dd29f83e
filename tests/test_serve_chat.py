"""`charrnn serve --chat`: the openai client's chat calls against a real server, plain and streamed;
a reply equals the completion of the rendered prompt; chat sessions read only what is new and
answer exactly as the whole history does; templates refused at start-up; chat off without --chat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.serving import Server

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.slow  # every test here starts real servers

SYSTEM = {"role": "system", "content": "A module of the standard library."}


def client(srv: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0)


def completion(srv: Server, prompt: str, stops: list[str], **body) -> dict:
    r = httpx.post(
        srv.url + "/v1/completions", json={"prompt": prompt, "stop": stops, **body}, timeout=60
    )
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]


def test_chat_plain_and_streamed_equal_the_rendered_completion(served) -> None:
    srv = served("--deterministic", "--chat")
    c = client(srv)
    messages = [SYSTEM, {"role": "user", "content": "def parse(text):"}]
    out = c.chat.completions.create(
        model="run", messages=messages, seed=5, temperature=0.8, max_tokens=80
    )
    reply = out.choices[0].message
    assert out.object == "chat.completion" and reply.role == "assistant"
    rendered = "System: A module of the standard library.\nUser: def parse(text):\nAssistant: "
    stops = ["\nSystem:", "\nUser:", "\nAssistant:", "\n"]
    same = completion(srv, rendered, stops, seed=5, temperature=0.8, max_tokens=80)
    assert reply.content == same["text"] and out.choices[0].finish_reason == same["finish_reason"]
    assert out.usage.prompt_tokens == len(rendered)
    assert out.usage.completion_tokens == len(reply.content)
    assert out.model_extra["charrnn"]["template"] == "plain"
    # streamed: the role first, the text in pieces, the finish reason, usage, [DONE]
    stream = c.chat.completions.create(
        model="run",
        messages=messages,
        seed=5,
        temperature=0.8,
        max_tokens=80,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    reasons = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
    assert text == reply.content and reasons[-1] == out.choices[0].finish_reason
    assert reasons.count(None) == len(reasons) - 1
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == out.usage.total_tokens
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)


def test_chat_n_seeds_logprobs_and_penalties(served) -> None:
    srv = served("--deterministic", "--chat")
    c = client(srv)
    body = {
        "model": "run",
        "messages": [{"role": "user", "content": "import os"}],
        "seed": 11,
        "n": 2,
        "max_completion_tokens": 40,
        "logprobs": True,
        "top_logprobs": 3,
        "frequency_penalty": 0.7,
        "logit_bias": {"3": -100},
    }
    out = c.chat.completions.create(**body)
    rendered = "User: import os\nAssistant: "
    stops = ["\nSystem:", "\nUser:", "\nAssistant:", "\n"]
    for j, choice in enumerate(out.choices):
        assert choice.index == j and choice.model_extra["seed"] == 11 + j
        same = completion(
            srv, rendered, stops, seed=11 + j, max_tokens=40, logprobs=3,
            frequency_penalty=0.7, logit_bias={"3": -100},
        )  # fmt: skip
        assert choice.message.content == same["text"]
        content = choice.logprobs.content
        assert "".join(t.token for t in content) == choice.message.content
        assert [t.logprob for t in content] == same["logprobs"]["token_logprobs"]
        assert all(len(t.top_logprobs) == 3 for t in content)
        assert all(t.bytes == list(t.token.encode()) for t in content)
    # streamed with n=2: every chunk names its choice; each choice's text is the whole one's
    streamed: dict[int, str] = {}
    roles: dict[int, list] = {0: [], 1: []}
    ends: dict[int, list] = {0: [], 1: []}
    for ch in c.chat.completions.create(**body, stream=True):
        for part in ch.choices:
            streamed[part.index] = streamed.get(part.index, "") + (part.delta.content or "")
            roles[part.index].append(part.delta.role)
            ends[part.index].append(part.finish_reason)
    assert streamed == {j: ch.message.content for j, ch in enumerate(out.choices)}
    for j, choice in enumerate(out.choices):
        assert roles[j][0] == "assistant" and set(roles[j][1:]) <= {None}
        assert [e for e in ends[j] if e] == [choice.finish_reason] and ends[j][-1]


def test_chat_sessions_read_only_what_is_new(served, tmp_path: Path) -> None:
    srv = served("--deterministic", "--chat-template", "play:MODULE:USER")
    c = client(srv)
    messages = [SYSTEM]
    primed, whole = [], []
    for turn, line in enumerate(["import sys", "def main():", "if __name__ == '__main__':"]):
        messages.append({"role": "user", "content": line})
        kw = {"model": "run", "messages": messages, "seed": 20 + turn, "max_tokens": 60}
        # no_repeat looks back over the whole conversation, session or not
        a = c.chat.completions.create(**kw, extra_body={"session": "talk", "no_repeat": 6})
        b = c.chat.completions.create(**kw, extra_body={"no_repeat": 6})
        reply = a.choices[0].message.content
        assert reply == b.choices[0].message.content  # a session turn = the whole history read
        facts = a.model_extra["charrnn"]
        primed.append(facts["primed_chars"])
        whole.append(a.usage.prompt_tokens)
        assert a.usage.prompt_tokens_details.cached_tokens == facts["reused_chars"]
        assert facts["reused_chars"] + facts["primed_chars"] == a.usage.prompt_tokens
        assert (facts["reread"] is None) == (turn > 0)
        messages.append({"role": "assistant", "content": reply})
    assert primed[0] == whole[0] and all(p < w for p, w in zip(primed[1:], whole[1:], strict=True))
    replies = [m["content"] for m in messages if m["role"] == "assistant"]
    assert sum(len(r) for r in replies) > 60  # the equalities above compared real text
    info = httpx.get(srv.url + "/v1/sessions/talk").json()
    assert info["chat"] is True and info["requests"] == 3
    # an edited history is read again from the start, says so, and still answers as a fresh read
    edited = [SYSTEM, {"role": "user", "content": "import json"}]
    kw = {"model": "run", "messages": edited, "seed": 3, "max_tokens": 60}
    a = httpx.post(
        srv.url + "/v1/chat/completions", json=kw, headers={"X-Session-Id": "talk"}, timeout=60
    ).json()
    assert "history edited" in a["charrnn"]["reread"]
    assert a["charrnn"]["primed_chars"] == a["usage"]["prompt_tokens"]
    assert (
        a["choices"][0]["message"] == c.chat.completions.create(**kw).choices[0].message.to_dict()
    )
    both = httpx.post(
        srv.url + "/v1/chat/completions",
        json={**kw, "session": "a"},
        headers={"X-Session-Id": "b"},
    )
    assert both.status_code == 400 and both.json()["error"]["param"] == "session"
    several = httpx.post(
        srv.url + "/v1/chat/completions", json={**kw, "n": 2}, headers={"X-Session-Id": "talk"}
    )
    assert several.status_code == 400 and several.json()["error"]["param"] == "n"
    # a session continued by /v1/completions holds no conversation: chat reads all and says so
    httpx.post(srv.url + "/v1/completions", json={"prompt": "x", "session": "talk"}, timeout=60)
    again = httpx.post(
        srv.url + "/v1/chat/completions", json={**kw, "session": "talk"}, timeout=60
    ).json()
    assert "/v1/completions" in again["charrnn"]["reread"]
    # a lone surrogate is refused before anything is held or read; the session is free again
    bad = {"messages": [{"role": "user", "content": "\ud800"}], "session": "talk"}
    r = httpx.post(srv.url + "/v1/chat/completions", content=json.dumps(bad))  # \ud800 escaped
    assert r.status_code == 400 and "surrogate" in r.json()["error"]["message"]
    assert (
        httpx.post(
            srv.url + "/v1/chat/completions", json={**kw, "session": "talk"}, timeout=60
        ).status_code
        == 200
    )


def test_continued_assistant_message_and_refusals_keep_serving(served) -> None:
    srv = served("--chat")
    c = client(srv)
    out = c.chat.completions.create(
        model="run",
        messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "import "}],
        max_tokens=10,
        seed=1,
    )
    assert out.model_extra["charrnn"]["continued"] is True
    assert out.usage.prompt_tokens == len("User: x\nAssistant: import ")
    for kw, param in [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0]"),
    ]:  # fmt: skip
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(
                **{"model": "run", "messages": [{"role": "user", "content": "x"}], **kw}
            )
        assert e.value.body["param"] == param
    card = httpx.get(srv.url + "/v1/models/run").json()
    assert card["charrnn"]["chat_template"]["spec"] == "plain"
    assert c.chat.completions.create(model="run", messages=[{"role": "user", "content": "x"}],
                                     max_tokens=3).choices  # fmt: skip


def test_chat_is_off_without_a_template(served) -> None:
    srv = served()
    r = httpx.post(
        srv.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}
    )
    assert r.status_code == 404 and "--chat" in r.json()["error"]["message"]
    assert httpx.get(srv.url + "/v1/models/run").json()["charrnn"]["chat_template"] is None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["--chat-template", '{"user": "问：", "assistant": "答："}'],
            "has never seen '问' '：' '答'",
        ),
        (["--chat-template", "other=plain"], "no model named 'other'"),
        (["--chat-template", "plain", "--chat-template", "play"], "both apply to every model"),
        (["--chat-template", "nonesuch"], "not a preset"),
    ],
)
def test_templates_refused_at_start_up(trained: Path, args: list[str], words: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "charrnn", "serve", str(trained), "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert "Traceback" not in r.stderr
