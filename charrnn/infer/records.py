"""Records: `--records N` writes N items, one per line, each generated from a line start until a
newline (names, titles, lines of a list); with `--unique`, items already written or found verbatim as a
line of the training text are dropped and others tried in their place.

Attempt j uses seed S + j and attempts are taken in order, so the output is the same for a seed
however the attempts are batched. It does not know where the training text comes from (`novelty`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Protocol

from charrnn.infer.sampler import Options, Sample, Sampler, seed_of

BATCH = 64  # attempts generated together


def max_attempts(n: int) -> int:
    """How many items are tried for n unique ones before giving up: 10 × n, at least 100."""
    return max(10 * n, 100)


class LineIndex(Protocol):
    def has_line(self, line: str) -> bool: ...


def records(
    sampler: Sampler,
    prime: str,
    opts: Options,
    rng_seed: int,
    n: int,
    lines: LineIndex | None = None,
) -> Iterator[Sample]:
    """Yield up to n records; with `lines`, unique ones that are not lines of the corpus."""
    opts = replace(opts, rules=replace(opts.rules, record=True))
    seen: set[str] = set()
    found, tried, limit = 0, 0, max_attempts(n) if lines is not None else n
    while found < n and tried < limit:
        todo = min(BATCH, limit - tried, (n - found) if lines is None else BATCH)
        batch = sampler.samples_for(
            prime, opts, [seed_of(rng_seed, tried + j) for j in range(todo)]
        )
        tried += todo
        for s in batch:
            if lines is not None and (s.text in seen or lines.has_line(s.text)):
                continue
            seen.add(s.text)
            found += 1
            yield s
            if found == n:
                return
