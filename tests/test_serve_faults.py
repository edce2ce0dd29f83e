"""The server under faults and load: scoring never runs beside a batch step (nor while BLAS's thread count
changes) and gives the same figures under load; a session that could not be saved is reported;
an internal error's detail goes to the server's log, not to the client; `--device` is resolved
before the server starts (auto serves on this machine, a missing GPU is one line and exit 2)."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import run_cli
from tests.serving import wait_for

GENERIC = "internal error; see the server log"
PROMPT = "\n"  # in every model's vocabulary
SECRET = "/srv/secret-dir/runs/model/best.ckpt"


# --- helpers ----------------------------------------------------------------------------------
@contextlib.contextmanager
def in_process(trained: Path, tmp_path: Path) -> Iterator[str]:
    """The real app under uvicorn on a real socket, in this process (so a test can instrument
    or break a function the server calls); yields its URL."""
    import uvicorn

    from charrnn.serve.app import build_app
    from charrnn.serve.models import load_models
    from charrnn.serve.service import Settings

    app = build_app(load_models([("m", trained)]), Settings(sessions=tmp_path / "s.sqlite"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: server.started, 30), "the in-process server did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextlib.contextmanager
def server_log() -> Iterator[list[str]]:
    """Every line the `charrnn.serve` logger writes (tracebacks included) while inside."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler, logger = Keep(logging.DEBUG), logging.getLogger("charrnn.serve")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def generate_streams(
    url: str, n: int, chars: int, started: threading.Barrier
) -> tuple[list[dict], list[threading.Thread]]:
    """n concurrent streamed completions through the openai client, on threads (returned, with a
    result per stream: its text and when it ended). Each waits at `started` after its first chunk."""
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    model = client.models.list().data[0].id
    out: list[dict] = [{} for _ in range(n)]

    def one(i: int) -> None:
        text, first = "", True
        for ch in client.completions.create(
            model=model,
            prompt=PROMPT,
            max_tokens=chars,
            temperature=1.0,
            seed=100 + i,
            stream=True,
        ):
            text += ch.choices[0].text
            if first:
                first = False
                started.wait(60)
        out[i] = {"text": text, "ended": time.monotonic()}

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return out, threads


def model_text(url: str, n: int) -> str:
    """n characters the served model writes (so any test model knows every one of them)."""
    body = {"prompt": PROMPT, "max_tokens": n, "seed": 7}
    r = httpx.post(url + "/v1/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["text"]


def overlaps(intervals: list[tuple[float, float, str, str]]) -> list[tuple[str, str]]:
    """Pairs of (kind, kind) whose intervals overlap in time on different threads."""
    bad, active = [], []
    for t0, t1, thread, kind in sorted(intervals):
        active = [a for a in active if a[0] > t0]
        bad += [(a[2], kind) for a in active if a[1] != thread]
        active.append((t1, thread, kind))
    return bad


# --- 1. scoring and the batching worker ---------------------------------------------------------
@pytest.mark.slow
def test_scoring_never_runs_beside_a_step_or_a_thread_count_switch(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from charrnn.infer import numpy_engine

    intervals: list[tuple[float, float, str, str]] = []

    def timed(kind: str, fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                t1 = time.perf_counter()
                intervals.append((t0, t1, threading.current_thread().name, kind))

        return wrapper

    # every switch of BLAS's thread count, every batch step, and every piece of arithmetic the
    # engine does (a recurrence step of one layer, a chunk's input projection), on whatever thread
    monkeypatch.setattr(numpy_engine, "blas_threads", timed("blas", numpy_engine.blas_threads))
    for name in ("step", "_cell", "_project"):
        method = getattr(numpy_engine.Engine, name)
        monkeypatch.setattr(numpy_engine.Engine, name, timed(name, method))
    with in_process(trained, tmp_path) as url:
        text = model_text(url, 3000)
        started = threading.Barrier(17)
        results, threads = generate_streams(url, 16, 800, started)
        started.wait(60)  # every stream has written its first characters
        got = httpx.post(url + "/v1/score", json={"text": text}, timeout=120)
        scored = time.monotonic()
        for t in threads:
            t.join(120)
        alone = httpx.post(url + "/v1/score", json={"text": text}, timeout=120)
    assert got.status_code == 200, got.text
    assert all(len(r["text"]) == 800 for r in results)
    assert any(r["ended"] > scored for r in results), "the streams ended before the score"
    assert abs(got.json()["nats_per_char"] - alone.json()["nats_per_char"]) <= 1e-9
    clash = overlaps(intervals)
    assert not clash, f"{len(clash)} overlaps, e.g. {clash[:5]}"
    # the score was read in slices between steps, not in one stall of every stream
    scoring = [t0 for t0, _, th, kind in intervals if kind == "_cell" and th != "charrnn-batch"]
    steps = [t0 for t0, _, _, kind in intervals if kind == "step"]
    assert len(scoring) >= 2 * len(text)
    assert sum(min(scoring) < s < max(scoring) for s in steps) >= 10


@pytest.mark.slow
def test_a_score_under_load_equals_the_score_alone(served) -> None:
    srv = served()
    text = model_text(srv.url, 4000)
    body = {"text": text, "per_char": True, "top_k": 3}
    alone = httpx.post(srv.url + "/v1/score", json=body, timeout=60).json()
    started = threading.Barrier(17)
    results, threads = generate_streams(srv.url, 16, 1500, started)
    started.wait(60)
    busy = httpx.get(srv.url + "/health").json()["streams"]
    loaded = httpx.post(srv.url + "/v1/score", json=body, timeout=120).json()
    scored = time.monotonic()
    for t in threads:
        t.join(120)
    assert busy >= 8, busy
    assert any(r["ended"] > scored for r in results), "the streams ended before the score"
    assert loaded["chars"] == alone["chars"] == len(text)
    assert abs(loaded["nats_per_char"] - alone["nats_per_char"]) <= 1e-9
    assert all(
        abs(a["nats"] - b["nats"]) <= 1e-9 and a["top"] == b["top"]
        for a, b in zip(alone["per_char"], loaded["per_char"], strict=True)
    )


# --- 2. a session that could not be saved -----------------------------------------------------
@pytest.mark.slow
def test_a_session_that_could_not_be_saved_is_reported(served, tmp_path: Path) -> None:
    srv = served()
    db = tmp_path / "sessions.sqlite"
    ok = {"prompt": PROMPT, "max_tokens": 20, "seed": 3, "session": "tale"}
    assert httpx.post(srv.url + "/v1/completions", json=ok, timeout=60).status_code == 200
    # another process holds the database: the server's write waits its 5 s, then fails
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        r = httpx.post(srv.url + "/v1/completions", json=ok, timeout=60)
        with httpx.stream(
            "POST", srv.url + "/v1/completions", json={**ok, "stream": True}, timeout=60
        ) as s:
            events = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as raised:
            client.completions.create(
                model="run", prompt="A", max_tokens=5, extra_body={"session": "tale"}
            )
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert r.status_code == 500, r.text
    err = r.json()["error"]
    assert err["type"] == "server_error" and err["param"] == "session"
    assert err["code"] == "session_not_saved" and "'tale'" in err["message"], err
    assert str(tmp_path) not in r.text
    assert raised.value.status_code == 500 and "'tale'" in str(raised.value)
    # streamed: every character and the finish reason, then the error, then [DONE]
    chunks = [json.loads(e) for e in events[:-1]]
    assert events[-1] == "[DONE]"
    assert chunks[-1]["error"]["code"] == "session_not_saved"
    text = "".join(c["choices"][0]["text"] for c in chunks[:-1] if c.get("choices"))
    assert len(text) == 20 and chunks[-2]["choices"][0]["finish_reason"] == "length"
    # the server keeps serving, and the failed requests left the session as it was
    assert httpx.post(srv.url + "/v1/completions", json=ok, timeout=60).status_code == 200
    info = httpx.get(srv.url + "/v1/sessions/tale").json()
    assert info["requests"] == 2, info
    assert sum("could not be saved" in line for line in srv.log) == 3
    assert any("database is locked" in line for line in srv.log)


# --- 3. an internal error's detail stays in the server's log ----------------------------------
@pytest.mark.slow
def test_internal_error_detail_goes_to_the_log_not_the_client(served, tmp_path: Path) -> None:
    srv = served()
    tale = {"prompt": PROMPT, "max_tokens": 10, "seed": 1, "session": "tale"}
    assert httpx.post(srv.url + "/v1/completions", json=tale, timeout=60).status_code == 200
    with sqlite3.connect(tmp_path / "sessions.sqlite") as db:  # a stored state cut short
        db.execute("UPDATE sessions SET state = x'00000000' WHERE id = 'tale'")
    r = httpx.post(srv.url + "/v1/completions", json=tale, timeout=60)
    assert r.status_code == 500, r.text
    assert r.json() == {
        "error": {"message": GENERIC, "type": "server_error", "param": None, "code": None}
    }
    assert wait_for(lambda: any("wrong size" in line for line in srv.log))
    assert any("Traceback" in line for line in srv.log)
    ok = {"prompt": PROMPT, "max_tokens": 10, "seed": 1}
    assert httpx.post(srv.url + "/v1/completions", json=ok, timeout=60).status_code == 200


@pytest.mark.slow
def test_an_error_holding_a_path_is_not_sent(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from charrnn.infer import numpy_engine
    from charrnn.serve import models

    def unreadable(*a, **kw):
        raise PermissionError(13, "Permission denied", SECRET)

    monkeypatch.setattr(models.Model, "card", unreadable)  # a route's own code
    monkeypatch.setattr(numpy_engine.Engine, "step", unreadable)  # the batching worker's
    body = {"prompt": PROMPT, "max_tokens": 10, "seed": 1}
    with server_log() as log, in_process(trained, tmp_path) as url:
        listed = httpx.get(url + "/v1/models", timeout=30)
        whole = httpx.post(url + "/v1/completions", json=body, timeout=30)
        streamed = httpx.post(url + "/v1/completions", json={**body, "stream": True}, timeout=30)
        health = httpx.get(url + "/health", timeout=30)
    for r in (listed, whole):
        assert r.status_code == 500, r.text
        assert r.json()["error"]["type"] == "server_error"
    assert listed.json()["error"]["message"] == GENERIC
    assert whole.json()["error"]["message"] == GENERIC
    assert json.loads(streamed.text.split("data: ")[1])["error"]["message"] == GENERIC
    for r in (listed, whole, streamed):
        assert "secret" not in r.text and "Permission" not in r.text, r.text
    assert health.status_code == 200
    logged = "\n".join(log)
    assert logged.count(SECRET) >= 2 and "Traceback" in logged and "GET /v1/models" in logged


# --- 4. --device -------------------------------------------------------------------------------
@pytest.mark.slow
def test_device_auto_serves_on_this_machine(served) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("auto picks the GPU here; this checks the CPU fallback")
    for extra in (["--device", "auto"], ["--device", "auto", "--deterministic"]):
        srv = served(*extra)
        body = {"prompt": PROMPT, "max_tokens": 30, "seed": 5, "session": "s" + str(len(extra))}
        r = httpx.post(srv.url + "/v1/completions", json=body, timeout=60)
        assert r.status_code == 200 and len(r.json()["choices"][0]["text"]) == 30, r.text
        score = httpx.post(srv.url + "/v1/score", json={"text": "Good morrow."}, timeout=60)
        assert score.status_code == 200 and score.json()["chars"] == 12, score.text
        assert srv.stop() == 0


@pytest.mark.slow
def test_device_cuda_without_a_gpu_is_one_line_and_exit_2(trained: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = run_cli("serve", str(trained), "--device", "cuda", "--port", "0", timeout=60)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cuda" in lines[0] and "serving on" not in r.stderr, r.stderr
