"""One model's batch on the worker: the choices generating with that model, their engine state, and
the step that advances them all by one character (draw, hand out the text, let ended choices go,
step the rest, let primed choices join).

The unit is a `Choice`: one choice of a job, the `Stream` that draws it (its generator, guards and
stop strings) and the rows of the batch's engine state it steps. A choice has one row, or two when
guided toward a voice (classifier-free guidance: the voiced row, then the untagged one, both fed the
drawn character), whose raw logits `Choice.drawn_from` combines; the batch moves rows by choice.
Each stream draws with its own generator through `charrnn.infer.stream`, the code `sample` runs,
so a seeded choice writes what `sample` writes when the engine is deterministic.

Not here: reading prompts, sessions and posting results (`scheduler`), HTTP.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from charrnn.infer.engine import EngineState
from charrnn.infer.stream import Stream, draw
from charrnn.serve.jobs import Job
from charrnn.serve.logprobs import LogprobEntry, entry


class Choice:
    """A job's choice in its model's batch: its stream, its rows, and the logits of its next draw
    (None: no prime and no newline, so the first draw uses the corpus's frequencies)."""

    __slots__ = ("fed", "index", "job", "logits", "lp", "rows", "start", "stream")

    def __init__(
        self, job: Job, index: int, stream: Stream, logits, start: EngineState, rows: int = 1
    ) -> None:
        self.job, self.index, self.stream, self.logits = job, index, stream, logits
        self.rows = rows  # rows of the batch's state this choice steps (2: guided)
        self.fed: list[int] = []  # generated characters stepped into the state (sessions)
        self.lp: list[LogprobEntry] = []  # entries of accepted characters not yet shown
        self.start = start  # the state after the prompt (sessions)

    def drawn_from(self, logits: np.ndarray) -> np.ndarray:
        """The logits its next character is drawn from, given its rows' logits after a step:
        guided, u + S·(c − u) of its voiced and untagged rows (raw: before any filter)."""
        if self.rows == 1:
            return logits[0]
        voicing = self.job.voicing
        assert voicing is not None
        return voicing.combine(logits[0:1], logits[1:2])[0]


# called when a choice ends: the choice, its rows' state (sessions only), and whether the
# client went away
Leave = Callable[[Choice, EngineState | None, bool], None]


@dataclass
class Batch:
    choices: list[Choice] = field(default_factory=list)
    state: EngineState | None = None  # the choices' rows, choice after choice
    joiners: list[tuple[Choice, EngineState]] = field(default_factory=list)

    def live(self) -> bool:
        return bool(self.choices or self.joiners)

    def join(self, choice: Choice, state: EngineState) -> None:
        """Add a primed choice (its rows' state) at the next step."""
        self.joiners.append((choice, state))

    def advance(self, leave: Leave) -> None:
        """One step: draw for every choice, hand out the text, let ended choices go (`leave`),
        step the survivors, then let the primed choices join."""
        choices = self.choices
        if choices:
            assert self.state is not None
            engine = choices[0].job.model.engine
            picks = _draws(choices)
            first = np.cumsum([0] + [c.rows for c in choices]).tolist()  # each choice's first row
            keep: list[int] = []
            for k, c in enumerate(choices):
                gone = c.job.cancelled  # set from the event loop: read once
                if not gone and _take(c, picks[k]):
                    keep.append(k)
                    continue
                rows = list(range(first[k], first[k + 1]))
                end = self.state.select(rows) if c.job.session is not None else None
                leave(c, end, gone)
            rows = [r for k in keep for r in range(first[k], first[k + 1])]
            state = self.state if len(keep) == len(choices) else self.state.select(rows)
            survivors = [choices[k] for k in keep]
            if survivors:
                ids = np.array([picks[k] for k in keep for _ in range(choices[k].rows)])
                logits = engine.step(ids, state)
                r = 0
                for k, c in zip(keep, survivors, strict=True):
                    c.logits = c.drawn_from(logits[r : r + c.rows])
                    r += c.rows
                    if c.job.session is not None:
                        c.fed.append(int(picks[k]))
            self.choices, self.state = survivors, state if survivors else None
        if self.joiners:
            states = ([self.state] if self.state is not None else []) + [s for _, s in self.joiners]
            self.choices = self.choices + [c for c, _ in self.joiners]
            self.state = type(states[0]).concat(states) if len(states) > 1 else states[0]
            self.joiners = []

    def clear(self) -> list[Choice]:
        """Drop every choice (a step failed); the choices dropped."""
        gone = self.choices + [c for c, _ in self.joiners]
        self.choices, self.state, self.joiners = [], None, []
        return gone


def _draws(choices: list[Choice]) -> list[int]:
    """Each choice's next character; choices with the same filters draw together."""
    vocab = choices[0].job.model.engine.vocab
    groups: dict[tuple, list[int]] = defaultdict(list)
    for k, c in enumerate(choices):
        # an unprimed first draw uses the frequencies of the choice's voice: drawn per job
        voiced = c.logits is None and c.job.voicing is not None
        groups[(c.job.opts.filters, c.logits is None, id(c.job) if voiced else 0)].append(k)
    picks = [-1] * len(choices)
    for (filters, no_logits, _), ks in groups.items():
        logits = None if no_logits else np.stack([choices[k].logits for k in ks])
        voicing = choices[ks[0]].job.voicing if no_logits else None
        counts = voicing.counts if voicing is not None else None
        got = draw(vocab, filters, [choices[k].stream for k in ks], logits, counts)
        for k, ch in zip(ks, got, strict=True):
            picks[k] = ch
    return picks


def _take(c: Choice, ch: int) -> bool:
    """Give the drawn character to its stream and its text to the job's next update; True while
    the stream goes on."""
    job, stream = c.job, c.stream
    vocab = job.model.engine.vocab
    piece = stream.take(ch, vocab)
    if job.logprobs is not None and ch >= 0 and stream.reason != "until":
        c.lp.append(entry(c.logits, ch, job.logprobs, vocab.chars))
    if stream.reason is None and stream.drawn >= job.opts.length:
        stream.reason = "length"
        piece += stream.flush()
    if stream.reason is None and job.deadline is not None and time.monotonic() > job.deadline:
        stream.reason = "timeout"
        piece += stream.flush()
    if piece:
        u = job.pending
        u.text[c.index] = u.text.get(c.index, "") + piece
        if job.logprobs is not None:
            u.logprobs.setdefault(c.index, []).extend(c.lp[: len(piece)])
            del c.lp[: len(piece)]
    return stream.reason is None
