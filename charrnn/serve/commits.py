"""Session commits: once a session's request has ended, store the state after the text actually
sent, so the next request continues from it. Two kinds: a completion session (a text continued) and
a chat session (a conversation, stored with the digest of what it has read).

Each commit is a generator that pauses where it reads text (an engine's `forward_steps`), so the
worker runs it in slices like any other engine work (`work`), ahead of scores. It does not decide
when to commit (the scheduler does) nor hold a session against other requests (the service does).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Generator

import numpy as np

from charrnn.infer.engine import EngineState
from charrnn.serve import voicing as voiced
from charrnn.serve.jobs import Job

log = logging.getLogger("charrnn.serve")


def commit(
    job: Job, state: EngineState, sent: str, fed: list[int], start: EngineState
) -> Generator[None, None, None]:
    """Store the job's session: the state after the prompt and the text actually sent.
    state: its stream's state after the characters `fed` (stepped while generating); start:
    the state after the prompt."""
    plan = job.session
    if plan is None:
        return
    if plan.before is not None:
        yield from _chat(job, start, sent)
        return
    engine, vocab = job.model.engine, job.model.engine.vocab
    try:
        # the running state holds the characters stepped so far; a sent text that does not
        # extend them (a stop string cut, a client gone mid-stream) is read again from `start`
        sent_ids = vocab.encode(sent, "skip")
        rows = voiced.rows(job.voicing)  # a guided choice steps its voiced and untagged rows
        if sent_ids[: len(fed)] == fed:
            for ch in sent_ids[len(fed) :]:
                engine.step(np.array([ch] * rows), state)
        elif sent_ids:
            state = (yield from voiced.read(engine, job.voicing, sent_ids, start)).state
        else:
            state = start
        text = plan.tail + job.prompt + sent
        held = engine.to_numpy(state)  # stored in numpy's layout, whatever the engine
        plan.store.put(
            plan.id,
            job.model.name,
            job.model.fingerprint,
            held,
            text,
            len(job.prompt + sent),
            voice=plan.voice,
        )
    except Exception:  # the text was sent; say that it was not kept
        _not_kept(job)


def _chat(job: Job, start: EngineState, sent: str) -> Generator[None, None, None]:
    """A chat turn: the reply is read again from the state after the prompt, as the next
    request without a session reads it within the whole history, so a session's next reply
    equals that request's to the bit (a reply's own steps ran in a batch, whose products round
    differently from a read)."""
    plan = job.session
    assert plan is not None and plan.before is not None
    engine = job.model.engine
    try:
        ids = engine.vocab.encode(sent, "skip")
        state = (yield from voiced.read(engine, job.voicing, ids, start)).state if ids else start
        text = plan.before + job.prompt + sent
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        held = engine.to_numpy(state)
        plan.store.put(
            plan.id,
            job.model.name,
            job.model.fingerprint,
            held,
            text,
            len(text),
            digest,
            voice=plan.voice,
        )
    except Exception:  # the text was sent; say that it was not kept
        _not_kept(job)


def _not_kept(job: Job) -> None:
    assert job.session is not None
    log.exception("session %r could not be saved", job.session.id)
    job.pending.error = f"session {job.session.id!r} could not be saved; see the server log"
