"""What a writer can ask of a sample beyond the distribution: never write a string (`--ban`), never
repeat an n-character sequence within the last 100,000 characters (`--no-repeat`), end at a
sentence, line or paragraph with a word count in bounds (`--until`, `--min-words`, `--max-words`),
and the record rules (`--records`).

A `Guard` follows one stream's text and says, before each draw, which characters are forbidden (a
mask) or must give their probability to an ending (the `--max-words` redirect), and after each draw
whether the text has ended. Everything steers the draw: nothing is cut out afterwards. It does not
draw, hold models or know about batches; `logits` applies the masks and `sampler` runs the streams.
"""

from __future__ import annotations

import unicodedata
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Literal

import numpy as np

from charrnn.errors import InputError
from charrnn.vocab import Vocab

Until = Literal["sentence", "line", "paragraph"]
UNTILS: tuple[str, ...] = ("sentence", "line", "paragraph")
TERMINATORS = ".!?。！？｡"
CJK_TERMINATORS = "。！？｡"
CLOSERS = "\"')]}»”’」』）】〕〉》›"
# How far back --no-repeat looks, in characters. Remembering every n-gram of an endless sample would
# grow without bound; a window keeps a stream's memory fixed (at most this many n-grams, a few MB),
# while a repeat 100,000 characters apart (a short novel's chapter) is no longer a loop a reader sees.
NO_REPEAT_WINDOW = 100_000
MAX_NO_REPEAT = 1000  # the longest n-gram the server's no_repeat takes
# n-grams taken in (or followers copied) between two pauses of `Guard.in_steps`: a few ms here
STEP_GRAMS = 2048


@dataclass(frozen=True)
class Rules:
    """The constraints of one sample (the same for every stream of a batch)."""

    ban: tuple[str, ...] = ()
    no_repeat: int | None = None
    until: Until | None = None
    min_words: int | None = None
    max_words: int | None = None
    record: bool = False  # a record: at least one character, ends at a newline

    def check(self) -> None:
        if any(s == "" for s in self.ban):
            raise InputError("--ban needs a non-empty string")
        if self.no_repeat is not None and self.no_repeat < 1:
            raise InputError(f"--no-repeat must be >= 1, got {self.no_repeat}")
        if self.until is not None and self.until not in UNTILS:
            raise InputError(f"--until must be one of {', '.join(UNTILS)}, got {self.until!r}")
        for name in ("min_words", "max_words"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
            if v is not None and self.until is None:
                raise InputError(f"--{name.replace('_', '-')} needs --until")
        if self.min_words and self.max_words and self.min_words > self.max_words:
            raise InputError(
                f"--min-words {self.min_words} is more than --max-words {self.max_words}"
            )

    @property
    def boundary(self) -> Until | None:
        return "line" if self.record else self.until

    def to_json(self) -> dict:
        d = asdict(self)
        d["ban"] = list(self.ban)
        return d


def is_cjk(ch: str) -> bool:
    """Scripts written without spaces: each such character counts as one word."""
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "IDEOGRAPHIC"))


def count_words(text: str) -> int:
    """Whitespace-separated tokens, except that every CJK character (kana, hangul) is a word."""
    words, in_word = 0, False
    for ch in text:
        in_word, added = _word_step(ch, in_word)
        words += added
    return words


def _word_step(ch: str, in_word: bool) -> tuple[bool, int]:
    if ch.isspace():
        return False, 0
    if is_cjk(ch):
        return False, 1
    return True, 0 if in_word else 1


@dataclass
class Guard:
    """One stream's constraints as it is written. `text` is the end of the prime plus what was
    generated, `generated` the end of what was generated: as much as any rule looks back (a sample
    may be endless), with `count` the characters generated."""

    rules: Rules
    vocab: Vocab
    text: str
    generated: str = ""
    count: int = 0
    words: int = 0
    in_word: bool = False
    # --no-repeat: the n-grams ending in the last NO_REPEAT_WINDOW characters, as prefix → {last
    # character's id: occurrences}, and those characters themselves (to forget the oldest n-gram)
    followers: dict[str, dict[int, int]] = field(default_factory=dict)
    _recent: deque[str] = field(default_factory=deque, init=False, repr=False)

    def __post_init__(self) -> None:
        for _ in self._take_in_prime():
            pass

    @classmethod
    def in_steps(
        cls, rules: Rules, vocab: Vocab, prime: str, copies: int = 1
    ) -> Generator[None, None, list[Guard]]:
        """`copies` Guards for this prime, built a slice at a time (a generator that pauses every
        STEP_GRAMS n-grams or followers, and returns them): over a long text --no-repeat's table
        takes up to a second to build and tens of milliseconds to copy, which a server does
        between its batch steps rather than in one."""
        first = cls(rules, vocab, "")
        first.text = prime
        yield from first._take_in_prime()
        guards = [first]
        for _ in range(copies - 1):
            copy = first.copy(followers=False)
            for k, (prefix, seen) in enumerate(first.followers.items()):
                copy.followers[prefix] = dict(seen)
                if k % STEP_GRAMS == STEP_GRAMS - 1:
                    yield
            guards.append(copy)
        return guards

    def _take_in_prime(self) -> Iterator[None]:
        n = self.rules.no_repeat
        if n:
            first = max(0, len(self.text) - NO_REPEAT_WINDOW - n + 1)  # of the window's n-grams
            for end in range(first, len(self.text)):
                self._remember(self.text[max(first, end - n + 1) : end + 1])
                if (end - first) % STEP_GRAMS == STEP_GRAMS - 1:
                    yield
        tables = _tables(self.vocab)
        self._terminal, self._space, self._newline, self._cjk = tables
        r = self.rules
        self._memory = max([64, r.no_repeat or 0, *(len(b) for b in r.ban)])
        self.text = self.text[-self._memory :]
        self._free = not (r.ban or r.no_repeat or r.boundary)

    def copy(self, followers: bool = True) -> Guard:
        """An independent Guard in the same state (`followers=False`: with an empty n-gram table,
        for a caller that copies it itself)."""
        g = Guard.__new__(Guard)
        g.__dict__.update(self.__dict__)
        g.followers = {k: dict(v) for k, v in self.followers.items()} if followers else {}
        g._recent = deque(self._recent)
        return g

    # --- before a draw ------------------------------------------------------------------------
    def banned(self) -> np.ndarray | None:
        """Characters the next draw must not take (None: no constraint)."""
        if self._free:
            return None
        mask = np.zeros(self.vocab.size, dtype=bool)
        for s in self.rules.ban:
            if s[-1] in self.vocab and self.text.endswith(s[:-1]):
                mask[self.vocab.index(s[-1])] = True
        n = self.rules.no_repeat
        if n and len(self.text) >= n - 1:
            for i in self.followers.get(self.text[len(self.text) - n + 1 :], ()):
                mask[i] = True
        boundary = self.rules.boundary
        if boundary and self.words < (self.rules.min_words or 0):
            mask |= self._ending_chars(boundary)
        if self.rules.record and not self.count:
            mask |= self._newline  # a record has at least one character
        return mask if mask.any() else None

    def _ending_chars(self, boundary: Until) -> np.ndarray:
        if boundary == "sentence":
            return self._terminal
        if boundary == "paragraph" and not self.generated.endswith("\n"):
            return np.zeros_like(self._newline)
        return self._newline

    def redirect(self) -> tuple[np.ndarray, np.ndarray] | None:
        """At --max-words, (source, target): characters that would start another word or end the
        current one give their probability to the characters that end the text instead."""
        boundary, most = self.rules.boundary, self.rules.max_words
        if not boundary or not most or self.words < most or self._pending_end():
            return None
        # Inside a word, a space or a CJK character would end it; after a space (or a CJK
        # character, itself a word) any character would start another.
        source = self._space | self._cjk if self.in_word else np.ones_like(self._space)
        target = self._terminal if boundary == "sentence" else self._newline
        return source & ~target, target

    # --- after a draw -------------------------------------------------------------------------
    def ends_before(self, ch: str) -> bool:
        """Whether `ch` shows that the text has already ended (ch itself is not part of it)."""
        boundary = self.rules.boundary
        if boundary == "sentence":
            return self._pending_end() and (ch.isspace() or (self._cjk_end() and ch not in CLOSERS))
        if boundary == "line":
            return ch == "\n"
        if boundary == "paragraph":
            return ch == "\n" and self.generated.endswith("\n")
        return False

    def _pending_end(self) -> bool:
        """The generated text ends with a terminator and closing quotes or brackets."""
        body = self.generated.rstrip(CLOSERS)
        return bool(body) and body[-1] in TERMINATORS

    def _cjk_end(self) -> bool:
        return self.generated.rstrip(CLOSERS)[-1:] in tuple(CJK_TERMINATORS)

    def accept(self, ch: str) -> None:
        """Record a character that became part of the text."""
        self.text = (self.text + ch)[-self._memory :]
        self.generated = (self.generated + ch)[-self._memory :]
        self.count += 1
        self.in_word, added = _word_step(ch, self.in_word)
        self.words += added
        if self.rules.no_repeat:
            self._remember(self.text[-self.rules.no_repeat :])

    def _remember(self, gram: str) -> None:
        """Take in the n-gram that the text's last character ends (`gram`: the text's last n
        characters, fewer at its start) and forget the n-gram that left the window."""
        n, recent = self.rules.no_repeat or 0, self._recent
        recent.append(gram[-1])
        if len(gram) == n:
            self._count(gram, +1)
        if len(recent) > NO_REPEAT_WINDOW + n - 1:
            self._count("".join(islice(recent, n)), -1)
            recent.popleft()

    def _count(self, gram: str, add: int) -> None:
        if gram[-1] not in self.vocab:
            return
        prefix, i = gram[:-1], self.vocab.index(gram[-1])
        seen = self.followers.setdefault(prefix, {})
        left = seen.get(i, 0) + add
        if left:
            seen[i] = left
        else:
            del seen[i]
            if not seen:
                del self.followers[prefix]


_TABLES: dict[tuple[str, ...], tuple[np.ndarray, ...]] = {}


def _tables(vocab: Vocab) -> tuple[np.ndarray, ...]:
    """Per vocabulary: which characters are sentence terminators, spaces, the newline, CJK."""
    if vocab.chars not in _TABLES:
        chars = vocab.chars
        _TABLES[vocab.chars] = (
            np.array([c in TERMINATORS for c in chars]),
            np.array([c.isspace() for c in chars]),
            np.array([c == "\n" for c in chars]),
            np.array([is_cjk(c) for c in chars]),
        )
    return _TABLES[vocab.chars]
