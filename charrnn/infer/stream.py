"""One sample being written, character by character: its own random generator, its constraints, the
stop strings it watches for, and the draw of the next character for a set of such streams.

`sample` runs the streams of one prime together (`sampler`); the server runs the streams of many
requests together (`serve.scheduler`). Both go through `Stream.take` and `draw`, so a seeded stream
writes the same text in either. It does not hold model state or call the engine: the caller steps the
engine with the characters the streams took.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from charrnn.infer.controls import Guard
from charrnn.infer.logits import (
    Filters,
    adjust_rows,
    draw_rows,
    probabilities_rows,
    redirect,
    shift_rows,
)
from charrnn.infer.stops import automaton
from charrnn.vocab import Vocab


def generator(seed: int) -> np.random.Generator:
    """A stream's own generator: numpy's PCG64 seeded with the stream's seed."""
    return np.random.Generator(np.random.PCG64(seed))


class Stream:
    """One sample being written: its generator, constraints, and text held back for stop strings.

    `reason` is None while it runs, then why it ended: `stop` (a stop string), `until` (the
    boundary), `dead_end` (the controls left nothing possible); the caller sets `length`.
    """

    def __init__(
        self, seed: int, guard: Guard, stops: Sequence[str] = (), keep: bool = True
    ) -> None:
        self.seed, self.rng = seed, generator(seed)
        self.guard, self.stops = guard, tuple(s for s in stops if s)
        self.matcher, self.node = automaton(self.stops), 0
        self.held, self.out, self.reason, self.keep = "", [], None, keep
        self.drawn = 0  # draws made (each takes one number from the generator)
        self.counts: dict[int, int] = {}  # id → times written: the repetition penalties' counts

    def take(self, ch: int, vocab: Vocab) -> str:
        """Take the drawn character (-1: none was possible); return what may be shown now. After
        it, `reason` says whether the stream has ended (its held-back text is then flushed)."""
        self.drawn += 1
        piece = ""
        if ch < 0:
            self.reason = "dead_end"
        elif self.guard.ends_before(vocab.chars[ch]):
            self.reason = "until"
        else:
            piece = self.emit(vocab.chars[ch])
            self.counts[ch] = self.counts.get(ch, 0) + 1
        if self.reason is not None:
            piece += self.flush()
        return piece

    def emit(self, ch: str) -> str:
        """Take ch into the text; return what may be shown now (text that might begin a stop
        string is held back until it is known not to). One automaton step (`stops`), however
        many stops the stream watches for."""
        self.guard.accept(ch)
        if not self.stops:
            if self.keep:
                self.out.append(ch)
            return ch
        self.held += ch
        self.node = self.matcher.step(self.node, ch)
        cut = self.matcher.cut[self.node]
        if cut:  # the longest stop ending here starts earliest: cut there
            self.held = self.held[:-cut]
            self.reason = "stop"
            return self.flush()
        keep = self.matcher.depth[self.node]  # the end of the text that may begin a stop
        shown, self.held = self.held[: len(self.held) - keep], self.held[len(self.held) - keep :]
        if self.keep:
            self.out.append(shown)
        return shown

    def flush(self) -> str:
        shown, self.held = self.held, ""
        if self.keep:
            self.out.append(shown)
        return shown


def draw(
    vocab: Vocab,
    filters: Filters,
    streams: Sequence[Stream],
    logits: np.ndarray | None,
    counts: np.ndarray | None = None,
) -> list[int]:
    """One draw per stream (-1: the controls left nothing): masks, filters, the --max-words
    redirect, then each stream's own uniform number. The rows go through the adjustments together
    (no operation mixes rows), so a stream draws the same character in any batch. logits None:
    no prime and no newline to start from, so the corpus's character frequencies (or `counts`:
    a voice's)."""
    u = np.array([s.rng.random() for s in streams])
    if logits is None:
        if counts is None:
            counts = np.array(vocab.counts or [1] * vocab.size, dtype=np.float64)
        logits = np.repeat(np.log(np.maximum(counts, 1e-300))[None], len(streams), axis=0)
        filters = replace(filters, temperature=1.0 if filters.temperature else 0.0)
    if filters.shifts:
        logits = shift_rows(logits, filters, [s.counts for s in streams])
    masks = [s.guard.banned() for s in streams]
    banned = None
    if any(m is not None for m in masks):
        banned = np.zeros(logits.shape, dtype=bool)
        for row, m in enumerate(masks):
            if m is not None:
                banned[row] = m
    p = probabilities_rows(adjust_rows(logits, filters, banned))
    for row, s in enumerate(streams):
        moved = s.guard.redirect()
        if moved is None or np.isnan(p[row, 0]):
            continue
        source, target = moved
        if masks[row] is not None:
            target = target & ~masks[row]
        weights = np.exp(np.asarray(logits[row], np.float64) - np.max(logits[row]))
        p[row] = redirect(p[row], source, target, weights)
        if p[row].sum() <= 0:
            p[row] = np.nan
        elif filters.temperature == 0:
            p[row] = np.arange(vocab.size) == np.argmax(p[row])
    dead = np.isnan(p[:, 0])
    picks = np.full(len(streams), -1)
    if not dead.all():
        picks[~dead] = draw_rows(p[~dead], u[~dead])
    return picks.tolist()
