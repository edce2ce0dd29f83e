"""`echo` with `logprobs`: a prompt read a chunk at a time, each chunk's log-probabilities turned
into entries before the next is read, so the worker never holds prompt × vocabulary logits.

The entries are `logprobs.prompt_logprobs`'s (row t predicts known character t + 1; the first
character, and characters the model does not know, have none), computed with the same `entry`. The
Forward returned carries only the logits after the whole prompt, exactly as a prime without echo
computes them (`head_logits`). It does not cap how much is echoed: `protocol` does (`--max-echo`).
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np

from charrnn.infer.engine import Forward
from charrnn.serve import voicing as voiced
from charrnn.serve.logprobs import LogprobEntry, entry

ECHO_CHUNK = 512  # prompt characters whose logits are held at once (a multiple of 64: see below)


def chunks(n: int, size: int = ECHO_CHUNK) -> list[tuple[int, int]]:
    """[a, b) ranges covering n, none of a single row unless n is 1: a one-row product rounds
    differently from a many-row one, while many-row products agree row for row, so each row's
    logits are the ones a whole-prompt read gives (the engines read in slices of 64)."""
    bounds = [*range(0, n, size), n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    return list(itertools.pairwise(bounds))


def read_with_logprobs(
    engine: Any, prompt: str, ids: Sequence[int], state: Any, k: int, voicing: Any = None
) -> Generator[None, None, tuple[Forward, list[LogprobEntry]]]:
    """Read ids (the prompt's known characters) from state, pausing as `forward_steps` does;
    return the Forward after them and the prompt's entries, one per character of `prompt`.
    voicing: the choice's voice (`serve.voicing`); guided, both rows are read and the entries
    come from their combined logits."""
    vocab = engine.vocab
    known: list[LogprobEntry] = []
    prev: np.ndarray | None = None  # the row predicting the next chunk's first character
    if state is None and voicing is not None:
        state = voiced.start(engine, voicing)
    for a, b in chunks(len(ids)):
        part = ids[a:b]
        if voiced.rows(voicing) == 2:
            c = yield from engine.forward_steps(part, state.select([0]))
            u = yield from engine.forward_steps(part, state.select([1]))
            logits, state = (
                voicing.combine(c.logits, u.logits),
                type(c.state).concat([c.state, u.state]),
            )
            del c, u
        else:
            fwd = yield from engine.forward_steps(part, state)
            logits, state = fwd.logits, fwd.state
            del fwd
        for j, ch in enumerate(part):
            known.append(entry(prev if j == 0 else logits[j - 1], ch, k, vocab.chars))
            if j % 64 == 63:  # a sort over the vocabulary per character: pause as a read does
                yield
        prev = logits[-1]
        del logits
    out: list[LogprobEntry] = []
    t = 0  # index into the prompt's known characters
    for c in prompt:
        out.append(known[t] if c in vocab else (c, None, None))
        t += c in vocab
    if state is None:
        state = engine.initial_state(1)
    return Forward(voiced.head(engine, voicing, state), state), out
