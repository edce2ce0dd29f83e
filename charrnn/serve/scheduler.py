"""Continuous batching: one worker thread owns the engines and advances every active request's
streams together, one character per step, while the event loop only moves bytes.

Each turn of the worker's loop: take what was submitted, run one slice of queued engine work
(`work`: prompts being read, session commits, scores; bounded in time, commits first, the rest in
turn), step every model's batch once (`batch`), and post the jobs' updates. So a long prompt, a
long score or a session's commit never stalls the streams that generate, and none of them waits
behind another for more than a slice at a time.

A request becomes a `Job`: its prompt is read as queued work, then its choices join their model's
batch; when a choice ends its job's session is committed (`commits`, queued ahead of other work)
and the job is done. Results go back as `Update`s through the job's `notify` (called on this
thread; the app makes it thread-safe): the first characters at once, then at most every 20 ms per
job (100 ms with many jobs), so a streamed response carries several characters per event.

Other engine work (scoring a text) is a `Task` (`tasks`): nothing else computes with an engine, or
changes BLAS's thread count, beside the worker. It knows nothing of HTTP, JSON or OpenAI's shapes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Generator

from charrnn.infer.controls import Guard
from charrnn.infer.engine import EngineState, Forward
from charrnn.infer.stream import Stream
from charrnn.serve import voicing as voiced
from charrnn.serve.batch import Batch, Choice
from charrnn.serve.commits import commit
from charrnn.serve.echo import read_with_logprobs
from charrnn.serve.jobs import Job, SessionPlan, Update
from charrnn.serve.logprobs import prompt_logprobs
from charrnn.serve.tasks import Task
from charrnn.serve.work import Steps, WorkQueue

__all__ = ["Job", "Scheduler", "SessionPlan", "Update"]  # the job types live in `jobs`
FLUSH = 0.02  # seconds between a job's updates after its first characters, with few jobs
FLUSH_MOST = 0.1  # and with many: each update costs the event loop and the client a JSON event
INTERNAL = "internal error; see the server log"
log = logging.getLogger("charrnn.serve")


class Scheduler:
    """The batching worker. `submit(job or task)` from any thread; `close()` finishes and joins."""

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[Job | Task | None] = queue.SimpleQueue()
        self._batches: dict[str, Batch] = defaultdict(Batch)
        self._work = WorkQueue()
        self._jobs: set[int] = set()
        self._stopping = False
        self.streams = 0  # choices generating now (read by /health)
        # the longest wait between two steps while a stream was live, in seconds (read by /health):
        # what one request's priming, queued work or commit cost every stream
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
            busy = self._work or any(b.live() for b in self._batches.values())
            if not self._take(block=not busy):
                break
            try:
                self._work.run()
            except Exception:  # a bug must not take the server down
                log.exception("queued work failed")
            for batch in list(self._batches.values()):
                if batch.live():
                    try:
                        batch.advance(self._leave)
                    except Exception:  # a bug must not take the server down
                        log.exception("batch step failed")
                        self._fail(batch.clear())
            self.streams = sum(len(b.choices) for b in self._batches.values())
            now = time.monotonic()
            if self._stepped is not None:
                self.longest_gap = max(self.longest_gap, now - self._stepped)
            self._stepped = now if self.streams else None
            self._post_all()

    def _take(self, block: bool) -> bool:
        """Queue submitted jobs and tasks; False when closing with nothing left to do."""
        while True:
            try:
                item = self._inbox.get(block=block, timeout=0.5 if block else None)
            except queue.Empty:
                if self._stopping and block:
                    return False
                if block:
                    continue
                return True
            block = False
            if item is None:
                continue
            if isinstance(item, Task):
                self._work.add(item)
                continue
            self._jobs.add(id(item))
            self._start(item)

    # --- a job's prompt -----------------------------------------------------------------------
    def _start(self, job: Job) -> None:
        """Queue the reading of the job's prompt, and the building of its streams' guards, as
        work done a slice at a time between steps; the job joins its batch when both are done."""
        guards: list[Guard] = []
        self._work.add(
            Steps(
                self._read(job, guards),
                lambda fwd, error: self._primed(job, fwd, guards, error),
                gone=lambda: job.cancelled and job.session is None,  # a session still commits
            )
        )

    def _read(self, job: Job, guards: list[Guard]) -> Generator[None, None, Forward]:
        """The guards first (--no-repeat's table over a long session text takes up to a second),
        then the prompt; returns the Forward after it."""
        engine, voicing = job.model.engine, job.voicing
        prime = (job.session.tail if job.session else "") + job.prompt
        made = yield from Guard.in_steps(job.opts.rules, engine.vocab, prime, len(job.seeds))
        guards.extend(made)
        base = job.session.base if job.session else None
        ids = job.prompt_ids
        if not ids and base is not None:
            return Forward(voiced.head(engine, voicing, base), base.copy())
        if not ids and "\n" in engine.vocab and base is None:
            ids = [engine.vocab.index("\n")]  # as `sample` starts without a prime
        if not ids:  # no prime and no newline: the first draw uses the corpus's (voice's) counts
            return Forward(None, voiced.start(engine, voicing))  # type: ignore[arg-type]
        if job.echo_logprobs:
            return (yield from self._echo(job, ids, base))
        return (yield from voiced.read(engine, voicing, ids, base))

    def _echo(self, job: Job, ids: list[int], base: EngineState | None):
        """A prime that also makes the prompt's logprob entries, a chunk at a time (`echo`)."""
        engine = job.model.engine
        fwd, entries = yield from read_with_logprobs(
            engine, job.prompt, ids, base, job.logprobs or 0, job.voicing
        )
        job.pending.prompt_logprobs = entries
        return fwd

    def _primed(
        self, job: Job, fwd: Forward | None, guards: list[Guard], error: BaseException | None
    ) -> None:
        if fwd is None:  # dropped (the client went away) or failed
            if error is not None:
                log.error("priming failed", exc_info=error)
                self._post(job, Update(error=INTERNAL))
            self._exit(job)
            return
        try:
            self._join(job, fwd, guards)
        except Exception:  # a bug must not keep the job (and its streams) forever
            log.exception("joining the batch failed")
            self._post(job, Update(error=INTERNAL))
            self._exit(job)

    def _join(self, job: Job, fwd: Forward, guards: list[Guard]) -> None:
        """The prompt is read: the job's choices join their model's batch at its next step."""
        engine = job.model.engine
        if job.echo_logprobs and job.pending.prompt_logprobs is None:  # nothing was read
            job.pending.prompt_logprobs = prompt_logprobs(engine.vocab, job.prompt, None, 0)
        start = fwd.state
        last = None if fwd.logits is None else fwd.logits[-1]
        if job.cancelled or job.opts.length == 0:
            if not job.cancelled:
                for i in range(len(job.seeds)):
                    job.pending.finished[i] = "length"
            end = self._exit if job.cancelled else self._finish
            self._commit(job, start, "", [], start, lambda: end(job))
            return
        batch = self._batches[job.model.name]
        for i, (seed, guard) in enumerate(zip(job.seeds, guards, strict=True)):
            stream = Stream(seed, guard, job.opts.stops)
            rows = voiced.rows(job.voicing)
            batch.join(Choice(job, i, stream, last, start, rows), start.copy())
        job.open_streams = len(job.seeds)

    # --- a choice's end -----------------------------------------------------------------------
    def _leave(self, c: Choice, state: EngineState | None, cancelled: bool) -> None:
        """A choice ended (`state`: its rows' state, for a session); the job ends with its last
        choice, once its session is committed."""
        job = c.job
        if not cancelled:
            job.pending.finished[c.index] = c.stream.reason or "length"
        job.open_streams -= 1
        last = job.open_streams == 0
        end = self._exit if cancelled else self._finish

        def then() -> None:
            if last:
                end(job)

        if job.session is None or state is None:
            then()
            return
        text = "".join(c.stream.out)
        if cancelled:
            text = text[: job.delivered.get(c.index, 0)]
        self._commit(job, state, text, c.fed, c.start, then)

    def _commit(
        self,
        job: Job,
        state: EngineState,
        sent: str,
        fed: list[int],
        start: EngineState,
        then: Callable[[], None],
    ) -> None:
        """Commit the job's session (if any) as queued work ahead of the rest, then `then()`."""
        if job.session is None:
            then()
            return

        def done(_value: object, error: BaseException | None) -> None:
            if error is not None:
                log.error("session commit failed", exc_info=error)
                job.pending.error = INTERNAL
            then()

        self._work.add(Steps(commit(job, state, sent, fed, start), done), commit=True)

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

    def _fail(self, choices: list[Choice]) -> None:
        for c in choices:
            if id(c.job) in self._jobs:
                self._post(c.job, Update(error=INTERNAL))
                self._exit(c.job)

    # --- results ------------------------------------------------------------------------------
    def _post_all(self) -> None:
        now = time.monotonic()
        every = min(FLUSH_MOST, FLUSH * max(1.0, len(self._jobs) / 4))
        for batch in self._batches.values():
            for c in batch.choices:
                job = c.job
                if job.pending.empty():
                    continue
                if not job.posted_text or now - job.last_post >= every:
                    job.posted_text = True
                    self._post(job, job.pending)
                    job.pending, job.last_post = Update(), now

    def _post(self, job: Job, update: Update) -> None:
        if not job.cancelled:
            job.notify(update)
