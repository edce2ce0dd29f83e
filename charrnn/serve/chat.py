"""`POST /v1/chat/completions`: OpenAI's chat contract over a character model, through the model's
declared template (`chat_template`): the messages become one prompt, the model writes the
assistant's reply, the reply ends at the next role's prefix or a stop string.

With a session (the body's `session`, or the `X-Session-Id` header), a conversation that grows turn
by turn is read once: the server keeps the state after the conversation it has read and a digest of
that text, and a request whose rendered messages extend it exactly reads only the new part. Anything
else (history edited, a reply regenerated) is read again from the start, and the response says why.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response

from charrnn.infer.sampler import new_seed
from charrnn.serve.chat_protocol import (
    Chat,
    chat_body,
    chat_chunk,
    chat_logprobs,
    new_chat_id,
    parse_chat,
)
from charrnn.serve.chat_template import render
from charrnn.serve.completions import (
    disconnected,
    event_stream,
    failed,
    next_or_gone,
    service,
    sse,
)
from charrnn.serve.json_body import json_response
from charrnn.serve.middleware import read_json
from charrnn.serve.models import Model
from charrnn.serve.protocol import ApiError, finish_reason, now
from charrnn.serve.scheduler import Job, Update
from charrnn.serve.service import ChatResume
from charrnn.serve.voicing import voice_of

SESSION_HEADER = "x-session-id"


class _Turn:
    """A chat request admitted: its job, the facts its response reports, and each choice's text
    as the job's updates arrive."""

    def __init__(self, chat: Chat, model: Model, job: Job, prompt_chars: int, facts: dict) -> None:
        self.chat, self.model, self.job, self.facts = chat, model, job, facts
        self.prompt_chars = prompt_chars
        n = chat.comp.n
        self.text, self.lp = [""] * n, [[] for _ in range(n)]
        self.reason: list[str | None] = [None] * n
        self.sent, self.done = [0] * n, False
        self.id, self.created = new_chat_id(), now()

    def apply(self, u: Update) -> list[tuple[int, str, list, str | None]]:
        """Take an update: (choice, new text, its logprob entries, finish reason) for each."""
        out = []
        for i in sorted(set(u.text) | set(u.finished)):
            piece, lps = u.text.get(i, ""), u.logprobs.get(i, [])
            self.text[i] += piece
            self.lp[i] += lps
            self.sent[i] += len(piece)
            if i in u.finished:
                self.reason[i] = finish_reason(u.finished[i])
            out.append((i, piece, lps, self.reason[i] if i in u.finished else None))
        self.done = self.done or u.done
        return out

    def usage(self) -> dict:
        made = sum(len(t) for t in self.text)
        return {
            "prompt_tokens": self.prompt_chars,
            "completion_tokens": made,
            "total_tokens": self.prompt_chars + made,
            # OpenAI's name for prompt tokens a cache spared: here, read in earlier turns
            "prompt_tokens_details": {"cached_tokens": self.facts["reused_chars"]},
        }

    def logprobs(self, entries: list) -> dict | None:
        return chat_logprobs(entries) if self.chat.comp.logprobs is not None else None


async def chat_completions(request: Request) -> Response:
    srv = service(request)
    if not srv.settings.chat:
        raise ApiError(
            404,
            "chat is off on this server: start it with --chat (a plain User:/Assistant: "
            "template) or --chat-template SPEC, or use POST /v1/completions",
            code="unsupported_endpoint",
        )
    chat = parse_chat(await read_json(request, srv.settings.max_body), srv.settings.limits)
    comp = chat.comp
    session = _session(request, comp.session)
    if session is not None and comp.n > 1:
        raise ApiError(400, "n: a session continues one conversation: n must be 1", "n")
    model, voice = srv.pick(comp.model)
    template = srv.settings.chat.get(model.name)
    if template is None:
        raise ApiError(
            404,
            f"chat is off for model {model.name!r} (on for {', '.join(srv.settings.chat)}): "
            f"start the server with --chat-template {model.name}=SPEC or --chat, or use "
            "POST /v1/completions",
            "model",
            code="unsupported_endpoint",
        )
    rendered = render(template, chat.messages)
    limit = srv.settings.limits.max_prompt
    if len(rendered.prompt) > limit:
        raise ApiError(
            400,
            f"messages: the conversation renders to {len(rendered.prompt)} characters; this "
            f"server reads at most {limit} (--max-prompt)",
            "messages",
        )
    opts = srv.with_bias(model, comp)
    opts, voicing = voice_of(model, voice, opts, comp.n, srv.settings.max_streams)
    opts = replace(opts, stop=rendered.stops + opts.stops)
    ids = srv.encode(model, rendered.prompt, opts.unknown, "messages")  # refused before a hold
    vocab = model.engine.vocab
    facts: dict = {
        "template": template.label,
        "continued": rendered.continued,
        "skipped_chars": dict(Counter(c for c in rendered.prompt if c not in vocab)),
        "session": session,
        "reused_chars": 0,
        "primed_chars": len(rendered.prompt),
        "reread": None,
    }
    resume: ChatResume | None = None
    prompt = rendered.prompt
    if session is not None:
        resume = srv.open_chat_session(session, model, rendered.prompt, voicing)
        prompt = resume.prompt
        ids = vocab.encode(prompt, "skip")  # the whole text was checked above
        facts.update(reused_chars=resume.reused, primed_chars=len(prompt), reread=resume.reread)
    job, updates = await srv.submit(
        model,
        prompt,
        opts,
        comp.n,
        comp.seed if comp.seed is not None else new_seed(),
        logprobs=comp.logprobs,
        ids=ids,
        plan=resume.plan if resume else None,
        voicing=voicing,
    )
    turn = _Turn(chat, model, job, len(rendered.prompt), facts)
    request.scope["state"]["chars"] = 0
    if comp.stream:
        return event_stream(_events(request, turn, updates))
    return await _whole(request, turn, updates)


def _session(request: Request, body: str | None) -> str | None:
    header = request.headers.get(SESSION_HEADER)
    if header is not None and body is not None and header != body:
        raise ApiError(
            400, f"session: the body says {body!r}, the X-Session-Id header {header!r}", "session"
        )
    return body if body is not None else header


async def _whole(request: Request, turn: _Turn, updates: asyncio.Queue[Update]) -> Response:
    gone = asyncio.ensure_future(disconnected(request))
    try:
        while not turn.done:
            u = await next_or_gone(updates, gone)
            if u is None:  # nothing was sent: only the prompt is committed
                turn.job.cancel({i: 0 for i in range(turn.chat.comp.n)})
                return Response(status_code=499)
            if u.error:
                turn.job.cancel(dict(enumerate(turn.sent)))
                raise failed(u)
            turn.apply(u)
    finally:
        gone.cancel()
    request.scope["state"]["chars"] = sum(turn.sent)
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": turn.text[i], "refusal": None},
            "logprobs": turn.logprobs(turn.lp[i][: len(turn.text[i])]),
            "finish_reason": turn.reason[i] or "length",
            "seed": turn.job.seeds[i],
        }
        for i in range(turn.chat.comp.n)
    ]
    body = chat_body(turn.id, turn.created, turn.model.name, turn.model.fingerprint, choices)
    body["usage"] = turn.usage()
    body["charrnn"] = turn.facts
    return json_response(body)


async def _events(
    request: Request, turn: _Turn, updates: asyncio.Queue[Update]
) -> AsyncIterator[bytes]:
    """Server-sent chunks: each choice's first carries the assistant role, then its text as it
    comes, then its finish reason; a usage chunk when asked (with charrnn's facts); [DONE]."""
    comp, m = turn.chat.comp, turn.model

    def event(choices: list[dict], usage=None, facts: dict | None = None) -> bytes:
        body = chat_chunk(turn.id, turn.created, m.name, m.fingerprint, choices, usage)
        if comp.include_usage and usage is None:
            body["usage"] = None  # as OpenAI's chunks say while the usage is not known yet
        if facts is not None:
            body["charrnn"] = facts
        return sse(body)

    try:
        first = [
            {"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
             "finish_reason": None, "seed": turn.job.seeds[i]}
            for i in range(comp.n)
        ]  # fmt: skip
        yield event(first, facts=turn.facts)  # what was read and why, known at the start
        while not turn.done:
            u = await updates.get()
            if u.error and not u.done:
                yield sse({"error": failed(u).body()["error"]})
                break
            parts, ends = [], []  # a choice's last text and its end go in separate chunks
            for i, piece, lps, reason in turn.apply(u):
                if piece:
                    delta = {"content": piece}
                    parts.append(_delta(i, delta, turn.logprobs(lps[: len(piece)]), None))
                if reason is not None:
                    ends.append(_delta(i, {}, None, reason))
            request.scope["state"]["chars"] = sum(turn.sent)
            for choices in (parts, ends):
                if choices:
                    yield event(choices)
            if u.error:  # the text is sent; its session was not kept
                yield sse({"error": failed(u).body()["error"]})
        if turn.done and comp.include_usage:
            yield event([], turn.usage())
        yield b"data: [DONE]\n\n"
    finally:
        if not turn.done:  # the client went away (or the stream broke): free the streams now
            turn.job.cancel(dict(enumerate(turn.sent)))


def _delta(i: int, delta: dict, logprobs: dict | None, reason: str | None) -> dict:
    return {"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": reason}
