"""What a running server holds between requests: its settings, models, batching worker, sessions,
and the bookkeeping that admits requests (stream capacity, sessions in use).

Requests are admitted here and turned into scheduler jobs whose updates arrive on an asyncio queue;
the routes (`app`, `completions`) only translate between HTTP and these calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from charrnn.errors import InputError
from charrnn.infer.guidance import Voicing
from charrnn.infer.sampler import Options, new_seed, seed_of
from charrnn.serve import memory
from charrnn.serve.capacity import Capacity
from charrnn.serve.chat_template import Template
from charrnn.serve.models import Model
from charrnn.serve.protocol import ApiError, Completion, Limits
from charrnn.serve.scheduler import Job, Scheduler, SessionPlan, Update
from charrnn.serve.sessions import Saved, SessionStore, valid_id
from charrnn.serve.tasks import Task
from charrnn.serve.voicing import rows, session_key, session_label, split_name
from charrnn.vocab import Unknown

T = TypeVar("T")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class ChatResume:
    """A chat session held for a request: what it must read, and what it need not."""

    plan: SessionPlan
    prompt: str  # the rendered conversation's part to read now
    reused: int  # characters already read in earlier turns (the session's state holds them)
    reread: str | None  # why the whole conversation is read again (None: it extends)


@dataclass(frozen=True)
class Settings:
    """The server's options (the `charrnn serve` flags)."""

    limits: Limits = field(default_factory=Limits)
    max_streams: int = 64
    queue_timeout: float = 2.0  # seconds a request waits for a free stream before 429
    timeout: float = 120.0  # seconds a request may generate
    max_body: int = 1 << 20
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    sessions: Path | None = None
    max_sessions: int = 10_000
    deterministic: bool = False
    chat: dict[str, Template] = field(default_factory=dict)  # model name → its chat template


class Service:
    def __init__(self, models: dict[str, Model], settings: Settings) -> None:
        self.models, self.settings = models, settings
        self.scheduler: Scheduler | None = None
        self.store = (
            SessionStore(settings.sessions, settings.max_sessions) if settings.sessions else None
        )
        self.capacity: Capacity | None = None
        self.busy_sessions: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    def start(self) -> None:
        """On the event loop, at start-up (the lifespan)."""
        memory.limit_arenas()  # before the worker and the task threads exist
        self.scheduler = Scheduler()
        self.capacity = Capacity(self.settings.max_streams)

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()
        if self.store is not None:
            self.store.close()

    # --- admission ----------------------------------------------------------------------------
    def model(self, name: object) -> Model:
        """The model a request names (any JSON value may arrive: only a string names one)."""
        if name is not None and not isinstance(name, str):
            kind = {list: "an array", dict: "an object"}.get(type(name), repr(name))
            raise ApiError(400, f"model: must be a string, got {kind}", "model")
        if name is None or name == "":
            if len(self.models) == 1:
                return next(iter(self.models.values()))
            raise ApiError(
                400, f"model: several are loaded ({', '.join(self.models)}); name one", "model"
            )
        if name not in self.models:
            raise ApiError(
                404,
                f"model {name!r} is not loaded here (loaded: {', '.join(self.models)})",
                "model",
                code="model_not_found",
            )
        return self.models[name]

    def pick(self, name: object) -> tuple[Model, str | None]:
        """The model a request names, and the voice a `MODEL:VOICE` name picks (None: none)."""
        if not isinstance(name, str) or ":" not in name:
            return self.model(name), None
        head, voice = split_name(name)
        model = self.model(head)
        names = model.voices.names if model.voices else ()
        if voice not in names:
            has = f"voices {', '.join(names)}" if names else "no voices"
            raise ApiError(
                404,
                f"model {name!r} is not loaded here (model {head!r} has {has})",
                "model",
                code="model_not_found",
            )
        return model, voice

    def encode(self, model: Model, text: str, unknown: Unknown, param: str = "prompt") -> list[int]:
        try:
            return model.engine.vocab.encode(text, unknown)
        except InputError as e:
            msg = str(e).replace("--unknown skip", '"unknown": "skip"')
            raise ApiError(400, f"{param}: {msg}", param, code="unknown_characters") from None

    def with_bias(self, model: Model, comp: Completion) -> Options:
        """The request's options with its logit bias as ids of this model's vocabulary: ids out
        of range and characters it lacks are a 400 naming them."""
        if not comp.logit_bias and not comp.logit_bias_chars:
            return comp.opts
        vocab = model.engine.vocab
        bad = sorted(i for i in comp.logit_bias if i >= vocab.size)
        if bad:
            raise ApiError(
                400,
                f"logit_bias: id {bad[0]} is not in the vocabulary (ids 0 to {vocab.size - 1}; "
                "GET /v1/models lists them)",
                "logit_bias",
            )
        missing = [c for c in comp.logit_bias_chars if c not in vocab]
        if missing:
            shown = " ".join(repr(c) for c in missing[:10])
            raise ApiError(
                400, f"logit_bias_chars: not in the model's vocabulary: {shown}", "logit_bias_chars"
            )
        pairs = {**comp.logit_bias, **{vocab.index(c): b for c, b in comp.logit_bias_chars.items()}}
        filters = replace(comp.opts.filters, logit_bias=tuple(sorted(pairs.items())))
        return replace(comp.opts, filters=filters)

    def open_session(
        self, session: str, model: Model, voicing: Voicing | None = None
    ) -> SessionPlan:
        """Hold a session for one request (409 while another holds it, when another
        checkpoint wrote it: a state means nothing to another model, or when it belongs to
        another voice)."""
        plan = self._hold(session)
        plan.voice = session_key(voicing, model.voices.names if model.voices else ())
        try:
            saved = self.store.get(session) if self.store else None
        except BaseException:
            self.release(session)
            raise
        if saved is not None and saved.fingerprint != model.fingerprint:
            self.release(session)
            raise ApiError(
                409,
                f"session {session!r} was written by another checkpoint (model {saved.model!r}); "
                f"continue it with that model, or DELETE /v1/sessions/{session}",
                "session",
                code="session_model_mismatch",
            )
        try:
            self._same_voice(plan, saved)
        except ApiError:
            self.release(session)
            raise
        if saved is not None:
            plan.base, plan.tail = model.engine.from_numpy(saved.state), saved.tail
        return plan

    def open_chat_session(
        self, session: str, model: Model, rendered: str, voicing: Voicing | None = None
    ) -> ChatResume:
        """Hold a chat session for one request and decide what must be read: only the part of
        the rendered conversation after the one the session committed, when it extends that one
        exactly (its digest matches); otherwise all of it, from the start, with the reason. A
        session of another voice is a 409, as for a completion."""
        plan = self._hold(session)
        plan.voice = session_key(voicing, model.voices.names if model.voices else ())
        try:
            return self._resume(plan, model, rendered)
        except BaseException:
            self.release(session)
            raise

    def _resume(self, plan: SessionPlan, model: Model, rendered: str) -> ChatResume:
        saved = self.store.get(plan.id) if self.store else None
        if saved is not None and saved.fingerprint == model.fingerprint:
            self._same_voice(plan, saved)
        reason = None
        if saved is None:
            reason = "a new session"
        elif saved.fingerprint != model.fingerprint:
            reason = f"it was written by another checkpoint (model {saved.model!r})"
        elif saved.digest is None:
            reason = "its text was continued by /v1/completions, not a conversation"
        elif saved.chars > len(rendered) or _digest(rendered[: saved.chars]) != saved.digest:
            reason = (
                "the messages do not extend the conversation it holds (history edited, a reply "
                "regenerated or changed, another template)"
            )
        if reason is not None or saved is None:
            plan.before = ""
            return ChatResume(plan, rendered, 0, reason)
        plan.base = model.engine.from_numpy(saved.state)
        # the whole conversation is here: the guards that look back (no_repeat) see all of it,
        # as they do when it is read in one go
        plan.before = plan.tail = rendered[: saved.chars]
        return ChatResume(plan, rendered[saved.chars :], saved.chars, None)

    @staticmethod
    def _same_voice(plan: SessionPlan, saved: Saved | None) -> None:
        """A session belongs to the voice (and strength) it was started with: its state was read
        with that voice, and a guided one holds two rows."""
        if saved is None or saved.voice == plan.voice:
            return
        raise ApiError(
            409,
            f"session {plan.id!r} belongs to {session_label(saved.voice)}; this request asks for "
            f"{session_label(plan.voice)}: continue it with its voice, or start another session",
            "tag",
            code="session_voice_mismatch",
        )

    def _hold(self, session: str) -> SessionPlan:
        """Check a session id and hold it for one request (409 while another holds it)."""
        if self.store is None:
            raise ApiError(400, "session: this server keeps no sessions", "session")
        if not valid_id(session):
            raise ApiError(
                400, "session: 1-128 characters of letters, digits and _ . : @ -", "session"
            )
        if session in self.busy_sessions:
            raise ApiError(
                409,
                f"session {session!r} is busy with another request; wait for it to finish",
                "session",
                code="session_busy",
            )
        self.busy_sessions.add(session)
        return SessionPlan(session, self.store)

    def release(self, session: str) -> None:
        """Let go of a session held but never handed to the worker (a request refused later)."""
        self.busy_sessions.discard(session)

    def prompt_ids(self, model: Model, prompt: str | list[int], unknown: Unknown) -> list[int]:
        """A prompt's vocabulary ids: text encoded (unknown characters refused or skipped), or
        ids as given, each checked against the vocabulary (a 400 naming the first outside it)."""
        if isinstance(prompt, str):
            return self.encode(model, prompt, unknown)
        size = model.engine.vocab.size
        bad = [t for t in prompt if not 0 <= t < size]
        if bad:
            raise ApiError(
                400,
                f"prompt: token id {bad[0]} is not in the vocabulary (ids 0 to {size - 1}; "
                "GET /v1/models lists them)",
                "prompt",
            )
        return list(prompt)

    async def reserve(self, streams: int, plan: SessionPlan | None = None) -> None:
        """Room for all of a request's streams at once (429 after --queue-timeout; a request
        never needs more than --max-streams: --max-n is capped by it). The session held for it
        is let go when it is refused."""
        assert self.capacity is not None
        try:
            await self.capacity.acquire(streams, self.settings.queue_timeout)
        except BaseException:
            if plan is not None:
                self.release(plan.id)
            raise

    async def submit(
        self,
        model: Model,
        prompt: str,
        opts: Options,
        n: int,
        seed: int | None,
        *,
        logprobs: int | None = None,
        session: str | None = None,
        ids: list[int] | None = None,
        plan: SessionPlan | None = None,
        voicing: Voicing | None = None,
    ) -> tuple[Job, asyncio.Queue[Update]]:
        """Admit a one-prompt request (room for its n choices' streams, its session) and hand it
        to the worker. ids: the prompt's ids when already known; plan: a session already held (a
        chat's), else `session` is opened here."""
        if ids is None:
            ids = self.encode(model, prompt, opts.unknown)
        if plan is None and session:
            plan = self.open_session(session, model, voicing)
        await self.reserve(n * rows(voicing), plan)
        return self.launch(
            model, prompt, ids, opts, n, seed, logprobs=logprobs, plan=plan, voicing=voicing
        )

    def launch(
        self,
        model: Model,
        prompt: str,
        ids: list[int],
        opts: Options,
        n: int,
        seed: int | None,
        *,
        logprobs: int | None = None,
        echo_logprobs: bool = False,
        first: int = 0,
        plan: SessionPlan | None = None,
        voicing: Voicing | None = None,
    ) -> tuple[Job, asyncio.Queue[Update]]:
        """Hand a prompt's n choices, their streams already reserved (two a choice when guided),
        to the worker; they are released when the worker lets go of the job. Choice i draws with
        seed + first + i."""
        assert self.scheduler is not None
        loop = asyncio.get_running_loop()
        updates: asyncio.Queue[Update] = asyncio.Queue()
        base = new_seed() if seed is None else seed
        job = Job(
            model,
            prompt,
            ids,
            opts,
            [seed_of(base, first + i) for i in range(n)],
            notify=lambda u: loop.call_soon_threadsafe(updates.put_nowait, u),
            logprobs=logprobs,
            echo_logprobs=echo_logprobs,
            deadline=time.monotonic() + self.settings.timeout,
            session=plan,
            voicing=voicing,
        )
        job.on_exit = self._on_exit(loop, n * rows(voicing), plan.id if plan else None)
        self.scheduler.submit(job)
        return job, updates

    async def run_task(self, model: Model, work: Callable[[Any], T]) -> T:
        """`work(engine)` on the batching worker's turn (`tasks`): its result, or its exception.
        It takes one stream of capacity while it waits and runs, as a generation does, so the
        tasks queued (each with a thread) are bounded by --max-streams."""
        assert self.scheduler is not None and self.capacity is not None
        await self.reserve(1)
        try:
            return await self._task(model, work)
        finally:
            await self.capacity.release(1)

    async def _task(self, model: Model, work: Callable[[Any], T]) -> T:
        assert self.scheduler is not None
        loop = asyncio.get_running_loop()
        result: asyncio.Future[T] = loop.create_future()

        def settle(value: Any, error: BaseException | None) -> None:
            if result.done():  # the request was cancelled
                return
            if error is None:
                result.set_result(value)
            else:
                result.set_exception(error)

        task = Task(model.engine, work, lambda v, e: loop.call_soon_threadsafe(settle, v, e))
        self.scheduler.submit(task)
        try:
            return await result
        finally:
            task.cancel()  # a client gone away: the worker drops the rest (nothing once done)

    def _on_exit(self, loop, n: int, session: str | None) -> Callable[[], None]:
        def done() -> None:
            if session is not None:
                self.busy_sessions.discard(session)
            assert self.capacity is not None
            task = loop.create_task(self.capacity.release(n))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return lambda: loop.call_soon_threadsafe(done)
