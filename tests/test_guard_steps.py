"""A stream's guard built a slice at a time (`Guard.in_steps`, what the server's worker does between
batch steps): the same guards as built at once, in pauses that do not grow with the text."""

from __future__ import annotations

import random

import pytest

from charrnn.infer.controls import STEP_GRAMS, Guard, Rules
from charrnn.vocab import Vocab
from tests.conftest import drain


def state(g: Guard) -> tuple:
    return (g.text, g.generated, g.count, g.followers, list(g._recent))


@pytest.mark.parametrize("n", [0, 1, 3, 40])
def test_guards_built_in_steps_equal_guards_built_at_once(n: int) -> None:
    rng = random.Random(n)
    prime = "".join(rng.choice("abc de\nfg") for _ in range(5 * STEP_GRAMS + 7))
    vocab = Vocab.from_text(prime)
    rules = Rules(no_repeat=n or None, ban=("ab",))
    guards, pauses = drain(Guard.in_steps(rules, vocab, prime, copies=3))
    assert len(guards) == 3 and len({id(g.followers) for g in guards}) == 3
    whole = Guard(rules, vocab, prime)
    for g in guards:
        assert state(g) == state(whole)
    if n:  # one pause per STEP_GRAMS n-grams taken in, and per STEP_GRAMS followers copied
        assert pauses >= (len(prime) - n + 1) // STEP_GRAMS
    # each copy is its own: a character written by one changes no other
    guards[0].accept("a")
    assert state(guards[1]) == state(whole) and state(guards[0]) != state(whole)
