"""The character vocabulary: Unicode code points sorted by value, and the encoding to integer ids.

It knows nothing about files or tensors: `data` and `prep` vectorise encoding of whole corpora with a
lookup table built from `code_points()`; this class is the single source of truth for the mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from charrnn.errors import InputError

Unknown = Literal["error", "skip"]
MAX_CODE_POINT = 0x10FFFF


@dataclass(frozen=True)
class Vocab:
    """Sorted, distinct characters; id i is `chars[i]`. Counts are corpus frequencies (optional)."""

    chars: tuple[str, ...]
    counts: tuple[int, ...] | None = None
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.chars:
            raise InputError("the vocabulary is empty")
        if any(not isinstance(c, str) or len(c) != 1 for c in self.chars):
            raise InputError("vocabulary entries must be single characters")
        if list(self.chars) != sorted(set(self.chars)):
            raise InputError("vocabulary must be distinct characters sorted by code point")
        if self.counts is not None and (
            len(self.counts) != len(self.chars)
            or any(not isinstance(n, int) or n < 0 for n in self.counts)
        ):
            raise InputError("vocabulary counts must be one non-negative integer per character")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.chars)})

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        """Build from a string (small corpora and tests; `prep` counts large corpora in chunks)."""
        tally: dict[str, int] = {}
        for ch in text:
            tally[ch] = tally.get(ch, 0) + 1
        chars = tuple(sorted(tally))
        return cls(chars, tuple(tally[c] for c in chars))

    @classmethod
    def from_code_point_counts(cls, pairs: Iterable[tuple[int, int]]) -> Vocab:
        """Build from (code point, count) pairs, e.g. the non-zero bins of a histogram."""
        items = sorted((cp, n) for cp, n in pairs if n > 0)
        return cls(tuple(chr(cp) for cp, _ in items), tuple(int(n) for _, n in items))

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, ch: object) -> bool:
        return ch in self._index

    def index(self, ch: str) -> int:
        """The id of a character of the vocabulary (KeyError otherwise)."""
        return self._index[ch]

    def code_points(self) -> list[int]:
        return [ord(c) for c in self.chars]

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of `text` that are not in the vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self._index))

    def encode(self, text: str, unknown: Unknown = "error") -> list[int]:
        """Map text to ids; unknown characters raise (naming them) or are dropped with 'skip'."""
        if unknown == "skip":
            return [self._index[c] for c in text if c in self._index]
        missing = self.unknown(text)
        if missing:
            shown = " ".join(repr(c) for c in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise InputError(
                f"{len(missing)} character(s) not in the model's vocabulary: {shown}{more} "
                "(use --unknown skip to drop them)"
            )
        return [self._index[c] for c in text]

    def locate(self, text: str) -> tuple[list[int], list[int]]:
        """(positions in `text`, ids) of the characters the vocabulary has; the rest are left out."""
        index = self._index
        pos = [i for i, c in enumerate(text) if c in index]
        return pos, [index[text[i]] for i in pos]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def to_json(self) -> list[str]:
        return list(self.chars)

    @classmethod
    def from_json(cls, chars: object, counts: object = None) -> Vocab:
        """Rebuild from checkpoint or dataset metadata, rejecting anything malformed."""
        if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
            raise InputError("vocabulary must be a list of characters")
        if counts is not None and not isinstance(counts, list):
            raise InputError("vocabulary counts must be a list of integers")
        return cls(tuple(chars), tuple(counts) if counts is not None else None)

    def rarest(self, n: int = 5) -> Sequence[tuple[str, int]]:
        """The n least frequent characters with their counts (for the prep summary)."""
        if self.counts is None:
            return []
        order = sorted(range(self.size), key=lambda i: (self.counts[i], i))  # type: ignore[index]
        return [(self.chars[i], self.counts[i]) for i in order[:n]]  # type: ignore[index]
