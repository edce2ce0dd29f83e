"""What the batching worker is given and what it reports: a request becomes a `Job` (a prompt, its
options, one seed per choice, and the session it continues: a `SessionPlan`), and the worker reports
each job's progress as `Update`s. Plain data; the worker's loop is `scheduler`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from charrnn.infer.engine import EngineState
from charrnn.infer.guidance import Voicing
from charrnn.infer.sampler import Options
from charrnn.serve.logprobs import LogprobEntry
from charrnn.serve.models import Model
from charrnn.serve.sessions import SessionStore


@dataclass
class Update:
    """What a job's streams did since its last update."""

    text: dict[int, str] = field(default_factory=dict)  # choice index → new characters
    logprobs: dict[int, list[LogprobEntry]] = field(default_factory=dict)
    finished: dict[int, str] = field(default_factory=dict)  # choice index → why it ended
    prompt_logprobs: list[LogprobEntry] | None = None
    done: bool = False  # every stream ended (and the session, if any, is committed)
    error: str | None = None

    def empty(self) -> bool:
        return not (self.text or self.finished or self.done or self.error) and (
            self.prompt_logprobs is None
        )


@dataclass
class SessionPlan:
    """Where a session job starts (base None: a new session) and where it is committed."""

    id: str
    store: SessionStore
    base: EngineState | None = None
    tail: str = ""
    # a chat session: the conversation already read (the state `base` follows it; "" when it is
    # read again from its start); the commit stores the digest of this + prompt + reply
    before: str | None = None
    voice: str | None = None  # the voice it belongs to (`voicing.session_key`; None: no voice)


@dataclass
class Job:
    """One request: a prompt, options and one seed per choice, for one model."""

    model: Model
    prompt: str
    prompt_ids: list[int]
    opts: Options
    seeds: list[int]
    notify: Callable[[Update], None]
    logprobs: int | None = None
    echo_logprobs: bool = False
    deadline: float | None = None
    session: SessionPlan | None = None
    on_exit: Callable[[], None] | None = None  # called once the worker has let go of the job
    voicing: Voicing | None = None  # its voice and strength (None: no voice, as before)
    cancelled: bool = False  # set by the app when the client went away
    delivered: dict[int, int] = field(default_factory=dict)  # choice → characters sent, on cancel
    # worker-side
    pending: Update = field(default_factory=Update)
    last_post: float = 0.0
    posted_text: bool = False
    open_streams: int = 0

    def cancel(self, delivered: dict[int, int]) -> None:
        self.delivered = dict(delivered)
        self.cancelled = True
