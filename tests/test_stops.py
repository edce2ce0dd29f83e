"""Stop strings: the automaton ends a text exactly where checking every stop at every character
does, holds back no more than may begin a stop, drops stops that can never decide, and is what a
stream runs (its work per character does not touch the stops); a chat's speaker names are capped."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.infer.controls import Guard, Rules
from charrnn.infer.stops import automaton, deciding
from charrnn.infer.stream import Stream
from charrnn.serve.chat_protocol import MAX_NAMES, parse_chat
from charrnn.serve.chat_template import Message, parse_template, render
from charrnn.serve.protocol import ApiError, Limits
from charrnn.vocab import Vocab

VOCAB = Vocab.from_text("ab\n:xy")


def naive(stops: tuple[str, ...], text: str) -> tuple[str, int]:
    """The text shown and the index of the character a stop ended at (-1: none), as the stream
    matched before: every stop checked at every character, the longest ending there cut."""
    held, out = "", []
    for i, ch in enumerate(text):
        held += ch
        ends = [s for s in stops if held.endswith(s)]
        if ends:
            out.append(held[: -max(len(s) for s in ends)])
            return "".join(out), i
        keep = max(
            next(k for k in range(min(len(held), len(s) - 1), -1, -1) if held.endswith(s[:k]))
            for s in stops
        )
        out.append(held[: len(held) - keep])
        held = held[len(held) - keep :]
    return "".join(out) + held, -1


def run(stops: tuple[str, ...], text: str) -> tuple[str, int, list[int]]:
    """The text a Stream shows, where it stopped, and how much it held back after each step."""
    s = Stream(0, Guard(Rules(), VOCAB, ""), stops)
    out, held = [], []
    for i, ch in enumerate(text):
        out.append(s.emit(ch))
        if s.reason == "stop":
            return "".join(out), i, held
        held.append(len(s.held))
    return "".join(out) + s.flush(), -1, held


stop_sets = st.lists(st.text("ab\n:", min_size=1, max_size=5), min_size=1, max_size=8)


@settings(max_examples=400, deadline=None)
@given(stops=stop_sets, text=st.text("ab\n:", max_size=40))
def test_the_automaton_stops_where_every_stop_checked_at_every_character_does(
    stops: list[str], text: str
) -> None:
    shown, at, held = run(tuple(stops), text)
    assert (shown, at) == naive(tuple(stops), text)
    # it holds back exactly the longest end of the text that begins a deciding stop
    kept = deciding(stops)
    for i, h in enumerate(held):
        seen = text[: i + 1]
        assert h == max(k for k in range(len(seen) + 1) for s in kept if seen.endswith(s[:k]))


def test_stops_that_hold_an_earlier_ending_stop_are_dropped() -> None:
    assert deciding(["\nUser:", "\nBob:", "\n", "\n"]) == ("\n",)
    # a stop that is only a suffix of another still lets the longer one cut where both end
    assert deciding(["b", "ab"]) == ("b", "ab")
    assert run(("b", "ab"), "xab")[:2] == ("x", 2)
    names = {"user": {f"{a}{b}" for a in "ABCDEFGHIJ" for b in "abcdefghij"}}
    for preset in ("plain", "play", "chatbot"):
        template = parse_template(preset)
        assert deciding(template.stops(names)) == template.stop


class Counted(str):
    """A stop string that counts every look at its characters or length."""

    looks = 0

    def __len__(self) -> int:
        Counted.looks += 1
        return super().__len__()

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        Counted.looks += 1
        return super().__getitem__(key)

    def __iter__(self):  # type: ignore[no-untyped-def]
        Counted.looks += 1
        return super().__iter__()


def test_a_stream_steps_the_automaton_and_never_looks_at_the_stops_per_character() -> None:
    stops = tuple(Counted(f":{a}{b}{c}") for a in "abxy" for b in "abxy" for c in "ab\n")
    automaton.cache_clear()
    s = Stream(0, Guard(Rules(), VOCAB, ""), stops)
    assert s.matcher is automaton(tuple(stops)) and len(s.matcher.stops) == len(stops)
    Counted.looks = 0
    for ch in "ab:xy:ab:\n" * 100:  # partial stops all the way, none whole
        s.emit(ch)
        assert s.reason is None
    assert Counted.looks == 0


def test_a_chat_with_a_cast_is_fine_and_a_crowd_of_names_is_a_400() -> None:
    cast = [{"role": "user", "name": f"P{i}", "content": "hi"} for i in range(MAX_NAMES)]
    chat = parse_chat({"messages": cast}, Limits())
    stops = render(parse_template("play"), chat.messages).stops
    assert len(stops) > MAX_NAMES and deciding(stops) == ("\n\n",)
    crowd = [*cast, {"role": "assistant", "name": "one-too-many", "content": "hi"}]
    with pytest.raises(ApiError) as e:
        parse_chat({"messages": crowd}, Limits())
    assert e.value.status == 400 and e.value.param == "messages"
    assert str(MAX_NAMES) in e.value.message and f"{MAX_NAMES + 1} distinct" in e.value.message
    # the same name in many messages counts once
    many = [{"role": "user", "name": "BOB", "content": "x"}] * (MAX_NAMES * 4)
    assert len(parse_chat({"messages": many}, Limits()).messages) == MAX_NAMES * 4
    assert Message("user", "x", "BOB") in parse_chat({"messages": many}, Limits()).messages
