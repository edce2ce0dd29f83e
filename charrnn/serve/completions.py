"""The generating routes: OpenAI's `/v1/completions` (whole or streamed as server-sent events) and
torch-rnn-server's `/generate` (sentence-bounded suggestions for rnn-writer-style editors).

A handler checks the request, admits it (`service`), then turns the worker's updates into the
response. A client that goes away cancels its job at once: the worker frees its streams at the next
step and commits what was actually sent to the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from charrnn.infer.controls import Rules
from charrnn.infer.logits import Filters
from charrnn.infer.sampler import MAX_SEED, Options, new_seed
from charrnn.serve.json_body import json_response
from charrnn.serve.middleware import read_json
from charrnn.serve.protocol import (
    INTERNAL,
    ApiError,
    Completion,
    chunk,
    finish_reason,
    logprobs_shape,
    new_id,
    now,
    parse_completion,
    usage,
)
from charrnn.serve.scheduler import Job, Update
from charrnn.serve.service import Service
from charrnn.serve.voicing import query_tag, rows, voice_of

GENERATE_N = 10  # torch-rnn-server's most suggestions per request
GENERATE_CHARS = 140  # and its longest


def service(request: Request) -> Service:
    return request.app.state.service


async def completions(request: Request) -> Response:
    srv = service(request)
    comp = parse_completion(await read_json(request, srv.settings.max_body), srv.settings.limits)
    model, voice = srv.pick(comp.model)
    opts = srv.with_bias(model, comp)
    k = comp.best_of  # candidates per prompt: candidate k of prompt p draws with seed + p × k + k
    choices = len(comp.prompts) * k
    opts, voicing = voice_of(model, voice, opts, choices, srv.settings.max_streams)
    # Every prompt is checked before any is admitted; choice p × n + j draws with seed + p × n + j.
    ids = [srv.prompt_ids(model, p, opts.unknown) for p in comp.prompts]
    texts = [p if isinstance(p, str) else model.engine.vocab.decode(p) for p in comp.prompts]
    base = comp.seed if comp.seed is not None else new_seed()
    # best_of ranks candidates by their characters' log-probabilities: ask for them
    logprobs = comp.logprobs if comp.logprobs is not None or k == comp.n else 0
    plan = srv.open_session(comp.session, model, voicing) if comp.session else None
    # every prompt's streams at once, or none (a guided choice runs two)
    await srv.reserve(choices * rows(voicing), plan)
    runs: list[_Run] = []
    for p, (text, prompt_ids) in enumerate(zip(texts, ids, strict=True)):
        job, updates = srv.launch(
            model,
            text,
            prompt_ids,
            opts,
            k,
            base,
            logprobs=logprobs,
            echo_logprobs=comp.echo and comp.logprobs is not None,
            first=p * k,
            plan=plan,
            voicing=voicing,
        )
        runs.append(_Run(comp, job, updates, text, p * comp.n))
    request.scope["state"]["chars"] = 0
    if comp.stream:
        return event_stream(_events(request, comp, runs))
    return await _whole(request, comp, runs)


def event_stream(events: AsyncIterator[bytes]) -> StreamingResponse:
    """Server-sent events, unbuffered by proxies (nginx honours X-Accel-Buffering)."""
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class _Candidate:
    """One stream of a prompt as its updates arrive: its text, finish reason and log-probability
    entries, and how much of it the client has been sent."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.text = ""
        self.reason: str | None = None
        self.lp: list = []  # entries of its characters
        self.echoed = False  # the prompt went out with its first chunk
        self.offset = 0  # characters shown so far (logprobs' text_offset)
        self.sent = 0  # generated characters handed to the client

    def mean_logprob(self) -> float:
        """Per generated character (a mean, so a candidate cut short by a stop is not favoured);
        a candidate that wrote nothing ranks last."""
        values = [e[1] for e in self.lp[: len(self.text)] if e[1] is not None]
        return sum(values) / len(values) if values else -math.inf


class _Run:
    """One prompt of a completion as the updates of its job arrive: its `best_of` candidates,
    of which the `n` returned are numbered first … first + n - 1."""

    def __init__(
        self, comp: Completion, job: Job, updates: asyncio.Queue[Update], prompt: str, first: int
    ) -> None:
        self.comp, self.job, self.updates = comp, job, updates
        self.prompt, self.first, self.done = prompt, first, False
        self.candidates = [_Candidate(seed) for seed in job.seeds]
        self.prompt_lp: list | None = None

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.candidates]

    def apply(self, u: Update) -> list[dict]:
        """Take an update; return the stream chunk's choices for it."""
        if u.prompt_logprobs is not None:
            self.prompt_lp = u.prompt_logprobs
        out = []
        for i in sorted(set(u.text) | set(u.finished)):
            c = self.candidates[i]
            piece, lps = u.text.get(i, ""), u.logprobs.get(i, [])
            c.text += piece
            c.lp += lps
            if i in u.finished:
                c.reason = u.finished[i]
            out.append(self._chunk_choice(i, piece, lps, u.finished.get(i)))
        self.done = self.done or u.done
        return out

    def _chunk_choice(self, i: int, piece: str, lps: list, reason: str | None) -> dict:
        c = self.candidates[i]
        shown, entries = piece, lps
        if self.comp.echo and not c.echoed:
            c.echoed = True
            shown = self.prompt + piece
            entries = (self.prompt_lp or []) + lps
        c.sent += len(piece)
        lp = None
        if self.comp.logprobs is not None:
            lp = logprobs_shape(entries, c.offset)
        c.offset += len(shown)
        return {
            "text": shown,
            "index": self.first + i,
            "logprobs": lp,
            "finish_reason": None if reason is None else finish_reason(reason),
            "seed": c.seed,
        }

    def whole(self) -> list[dict]:
        """The returned choices: every candidate, or with best_of the n whose characters have
        the highest mean log-probability under the model (ties: the earlier candidate)."""
        choices = [self._whole_choice(i) for i in range(len(self.candidates))]
        if len(self.candidates) == self.comp.n:
            return choices
        ranked = sorted(
            range(len(self.candidates)), key=lambda i: (-self.candidates[i].mean_logprob(), i)
        )
        return [dict(choices[i], index=self.first + j) for j, i in enumerate(ranked[: self.comp.n])]

    def _whole_choice(self, i: int) -> dict:
        c = self.candidates[i]
        text, entries = c.text, c.lp
        if self.comp.echo:
            text, entries = self.prompt + text, (self.prompt_lp or []) + entries
        lp = logprobs_shape(entries, 0) if self.comp.logprobs is not None else None
        return {
            "text": text,
            "index": self.first + i,
            "logprobs": lp,
            "finish_reason": finish_reason(c.reason or "length"),
            "seed": c.seed,
        }

    def cancel(self) -> None:
        self.job.cancel({i: c.sent for i, c in enumerate(self.candidates)})


def _merged(runs: list[_Run]) -> tuple[asyncio.Queue, list[asyncio.Task]]:
    """One queue of (run, update) from every run's own queue, each run's updates in order."""
    merged: asyncio.Queue = asyncio.Queue()

    async def forward(r: _Run) -> None:
        while True:
            u = await r.updates.get()
            await merged.put((r, u))
            if u.done or u.error:
                return

    return merged, [asyncio.ensure_future(forward(r)) for r in runs]


def _texts(runs: list[_Run]) -> list[str]:
    return [t for r in runs for t in r.texts]


async def next_or_gone(queue: asyncio.Queue, gone: asyncio.Task):
    """The next item, or None when the client has gone away."""
    get = asyncio.ensure_future(queue.get())
    finished, _ = await asyncio.wait({get, gone}, return_when=asyncio.FIRST_COMPLETED)
    if get in finished:
        return get.result()
    get.cancel()
    return None


async def disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def failed(u: Update) -> ApiError:
    if u.done:  # every stream ended, then the session could not be kept
        return ApiError(500, u.error or "", "session", "server_error", code="session_not_saved")
    return ApiError(500, u.error or INTERNAL, kind="server_error")


async def _whole(request: Request, comp: Completion, runs: list[_Run]) -> Response:
    merged, forwarders = _merged(runs)
    gone = asyncio.ensure_future(disconnected(request))
    try:
        while not all(r.done for r in runs):
            item = await next_or_gone(merged, gone)
            if item is None:  # nothing was sent: only the prompts are committed
                for r in runs:
                    r.job.cancel({i: 0 for i in range(len(r.candidates))})
                return Response(status_code=499)
            run, u = item
            if u.error:  # also a session not saved: the client must know its state did not advance
                for r in runs:
                    r.cancel()
                raise failed(u)
            run.apply(u)
    finally:
        gone.cancel()
        for f in forwarders:
            f.cancel()
    texts = _texts(runs)
    request.scope["state"]["chars"] = sum(len(t) for t in texts)
    choices = [c for r in runs for c in r.whole()]
    model = runs[0].job.model
    name = comp.model if comp.model else model.name  # MODEL:VOICE as the client named it
    body = chunk(new_id(), now(), name, choices, usage([r.prompt for r in runs], texts))
    body["system_fingerprint"] = model.fingerprint
    if comp.session:
        body["session"] = comp.session
    return json_response(body)


async def _events(request: Request, comp: Completion, runs: list[_Run]) -> AsyncIterator[bytes]:
    """Server-sent events: a chunk per update of any prompt (each carrying every character its
    streams made since the last, with their choice indices), then a usage chunk when asked, then
    [DONE]."""
    cid, created, name = new_id(), now(), comp.model or runs[0].job.model.name
    merged, forwarders = _merged(runs)
    try:
        while not all(r.done for r in runs):
            run, u = await merged.get()
            if u.error and not u.done:
                yield sse({"error": failed(u).body()["error"]})
                break
            parts = run.apply(u)
            request.scope["state"]["chars"] = sum(c.sent for r in runs for c in r.candidates)
            if parts:
                body = chunk(cid, created, name, parts)
                if comp.include_usage:
                    body["usage"] = None  # as OpenAI's chunks say until the last one
                yield sse(body)
            if u.error:  # the text is sent; its session was not kept
                yield sse({"error": failed(u).body()["error"]})
        if all(r.done for r in runs) and comp.include_usage:
            usage_ = usage([r.prompt for r in runs], _texts(runs))
            yield sse(chunk(cid, created, name, [], usage_))
        yield b"data: [DONE]\n\n"
    finally:
        for f in forwarders:
            f.cancel()
        for r in runs:
            if not r.done:  # the client went away (or the stream broke): free the streams now
                r.cancel()


def sse(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


# --- torch-rnn-server's route ----------------------------------------------------------------
async def generate(request: Request) -> Response:
    """`GET /generate?start_text=...&n=5`: sentence-bounded suggestions of 3 to 20 words, as
    torch-rnn-server answers rnn-writer (`{"start_text", "completions", "time"}`). Characters the
    model has never seen are skipped (an editor sends whatever the writer typed). A voiced model
    takes `tag=NAME` (or `tag=NAME=WEIGHT` repeated, a mix) and `tag_strength`."""
    srv = service(request)
    q = request.query_params
    start = q.get("start_text", "")
    n = _query_int(q.get("n"), "n", 1, 1, min(GENERATE_N, srv.settings.limits.max_n))
    seed = _query_int(q.get("seed"), "seed", None, 0, MAX_SEED - 1)
    temperature = _query_float(q.get("temperature"), "temperature", 0.7)
    if len(start) > srv.settings.limits.max_prompt:
        raise ApiError(
            400, f"start_text: over {srv.settings.limits.max_prompt} characters", "start_text"
        )
    length = min(GENERATE_CHARS, srv.settings.limits.max_chars)
    strength = _query_float(q.get("tag_strength"), "tag_strength", 1.0, 1e6)
    opts = Options(
        length,
        Filters(temperature),
        Rules(until="sentence", min_words=3, max_words=20),
        None,
        "skip",
        query_tag(q.getlist("tag")),
        strength,
    )
    model, voice = srv.pick(q.get("model"))
    opts, voicing = voice_of(model, voice, opts, n, srv.settings.max_streams)
    t0 = time.perf_counter()
    job, updates = await srv.submit(model, start, opts, n, seed, voicing=voicing)
    texts = [""] * n
    gone = asyncio.ensure_future(disconnected(request))
    try:
        while True:
            u = await next_or_gone(updates, gone)
            if u is None:
                job.cancel({})
                return Response(status_code=499)
            if u.error:
                raise failed(u)
            for i, piece in u.text.items():
                texts[i] += piece
            if u.done:
                break
    finally:
        gone.cancel()
    request.scope["state"]["chars"] = sum(len(t) for t in texts)
    return JSONResponse(
        {"start_text": start, "completions": texts, "time": f"{time.perf_counter() - t0:.2f}"}
    )


def _query_int(raw: str | None, name: str, default, lo: int, hi: int):
    if raw is None or raw == "":
        return default
    with contextlib.suppress(ValueError):
        v = int(raw)
        if lo <= v <= hi:
            return v
    raise ApiError(400, f"{name}: must be an integer from {lo} to {hi}, got {raw!r}", name)


def _query_float(raw: str | None, name: str, default: float, most: float = 100) -> float:
    if raw is None or raw == "":
        return default
    with contextlib.suppress(ValueError):
        v = float(raw)
        if 0 <= v <= most:
            return v
    raise ApiError(400, f"{name}: must be a number from 0 to {most:g}, got {raw!r}", name)
