"""Reading a text with a model: the probability it gives every character, and its states on the way.

The text is one stream from the model's initial state, as training reads a corpus. So that every
character is predicted (the first one too), reading starts as sampling does without a prime: after
an implicit newline when the vocabulary has one (a text starts at a line start), else from the
corpus's character frequencies. Characters the model has never seen are skipped: the state does not
see them, they are counted apart and left out of the average (or refused, with unknown="error").

Work goes chunk by chunk (each chunk layer by layer: one input-projection product per layer, only the
recurrence per character), so memory stays bounded on a long text and per-character records can be
streamed. A voiced model reads a text under a voice (the state carries it; an unprimed start uses
that voice's frequencies), and `by_tag` reads it under each voice in turn: which voice wrote it,
as nats/char under each and a posterior probability. It does not print: the CLI (`charrnn score`,
`charrnn viz`) decides where figures go.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from charrnn.errors import InputError
from charrnn.infer.engine import InferenceEngine
from charrnn.infer.logits import log_softmax
from charrnn.infer.voices import Voices
from charrnn.vocab import Unknown

CHUNK = 4096  # characters per forward call: bounds memory (a chunk's log-probabilities are float64)
LINE_BATCH = 64  # lines scored together by --lines
# Rows of a chunk's log-softmax (or records) between two pauses: a whole 4,096-row chunk's took
# 10-20 ms here at a vocabulary of 95, which under a server's load held its streams 40-100 ms.
ROWS_BETWEEN_PAUSES = 512


@dataclass
class Score:
    """A text's figures under one model."""

    chars: int = 0  # characters scored (known to the model)
    nats: float = 0.0  # their total surprisal, -sum(log p)
    unknown: Counter = field(default_factory=Counter)  # skipped characters and how often

    @property
    def nats_per_char(self) -> float:
        return self.nats / self.chars if self.chars else math.nan

    @property
    def bpc(self) -> float:
        return self.nats_per_char / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats_per_char) if self.chars else math.nan

    def add(self, other: Score) -> Score:
        return Score(self.chars + other.chars, self.nats + other.nats, self.unknown + other.unknown)

    def to_json(self) -> dict:
        """The figures as `charrnn score --json` writes them (NaN, for an empty text, as null)."""

        def num(x: float, digits: int) -> float | None:
            return None if math.isnan(x) else round(x, digits)

        return {
            "chars": self.chars,
            "unknown": sum(self.unknown.values()),
            "nats_per_char": num(self.nats_per_char, 6),
            "bpc": num(self.bpc, 6),
            "perplexity": num(self.perplexity, 6),
        }


@dataclass
class TagScores:
    """A text's figures under each voice of a model, and the posterior probability of each voice
    given the text: prior × p(text | voice), normalised (the totals, not the averages, decide)."""

    names: tuple[str, ...]
    scores: list[Score]  # one per voice, in the model's order
    prior: np.ndarray

    @property
    def probabilities(self) -> np.ndarray:
        logp = np.log(self.prior) - np.array([s.nats for s in self.scores])
        p = np.exp(logp - logp.max())
        return p / p.sum()

    @property
    def best(self) -> str:
        """The most probable voice (the first of equals)."""
        return self.names[int(np.argmax(self.probabilities))]

    def to_json(self) -> dict:
        """Every figure: chars and unknown (alike under every voice), then per voice its
        nats/char, bpc and probability, and the most probable voice."""
        first = self.scores[0].to_json()
        voices = {}
        for name, s, p in zip(self.names, self.scores, self.probabilities, strict=True):
            figures = {k: v for k, v in s.to_json().items() if k not in ("chars", "unknown")}
            voices[name] = figures | {"probability": round(float(p), 6)}
        return {
            "chars": first["chars"],
            "unknown": first["unknown"],
            "voice": self.best,
            "voices": voices,
        }


@dataclass
class Chunk:
    """Consecutive scored characters: where they are in the text, what they are, what the model
    predicted for each (log-probabilities over the vocabulary, before seeing it) and, when asked,
    every layer's hidden (and LSTM cell) state right after reading each one."""

    positions: np.ndarray  # (m,) indices into the text
    ids: np.ndarray  # (m,)
    logprobs: np.ndarray  # (m, vocab) float64
    hidden: list[np.ndarray] | None = None  # per layer (m, hidden)
    cells: list[np.ndarray] | None = None

    @property
    def nats(self) -> np.ndarray:
        return -self.logprobs[np.arange(len(self.ids)), self.ids]


class Scorer:
    """Score and read texts with one engine."""

    def __init__(self, engine: InferenceEngine, pause: Callable[[], None] | None = None) -> None:
        """pause: called between pieces of the work done outside the engine (a chunk's
        log-softmax, its records), as the server's engine pauses inside `forward`, so a long
        text holds the server's other streams for a few milliseconds at a time at most."""
        self.engine, self.vocab = engine, engine.vocab
        self.pause = pause or (lambda: None)
        nl = self.vocab.chars.index("\n") if "\n" in self.vocab else None
        self.start_id = nl
        counts = np.array(self.vocab.counts or [1] * self.vocab.size, dtype=np.float64)
        self.unigram = log_softmax(np.log(np.maximum(counts, 1e-300)))
        points = np.array([ord(c) for c in self.vocab.chars], dtype=np.uint32)
        self._order = np.argsort(points, kind="stable")
        self._points = points[self._order]  # the vocabulary's code points, sorted
        self.voices = Voices.of(engine)  # None: a model without voices

    def _start(self, voice: np.ndarray | None) -> np.ndarray:
        """The first character's log-probabilities without a newline to start from: the voice's
        frequencies (a mix: weighted), else the corpus's."""
        counts = self.voices.start_counts(voice) if self.voices else None
        return self.unigram if counts is None else log_softmax(np.log(np.maximum(counts, 1e-300)))

    def _state(self, batch: int, voice: np.ndarray | None) -> Any:
        """Fresh streams with this voice (None: as the engine starts them, without one)."""
        if voice is None:
            return self.engine.initial_state(batch)
        return self.engine.initial_state(batch, voice)

    def known(self, text: str, unknown: Unknown = "skip") -> tuple[np.ndarray, np.ndarray, Counter]:
        """(positions, ids) of the characters the model knows, and the skipped ones counted;
        unknown="error" raises the vocabulary's one-line error naming them."""
        if unknown == "error":
            self.vocab.encode(text, "error")
        # in numpy, not per character in Python: a server's score runs this before its first
        # pause, and 50,000 characters a character at a time held every stream for ~80 ms
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        at = np.minimum(np.searchsorted(self._points, points), len(self._points) - 1)
        known = self._points[at] == points
        pos = np.flatnonzero(known)
        skipped = Counter(text[i] for i in np.flatnonzero(~known).tolist())
        return pos.astype(np.intp), self._order[at[known]].astype(np.intp), skipped

    def chunks(
        self,
        text: str,
        unknown: Unknown = "skip",
        keep_states: bool = False,
        chunk: int = CHUNK,
    ) -> Iterator[Chunk]:
        """The text's scored characters, a chunk at a time, in order."""
        positions, ids, _ = self.known(text, unknown)
        yield from self.chunks_of_ids(positions, ids, keep_states, chunk)

    def chunks_of_ids(
        self,
        positions: np.ndarray,
        ids: np.ndarray,
        keep_states: bool = False,
        chunk: int = CHUNK,
        voice: np.ndarray | None = None,
    ) -> Iterator[Chunk]:
        """As `chunks`, for characters already located; voice: the voice weights to read with."""
        state: Any = None if voice is None else self._state(1, voice)  # the engine's own state
        prev: np.ndarray | None = None  # logits predicting the next chunk's first character
        if self.start_id is not None and len(ids):
            fwd = self.engine.forward([self.start_id], state, last_only=True)
            state, prev = fwd.state, log_softmax(fwd.logits[-1])
        for a in range(0, len(ids), chunk):
            part = ids[a : a + chunk]
            fwd = self.engine.forward(part, state, keep_states=keep_states)
            state = fwd.state
            lp = np.empty(fwd.logits.shape, dtype=np.float64)
            for r in range(0, len(lp), ROWS_BETWEEN_PAUSES):  # row by row alike: same bits
                lp[r : r + ROWS_BETWEEN_PAUSES] = log_softmax(
                    fwd.logits[r : r + ROWS_BETWEEN_PAUSES]
                )
                self.pause()
            first = self._start(voice) if prev is None else prev
            logprobs = np.concatenate([first[None], lp[:-1]])
            prev = lp[-1]
            yield Chunk(positions[a : a + chunk], part, logprobs, fwd.hidden, fwd.cells)

    def records(
        self, positions: np.ndarray, ids: np.ndarray, k: int = 5, voice: np.ndarray | None = None
    ) -> Iterator[list[dict]]:
        """`score --per-char`'s records, a chunk's worth at a time: `i` (the position in the text),
        `char`, `nats` (its surprisal) and `top` (the k most likely [char, probability], ties in
        vocabulary order); read with a voice's weights on a voiced model (None: no voice)."""
        for chunk in self.chunks_of_ids(positions, ids, voice=voice):
            out: list[dict] = []
            for r in range(0, len(chunk.ids), ROWS_BETWEEN_PAUSES):
                out.extend(self._records(chunk, slice(r, r + ROWS_BETWEEN_PAUSES), k))
                self.pause()
            yield out

    def _records(self, chunk: Chunk, rows: slice, k: int) -> list[dict]:
        chars = self.vocab.chars
        logprobs = chunk.logprobs[rows]
        probs = np.exp(logprobs)
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        cols = chunk.positions[rows].tolist(), chunk.ids[rows].tolist()
        return [
            {
                "i": i,
                "char": chars[cid],
                "nats": round(float(-logprobs[j, cid]), 6),
                "top": [[chars[c], round(float(probs[j, c]), 6)] for c in order[j]],
            }
            for j, (i, cid) in enumerate(zip(*cols, strict=True))
        ]

    def score(self, text: str, unknown: Unknown = "skip", voice: np.ndarray | None = None) -> Score:
        """Every known character predicted and counted, in one stream from the initial state
        (with this voice's weights, on a voiced model; None: no voice)."""
        positions, ids, skipped = self.known(text, unknown)
        total = 0.0
        for c in self.chunks_of_ids(positions, ids, voice=voice):
            total += float(c.nats.sum())
        return Score(len(ids), total, skipped)

    def by_tag(self, text: str, unknown: Unknown = "skip", prior: str = "uniform") -> TagScores:
        """The text under each of the model's voices, and how probable each voice is given it
        (`prior`: uniform, or corpus: the voices' shares of the training text)."""
        voices = self._voices()
        scores = [self.score(text, unknown, np.eye(len(voices))[v]) for v in range(len(voices))]
        return TagScores(voices.names, scores, voices.priors(prior))

    def by_tag_lines(
        self, lines: Sequence[str], unknown: Unknown = "skip", prior: str = "uniform"
    ) -> list[TagScores]:
        """`by_tag` for each line on its own (see `score_lines`)."""
        voices = self._voices()
        eye, priors = np.eye(len(voices)), voices.priors(prior)
        per_voice = [self.score_lines(lines, unknown, eye[v]) for v in range(len(voices))]
        return [TagScores(voices.names, list(row), priors) for row in zip(*per_voice, strict=True)]

    def _voices(self) -> Voices:
        if self.voices is None:
            raise InputError("this model has no voices; --by-tag needs a model trained with them")
        return self.voices

    def score_lines(
        self, lines: Sequence[str], unknown: Unknown = "skip", voice: np.ndarray | None = None
    ) -> list[Score]:
        """Each line on its own, from the initial state (as if it were a whole text). Lines run
        together, LINE_BATCH at a time, sorted by length so little of a batch is padding."""
        encoded = [self.known(line, unknown) for line in lines]
        out = [Score(len(ids), 0.0, skipped) for _, ids, skipped in encoded]
        order = sorted(range(len(lines)), key=lambda i: len(encoded[i][1]))
        for a in range(0, len(order), LINE_BATCH):
            group = [i for i in order[a : a + LINE_BATCH] if len(encoded[i][1])]
            if group:
                self._score_group(group, [encoded[i][1] for i in group], out, voice)
        return out

    def _score_group(
        self,
        group: list[int],
        seqs: list[np.ndarray],
        out: list[Score],
        voice: np.ndarray | None = None,
    ) -> None:
        longest = max(len(s) for s in seqs)
        pad = np.zeros((len(seqs), longest), dtype=np.intp)
        for r, s in enumerate(seqs):
            pad[r, : len(s)] = s
        lengths = np.array([len(s) for s in seqs])
        total = np.zeros(len(seqs))
        rows = np.arange(len(seqs))
        state = self._state(len(seqs), voice)
        if self.start_id is None:
            lp = np.repeat(self._start(voice)[None], len(seqs), axis=0)
        else:
            lp = log_softmax(self.engine.step(np.full(len(seqs), self.start_id), state))
        for t in range(longest):
            live = lengths > t
            total[live] -= lp[rows[live], pad[live, t]]
            if t + 1 < longest:
                lp = log_softmax(self.engine.step(pad[:, t], state))
        for r, i in enumerate(group):
            out[i].nats = float(total[r])
