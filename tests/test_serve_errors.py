"""The server refuses every bad request with a 4xx in OpenAI's error shape and keeps serving; the API
key, CORS, and the command's own refusals at start-up."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.serving import CLI, Server

pytestmark = pytest.mark.slow  # real servers, started and refused

OK = {"prompt": "ROMEO:", "max_tokens": 5, "seed": 1}

BAD_BODIES = [
    # (body, status, param)
    ({"prompt": "A", "max_tokens": -1}, 400, "max_tokens"),
    ({"prompt": "A", "max_tokens": 10**9}, 400, "max_tokens"),
    ({"prompt": "A", "max_tokens": "ten"}, 400, "max_tokens"),
    ({"prompt": "A", "temperature": -0.5}, 400, "temperature"),
    ({"prompt": "A", "temperature": "hot"}, 400, "temperature"),
    ({"prompt": "A", "top_p": 0}, 400, "top_p"),
    ({"prompt": "A", "top_p": 1.5}, 400, "top_p"),
    ({"prompt": "A", "top_k": -2}, 400, "top_k"),
    ({"prompt": "A", "min_p": 2}, 400, "min_p"),
    ({"prompt": "A", "n": 0}, 400, "n"),
    ({"prompt": "A", "n": 1000}, 400, "n"),
    ({"prompt": "A", "seed": -1}, 400, "seed"),
    ({"prompt": "A", "seed": 1.5}, 400, "seed"),
    ({"prompt": "A", "stream": "yes"}, 400, "stream"),
    ({"prompt": "A", "echo": 1}, 400, "echo"),
    ({"prompt": "A", "logprobs": 99}, 400, "logprobs"),
    ({"prompt": "A", "stop": ""}, 400, "stop"),
    ({"prompt": "A", "stop": [1, 2]}, 400, "stop"),
    ({"prompt": "A", "stop": ["x"] * 17}, 400, "stop"),
    ({"prompt": "A", "until": "chapter"}, 400, "until"),
    ({"prompt": "A", "min_words": 3}, 400, "min_words"),
    ({"prompt": "A", "until": "sentence", "min_words": 5, "max_words": 2}, 400, "min_words"),
    ({"prompt": "A", "no_repeat": 0}, 400, "no_repeat"),
    ({"prompt": "A", "ban": "xyz"}, 200, None),  # one string is a list of one
    ({"prompt": "A", "ban": [""]}, 400, "ban"),
    ({"prompt": "A", "unknown": "drop"}, 400, "unknown"),
    ({"prompt": [1, 2, 3], "max_tokens": 3}, 200, None),  # token ids: one prompt
    ({"prompt": ["a", "b"], "max_tokens": 3}, 200, None),  # two prompts
    ({"prompt": [[1, 2], [3]], "max_tokens": 3}, 200, None),
    ({"prompt": [1, "a"]}, 400, "prompt"),
    ({"prompt": []}, 400, "prompt"),
    ({"prompt": [[1], [99999]]}, 400, "prompt"),  # an id outside the vocabulary
    ({"prompt": [1, True]}, 400, "prompt"),
    ({"prompt": ["a", "b"], "n": 9}, 400, "prompt"),  # 18 streams, over --max-n 16
    ({"prompt": ["a", "b"], "session": "s"}, 400, "prompt"),
    ({"prompt": "x" * 5000}, 400, "prompt"),  # over --max-prompt 4000
    ({"prompt": "price: 5€"}, 400, "prompt"),  # a character the model has never seen
    ({"prompt": "price: 5€", "unknown": "skip", "max_tokens": 3}, 200, None),
    ({"prompt": "A", "model": "nope"}, 404, "model"),
    ({"prompt": "A", "model": 7}, 400, "model"),
    ({"prompt": "A", "frequency_penalty": 0.5, "max_tokens": 3}, 200, None),
    ({"prompt": "A", "frequency_penalty": 2.5}, 400, "frequency_penalty"),
    ({"prompt": "A", "frequency_penalty": "high"}, 400, "frequency_penalty"),
    ({"prompt": "A", "presence_penalty": -1, "max_tokens": 3}, 200, None),
    ({"prompt": "A", "presence_penalty": -2.01}, 400, "presence_penalty"),
    ({"prompt": "A", "logit_bias": {"50256": -100}}, 400, "logit_bias"),  # not in the vocabulary
    ({"prompt": "A", "logit_bias": {"e": -100}}, 400, "logit_bias"),  # ids, not characters
    ({"prompt": "A", "logit_bias": {"3": 101}}, 400, "logit_bias"),
    ({"prompt": "A", "logit_bias": {"3": "x"}}, 400, "logit_bias"),
    ({"prompt": "A", "logit_bias": [3]}, 400, "logit_bias"),
    ({"prompt": "A", "logit_bias": {"3": -100}, "max_tokens": 3}, 200, None),
    ({"prompt": "A", "logit_bias": {}}, 200, None),
    ({"prompt": "A", "logit_bias_chars": {"ab": 1}}, 400, "logit_bias_chars"),
    ({"prompt": "A", "logit_bias_chars": {"☃": 1}}, 400, "logit_bias_chars"),
    ({"prompt": "A", "logit_bias_chars": {"e": 5}, "max_tokens": 3}, 200, None),
    ({"prompt": "A", "best_of": 3, "max_tokens": 3}, 200, None),
    ({"prompt": "A", "best_of": 1}, 200, None),
    ({"prompt": "A", "best_of": 0}, 400, "best_of"),
    ({"prompt": "A", "best_of": 21}, 400, "best_of"),
    ({"prompt": "A", "best_of": 1, "n": 2}, 400, "best_of"),  # fewer candidates than choices
    ({"prompt": "A", "best_of": 2, "stream": True}, 400, "best_of"),
    ({"prompt": ["A", "B"], "best_of": 9}, 400, "best_of"),  # 18 streams, over --max-n 16
    ({"prompt": "A", "best_of": 2, "session": "s"}, 400, "best_of"),
    ({"prompt": "A", "suffix": "end"}, 400, "suffix"),
    ({"prompt": "A", "suffix": None}, 200, None),
    ({"prompt": "A", "functions": []}, 400, "functions"),
    ({"prompt": "A", "session": "s", "n": 2}, 400, "n"),
    ({"prompt": "A", "session": "no spaces allowed"}, 400, "session"),
    ({"prompt": "A", "stream_options": {"x": 1}}, 400, "stream_options"),
    ([1, 2], 400, None),
    ("just a string", 400, None),
]


def _error(r: httpx.Response, status: int, param: str | None) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"] and isinstance(err["message"], str) and "\n" not in err["message"]
    assert err["param"] == param, err


def test_every_bad_request_gets_a_4xx_and_the_server_keeps_serving(served) -> None:
    srv = served("--max-prompt", "4000", "--max-chars", "1000", "--max-body", "65536")
    url = srv.url + "/v1/completions"
    with httpx.Client(timeout=30) as c:
        for body, status, param in BAD_BODIES:
            r = c.post(url, json=body)
            if status == 200:
                assert r.status_code == 200, (body, r.text)
            else:
                _error(r, status, param)
        # malformed and oversized bodies, empty bodies, wrong methods and routes
        _error(c.post(url, content=b"{not json"), 400, None)
        _error(c.post(url, content=b"\xff\xfe"), 400, None)
        _error(c.post(url, content=b""), 400, None)
        _error(c.post(url, content=b'{"prompt": "' + b"a" * 70000 + b'"}'), 413, None)
        _error(c.get(url), 405, None)
        _error(c.post(srv.url + "/v1/nothing", json={}), 404, None)
        chat = c.post(srv.url + "/v1/chat/completions", json={"messages": []})
        _error(chat, 404, None)
        assert "/v1/completions" in chat.json()["error"]["message"]
        _error(c.post(srv.url + "/v1/score", json={"text": "a", "top_k": 99}), 400, "top_k")
        _error(c.post(srv.url + "/v1/score", json={"text": "5€", "unknown": "error"}), 400, "text")
        _error(c.post(srv.url + "/v1/score", json={"txt": "a"}), 400, "txt")
        _error(c.get(srv.url + "/generate", params={"n": 0}), 400, "n")
        _error(c.get(srv.url + "/generate", params={"temperature": "warm"}), 400, "temperature")
        _error(c.get(srv.url + "/v1/sessions/unknown-id"), 404, "session")
        # still serving, with the same text as before
        a = c.post(url, json=OK).json()["choices"][0]["text"]
        b = c.post(url, json=OK).json()["choices"][0]["text"]
        assert a == b and len(a) == 5
    assert "Traceback" not in "".join(srv.log)


def test_api_key_on_loopback_and_exposed(served, tmp_path: Path, trained: Path) -> None:
    srv = served("--api-key", "sekrit")
    url = srv.url + "/v1/completions"
    _error(httpx.post(url, json=OK), 401, None)
    assert httpx.post(url, json=OK).headers["www-authenticate"] == "Bearer"
    _error(httpx.post(url, json=OK, headers={"Authorization": "Bearer wrong"}), 401, None)
    _error(httpx.get(srv.url + "/generate"), 401, None)
    _error(httpx.get(srv.url + "/v1/models"), 401, None)
    ok = httpx.post(url, json=OK, headers={"Authorization": "Bearer sekrit"})
    assert ok.status_code == 200
    assert httpx.get(srv.url + "/health").status_code == 200  # open: a load balancer's probe
    assert httpx.get(srv.url + "/").status_code == 200  # the page asks for the key itself
    import openai

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0).completions.create(
            model="run", prompt="A"
        )
    c = openai.OpenAI(base_url=srv.url + "/v1", api_key="sekrit", max_retries=0)
    assert c.completions.create(model="run", prompt="A", max_tokens=3).choices[0].text
    # the key can come from the environment, and then binds beyond loopback
    srv2 = served("--host", "0.0.0.0", env={"CHARRNN_API_KEY": "fromenv"})
    _error(
        httpx.post(srv2.url.replace("0.0.0.0", "127.0.0.1") + "/v1/completions", json=OK), 401, None
    )


def test_cors_only_for_the_origins_given(served) -> None:
    plain = served()
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization,content-type"}  # fmt: skip
    r = httpx.post(
        plain.url + "/v1/completions", json=OK, headers={"Origin": "https://app.example"}
    )
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    srv = served("--cors-origin", "https://app.example", "--api-key", "k")
    r = httpx.options(srv.url + "/v1/completions", headers=pre)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    r = httpx.post(
        srv.url + "/v1/completions",
        json=OK,
        headers={"Origin": "https://app.example", "Authorization": "Bearer k"},
    )
    assert (
        r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
    )
    # a 401 carries the header too, so the page can read the error
    r = httpx.post(srv.url + "/v1/completions", json=OK, headers={"Origin": "https://app.example"})
    assert (
        r.status_code == 401 and r.headers["access-control-allow-origin"] == "https://app.example"
    )
    r = httpx.options(
        srv.url + "/v1/completions", headers={**pre, "Origin": "https://evil.example"}
    )
    assert r.status_code == 400 and "access-control-allow-origin" not in r.headers


def _start_fails(*args: object) -> subprocess.CompletedProcess:
    r = subprocess.run([*CLI, "serve", *map(str, args)], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, env=None)  # fmt: skip
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0, r.stderr
    return r


def test_refusals_at_start(trained: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("CHARRNN_API_KEY", raising=False)
    r = _start_fails(trained, "--host", "0.0.0.0", "--port", "0")
    assert "--api-key" in r.stderr
    r = _start_fails(trained, f"run={trained}", "--port", "0")
    assert "two models named 'run'" in r.stderr
    r = _start_fails(tmp_path / "missing.ckpt", "--port", "0")
    assert "missing.ckpt" in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = _start_fails(trained, "--port", s.getsockname()[1])
        assert "cannot listen" in r.stderr
    r = _start_fails("--port", "0")  # no checkpoint given and none under ./runs
    assert "no checkpoint" in r.stderr


def test_default_checkpoint_and_names(served, trained: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "poet"
    run.mkdir(parents=True)
    (run / "best.ckpt").write_bytes(trained.read_bytes())
    with Server("--sessions", tmp_path / "s.sqlite") as srv:  # none given: the newest under runs/
        assert [m["id"] for m in httpx.get(srv.url + "/v1/models").json()["data"]] == ["poet"]
        assert srv.stop() == 0
    srv = served(f"bard={trained}", model=run / "best.ckpt")
    ids = [m["id"] for m in httpx.get(srv.url + "/v1/models").json()["data"]]
    assert ids == ["poet", "bard"]
    _error(httpx.post(srv.url + "/v1/completions", json={"prompt": "A"}), 400, "model")
    r = httpx.post(srv.url + "/v1/completions", json={**OK, "model": "bard"})
    assert r.status_code == 200 and r.json()["model"] == "bard"
    assert json.loads(httpx.get(srv.url + "/health").text)["models"] == ["poet", "bard"]
