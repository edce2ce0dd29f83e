"""Where a stream meets a stop string: one Aho–Corasick automaton over a request's stops, stepped
once per character, whose cost does not grow with the number of stops.

A stream keeps only the automaton's node. The node's depth is the longest end of the text that
could still become a stop (the text to hold back); a stop ends at a node whose `cut` is non-zero,
the longest stop ending there (it starts earliest, so the text is cut there). Stops that contain
another stop ending before their own end are dropped first: the shorter one always ends the text
sooner, so they could never decide anything (a chat's `\\nNAME:` for every speaker holds the
template's own `\\n`). It does not draw characters or decide what is shown; `stream` does.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Iterable


class StopAutomaton:
    """The trie of the stops with failure links; node 0 is the empty text."""

    def __init__(self, stops: Iterable[str]) -> None:
        self.goto: list[dict[str, int]] = [{}]
        self.fail: list[int] = [0]
        self.depth: list[int] = [0]
        self.cut: list[int] = [0]  # the longest stop ending at this node (0: none)
        self.stops = tuple(dict.fromkeys(s for s in stops if s))
        for s in self.stops:
            self._add(s)
        self._link()

    def _add(self, stop: str) -> None:
        node = 0
        for ch in stop:
            nxt = self.goto[node].get(ch)
            if nxt is None:
                nxt = len(self.goto)
                self.goto.append({})
                self.fail.append(0)
                self.depth.append(self.depth[node] + 1)
                self.cut.append(0)
                self.goto[node][ch] = nxt
            node = nxt
        self.cut[node] = len(stop)

    def _link(self) -> None:
        """Failure links breadth first: a node's link is the longest proper suffix of its text
        that is in the trie; its cut, if it ends no stop itself, is its link's."""
        todo = deque(self.goto[0].values())
        while todo:
            node = todo.popleft()
            for ch, child in self.goto[node].items():
                f = self.fail[node]
                while f and ch not in self.goto[f]:
                    f = self.fail[f]
                self.fail[child] = self.goto[f].get(ch, 0)
                if not self.cut[child]:
                    self.cut[child] = self.cut[self.fail[child]]
                todo.append(child)

    def step(self, node: int, ch: str) -> int:
        """The node after `ch` (amortised constant time: each failure link followed was paid for
        by a character that deepened the node earlier)."""
        while True:
            nxt = self.goto[node].get(ch)
            if nxt is not None:
                return nxt
            if node == 0:
                return 0
            node = self.fail[node]

    def first_end(self, text: str) -> int:
        """Where in text a stop first ends (its index past the end); -1 if none does."""
        node = 0
        for i, ch in enumerate(text):
            node = self.step(node, ch)
            if self.cut[node]:
                return i + 1
        return -1


def deciding(stops: Iterable[str]) -> tuple[str, ...]:
    """The stops that can end a text: every non-empty stop but those that hold another stop
    ending before their own last character (that one always ends the text first)."""
    every = tuple(dict.fromkeys(s for s in stops if s))
    whole = StopAutomaton(every)
    return tuple(s for s in every if whole.first_end(s[:-1]) < 0)


@functools.lru_cache(maxsize=8)  # a request's streams are made one after another
def automaton(stops: tuple[str, ...]) -> StopAutomaton:
    """The automaton of a request's deciding stops, built once for all of its streams."""
    return StopAutomaton(deciding(stops))
