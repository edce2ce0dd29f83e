"""Continuous batching: one worker thread owns the engines and advances every active request's
streams together, one character per step, while the event loop only moves bytes.

A request becomes a `Job`: its prompt is read (primed) slice by slice between steps, so a long prompt
never stalls the other streams; then its streams join their model's batch, and between two steps
streams that ended leave and primed ones join. Each stream draws with its own generator (seeded as
`sample` seeds it) through `charrnn.infer.stream`, the code `sample` runs, so a seeded request writes what
`charrnn sample` writes with the same options when the engine is deterministic (one-row products:
no row's arithmetic depends on its neighbours). In the fast mode a batch's products are one
matrix-matrix product, and a stream's rounding depends on the batch it shares.

Results go back as `Update`s through the job's `notify` (called on this thread; the app makes it
thread-safe): the first characters at once, then at most every 20 ms per job (100 ms with many
jobs), so a streamed response carries several characters per event. It knows nothing of HTTP, JSON or OpenAI's shapes.

Other engine work (scoring a text) is a `Task`, run a slice at a time between two steps (`tasks`):
nothing else computes with an engine, or changes BLAS's thread count, beside the worker.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from charrnn.infer.controls import Guard
from charrnn.infer.engine import EngineState, Forward
from charrnn.infer.stream import Stream, draw
from charrnn.serve.echo import read_with_logprobs
from charrnn.serve.jobs import Job, SessionPlan, Update
from charrnn.serve.logprobs import LogprobEntry, entry, prompt_logprobs
from charrnn.serve.tasks import Task

__all__ = ["Job", "Scheduler", "SessionPlan", "Update"]  # the job types live in `jobs`
FLUSH = 0.02  # seconds between a job's updates after its first characters, with few jobs
FLUSH_MOST = 0.1  # and with many: each update costs the event loop and the client a JSON event
log = logging.getLogger("charrnn.serve")


class _Live:
    """A stream in a batch: the job it serves, its choice index, and its next logits."""

    __slots__ = ("fed", "index", "job", "logits", "lp", "start", "stream")

    def __init__(self, job: Job, index: int, stream: Stream, logits, start: EngineState) -> None:
        self.job, self.index, self.stream, self.logits = job, index, stream, logits
        self.fed: list[int] = []  # generated characters stepped into the state (sessions)
        self.lp: list[LogprobEntry] = []  # entries of accepted characters not yet shown
        self.start = start  # the state after the prompt (sessions)


@dataclass
class _Batch:
    lives: list[_Live] = field(default_factory=list)
    state: EngineState | None = None
    joiners: list[tuple[_Live, EngineState]] = field(default_factory=list)


@dataclass
class _Priming:
    job: Job
    steps: Generator[None, None, Forward] | None
    start: EngineState | None
    result: Forward | None = None


class Scheduler:
    """The batching worker. `submit(job or task)` from any thread; `close()` finishes and joins."""

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[Job | Task | None] = queue.SimpleQueue()
        self._batches: dict[str, _Batch] = defaultdict(_Batch)
        self._priming: list[_Priming] = []
        self._tasks: deque[Task] = deque()  # run one at a time, a slice between two steps
        self._jobs: set[int] = set()
        self._stopping = False
        self.streams = 0  # streams generating now (read by /health)
        # the longest wait between two steps while a stream was live, in seconds (read by /health):
        # what one request's priming, task slice or commit cost every stream
        self.longest_gap = 0.0
        self._stepped: float | None = None
        self._thread = threading.Thread(target=self._run, name="charrnn-batch", daemon=True)
        self._thread.start()

    def submit(self, job: Job | Task) -> None:
        self._inbox.put(job)

    def close(self, timeout: float = 10.0) -> None:
        self._stopping = True
        self._inbox.put(None)
        self._thread.join(timeout)

    # --- the loop -----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            busy = (
                self._tasks
                or self._priming
                or any(b.lives or b.joiners for b in self._batches.values())
            )
            if not self._take(block=not busy):
                break
            self._prime()
            self._task()
            for batch in list(self._batches.values()):
                if batch.lives or batch.joiners:
                    try:
                        self._advance(batch)
                    except Exception:  # a bug must not take the server down
                        log.exception("batch step failed")
                        self._fail_batch(batch, "internal error; see the server log")
            now = time.monotonic()
            if self._stepped is not None:
                self.longest_gap = max(self.longest_gap, now - self._stepped)
            self._stepped = now if self.streams else None
            self._post_all()

    def _take(self, block: bool) -> bool:
        """Move submitted jobs into priming; False when closing with nothing left to do."""
        while True:
            try:
                job = self._inbox.get(block=block, timeout=0.5 if block else None)
            except queue.Empty:
                if self._stopping and block:
                    return False
                if block:
                    continue
                return True
            block = False
            if job is None:
                continue
            if isinstance(job, Task):
                self._tasks.append(job)
                continue
            self._jobs.add(id(job))
            self._start(job)

    def _task(self) -> None:
        """One slice of the oldest task, while no step runs."""
        if self._tasks and self._tasks[0].advance():
            self._tasks.popleft()

    def _start(self, job: Job) -> None:
        engine = job.model.engine
        base = job.session.base if job.session else None
        ids = job.prompt_ids
        if not ids and base is not None:
            fwd = Forward(engine.head_logits(base), base.copy())
            self._priming.append(_Priming(job, None, base, fwd))
            return
        if not ids and "\n" in engine.vocab and base is None:
            ids = [engine.vocab.index("\n")]  # as `sample` starts without a prime
        if not ids:  # no prime and no newline: the first draw uses the corpus's frequencies
            self._priming.append(_Priming(job, None, None, Forward(None, engine.initial_state(1))))  # type: ignore[arg-type]
            return
        echo = job.echo_logprobs
        steps = (
            self._echo(job, ids, base) if echo else engine.forward_steps(ids, base, last_only=True)
        )
        self._priming.append(_Priming(job, steps, base))

    def _echo(self, job: Job, ids: list[int], base: EngineState | None):
        """A prime that also makes the prompt's logprob entries, a chunk at a time (`echo`)."""
        engine = job.model.engine
        fwd, entries = yield from read_with_logprobs(
            engine, job.prompt, ids, base, job.logprobs or 0
        )
        job.pending.prompt_logprobs = entries
        return fwd

    def _prime(self) -> None:
        """Advance every priming job by one slice; jobs whose prompt is read join their batch."""
        still = []
        for p in self._priming:
            if p.job.cancelled and p.job.session is None:  # a session still commits its prompt
                self._exit(p.job)
                continue
            if p.result is None:
                try:
                    next(p.steps)  # type: ignore[arg-type]
                    still.append(p)
                    continue
                except StopIteration as done:
                    p.result = done.value
                except Exception:
                    log.exception("priming failed")
                    self._post(p.job, Update(error="internal error; see the server log"))
                    self._exit(p.job)
                    continue
            self._join(p)
        self._priming = still

    def _join(self, p: _Priming) -> None:
        job, fwd = p.job, p.result
        assert fwd is not None
        vocab = job.model.engine.vocab
        if job.echo_logprobs and job.pending.prompt_logprobs is None:  # nothing was read
            job.pending.prompt_logprobs = prompt_logprobs(vocab, job.prompt, None, 0)
        start = fwd.state
        last = None if fwd.logits is None else fwd.logits[-1]
        prime = (job.session.tail if job.session else "") + job.prompt
        if job.cancelled:
            self._commit(job, start, "", [], start)
            self._exit(job)
            return
        if job.opts.length == 0:
            for i in range(len(job.seeds)):
                job.pending.finished[i] = "length"
            self._commit(job, start, "", [], start)
            self._finish(job)
            return
        batch = self._batches[job.model.name]
        for i, seed in enumerate(job.seeds):
            stream = Stream(seed, Guard(job.opts.rules, vocab, prime), job.opts.stops)
            batch.joiners.append((_Live(job, i, stream, last, start), start.copy()))
        job.open_streams = len(job.seeds)

    def _advance(self, batch: _Batch) -> None:
        """One step for a model's batch: draw for every stream, hand out the text, let ended
        streams go, step the survivors, then let the primed streams join."""
        lives = batch.lives
        if lives:
            model = lives[0].job.model
            picks = self._draws(lives)
            keep: list[int] = []
            for r, lv in enumerate(lives):
                if lv.job.cancelled:
                    self._leave(lv, batch.state, r, cancelled=True)
                elif self._take_pick(lv, picks[r]):
                    keep.append(r)
                else:
                    self._leave(lv, batch.state, r)
            assert batch.state is not None
            state = batch.state if len(keep) == len(lives) else batch.state.select(keep)
            survivors = [lives[r] for r in keep]
            if survivors:
                ids = np.array([picks[r] for r in keep])
                logits = model.engine.step(ids, state)
                for r, lv in enumerate(survivors):
                    lv.logits = logits[r]
                    if lv.job.session is not None:
                        lv.fed.append(int(ids[r]))
            batch.lives, batch.state = survivors, state if survivors else None
        if batch.joiners:
            states = ([batch.state] if batch.state is not None else []) + [
                s for _, s in batch.joiners
            ]
            batch.lives = batch.lives + [lv for lv, _ in batch.joiners]
            batch.state = type(states[0]).concat(states) if len(states) > 1 else states[0]
            batch.joiners = []
        self.streams = sum(len(b.lives) for b in self._batches.values())

    def _draws(self, lives: list[_Live]) -> list[int]:
        """Each stream's next character; streams with the same filters draw together."""
        vocab = lives[0].job.model.engine.vocab
        groups: dict[tuple, list[int]] = defaultdict(list)
        for r, lv in enumerate(lives):
            groups[(lv.job.opts.filters, lv.logits is None)].append(r)
        picks = [-1] * len(lives)
        for (filters, no_logits), rows in groups.items():
            logits = None if no_logits else np.stack([lives[r].logits for r in rows])
            got = draw(vocab, filters, [lives[r].stream for r in rows], logits)
            for r, ch in zip(rows, got, strict=True):
                picks[r] = ch
        return picks

    def _take_pick(self, lv: _Live, ch: int) -> bool:
        """Give the drawn character to its stream; True while the stream goes on."""
        job, stream = lv.job, lv.stream
        vocab = job.model.engine.vocab
        piece = stream.take(ch, vocab)
        if job.logprobs is not None and ch >= 0 and stream.reason != "until":
            lv.lp.append(entry(lv.logits, ch, job.logprobs, vocab.chars))
        if stream.reason is None and stream.drawn >= job.opts.length:
            stream.reason = "length"
            piece += stream.flush()
        if stream.reason is None and job.deadline is not None and time.monotonic() > job.deadline:
            stream.reason = "timeout"
            piece += stream.flush()
        if piece:
            u = job.pending
            u.text[lv.index] = u.text.get(lv.index, "") + piece
            if job.logprobs is not None:
                u.logprobs.setdefault(lv.index, []).extend(lv.lp[: len(piece)])
                del lv.lp[: len(piece)]
        return stream.reason is None

    def _leave(
        self, lv: _Live, state: EngineState | None, row: int, cancelled: bool = False
    ) -> None:
        job = lv.job
        if not cancelled:
            job.pending.finished[lv.index] = lv.stream.reason or "length"
        job.open_streams -= 1
        end = None if job.open_streams else self._exit if cancelled else self._finish
        if job.session is not None and state is not None:
            text = "".join(lv.stream.out)
            if cancelled:
                text = text[: job.delivered.get(lv.index, 0)]
            if job.session.before is not None and text:
                # a chat reply is read again: in slices between steps, as a prompt is, and the
                # job ends (its update says done) once the conversation is committed
                self._tasks.append(
                    Task(
                        job.model.engine,
                        lambda engine: self._commit_chat(job, engine, lv.start, text),
                        lambda value, error: end(job) if end else None,
                    )
                )
                return
            self._commit(job, state.select([row]), text, lv.fed, lv.start)
        if end is not None:
            end(job)

    def _commit(
        self, job: Job, state: EngineState, sent: str, fed: list[int], start: EngineState
    ) -> None:
        """Store the session's state after the prompt and the text actually sent. The running
        state holds the characters stepped so far; a sent text that does not extend them (a stop
        string cut, a client gone mid-stream) is read again from the state after the prompt."""
        plan = job.session
        if plan is None:
            return
        engine, vocab = job.model.engine, job.model.engine.vocab
        if plan.before is not None:
            self._commit_chat(job, engine, start, sent)
            return
        sent_ids = vocab.encode(sent, "skip")
        if sent_ids[: len(fed)] == fed:
            for ch in sent_ids[len(fed) :]:
                engine.step(np.array([ch]), state)
        elif sent_ids:
            state = engine.forward(sent_ids, start, last_only=True).state
        else:
            state = start
        text = plan.tail + job.prompt + sent
        held = engine.to_numpy(state)  # stored in numpy's layout, whatever the engine
        try:
            plan.store.put(
                plan.id, job.model.name, job.model.fingerprint, held, text, len(job.prompt + sent)
            )
        except Exception:  # the text was sent; say that it was not kept
            log.exception("session %r could not be saved", plan.id)
            job.pending.error = f"session {plan.id!r} could not be saved; see the server log"

    def _commit_chat(self, job: Job, engine, start: EngineState, sent: str) -> None:
        """A chat turn: the reply is read again from the state after the prompt, as the next
        request without a session reads it within the whole history, so a session's next reply
        equals that request's to the bit (a reply's own steps ran in a batch, whose products
        round differently from a read). `engine` may be a task's, which reads in slices."""
        plan = job.session
        assert plan is not None and plan.before is not None
        try:
            ids = engine.vocab.encode(sent, "skip")
            state = engine.forward(ids, start, last_only=True).state if ids else start
            text = plan.before + job.prompt + sent
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            held = engine.to_numpy(state)
            plan.store.put(
                plan.id, job.model.name, job.model.fingerprint, held, text, len(text), digest
            )
        except Exception:  # the text was sent; say that it was not kept
            log.exception("session %r could not be saved", plan.id)
            job.pending.error = f"session {plan.id!r} could not be saved; see the server log"

    def _finish(self, job: Job) -> None:
        job.pending.done = True
        update, job.pending = job.pending, Update()
        self._exit(job)  # first: a client told "done" may send its session's next turn at once
        self._post(job, update)

    def _exit(self, job: Job) -> None:
        if id(job) in self._jobs:
            self._jobs.discard(id(job))
            if job.on_exit is not None:
                job.on_exit()

    def _fail_batch(self, batch: _Batch, message: str) -> None:
        for lv in batch.lives + [lv for lv, _ in batch.joiners]:
            if id(lv.job) in self._jobs:
                self._post(lv.job, Update(error=message))
                self._exit(lv.job)
        batch.lives, batch.state, batch.joiners = [], None, []

    # --- results ------------------------------------------------------------------------------
    def _post_all(self) -> None:
        now = time.monotonic()
        every = min(FLUSH_MOST, FLUSH * max(1.0, len(self._jobs) / 4))
        for batch in self._batches.values():
            for lv in batch.lives:
                job = lv.job
                if job.pending.empty():
                    continue
                if not job.posted_text or now - job.last_post >= every:
                    job.posted_text = True
                    self._post(job, job.pending)
                    job.pending, job.last_post = Update(), now

    def _post(self, job: Job, update: Update) -> None:
        if not job.cancelled:
            job.notify(update)
