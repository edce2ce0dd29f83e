"""Vocabulary: ordering, encoding, unknown characters, JSON round trip (property-tested)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charrnn.errors import InputError
from charrnn.vocab import Vocab


def test_sorted_by_code_point_with_counts() -> None:
    v = Vocab.from_text("banana 🍌")
    assert v.chars == (" ", "a", "b", "n", "🍌")
    assert v.counts == (1, 3, 1, 2, 1)
    assert v.rarest(2) == [(" ", 1), ("b", 1)]


def test_unknown_characters_are_named_or_skipped() -> None:
    v = Vocab.from_text("abc")
    with pytest.raises(InputError, match=r"'x' 'é'.*--unknown skip"):
        v.encode("axbé")
    assert v.decode(v.encode("axbé", unknown="skip")) == "ab"


def test_rejects_malformed_json() -> None:
    for bad in (["b", "a"], ["a", "a"], ["ab"], "abc", [1]):
        with pytest.raises(InputError):
            Vocab.from_json(bad)


text_any = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=200
) | st.sampled_from(["\r\n", "\0", "e\u0301", "𝔘𝔫𝔦", "👩‍👩‍👧", "a\r\nb\0c"])


@given(text_any)
def test_encode_decode_round_trip(text: str) -> None:
    v = Vocab.from_text(text)
    ids = v.encode(text)
    assert v.decode(ids) == text
    assert all(0 <= i < v.size for i in ids)
    again = Vocab.from_json(json.loads(json.dumps(v.to_json())), list(v.counts or []))
    assert again == v
