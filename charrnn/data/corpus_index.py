"""How much of a generated text is copied verbatim from the text its model was trained on.

A suffix array over the corpus's UTF-8 bytes (libdivsufsort, through pydivsufsort) answers "does this
string occur?" with one binary search; matching statistics turn that into the longest copied span and
the share of new windows with O(len(text)) searches. The array is built once and cached beside the
dataset, keyed by its hash; a cache file is data (read with allow_pickle=False) and checked before use.

It deliberately does not judge near-copies (paraphrase, edit distance), count how often a span occurs
or say where it came from; it never imports torch, prints or exits: the CLI decides what to show.
"""

from __future__ import annotations

import bisect
import codecs
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from charrnn import atomic
from charrnn.data.dataset import (
    Dataset,
    cache_dir,
    is_dataset,
    load_dataset,
    recorded_dataset,
    resolve_dataset,
)
from charrnn.data.prep import SPLITS
from charrnn.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from charrnn.checkpoint import Header

INDEX_VERSION = 1  # part of the cache file name: a change to how the corpus is laid out renames it
# Characters decoded (or bytes validated) at a time, so memory stays near the corpus size.
_CHUNK = 1 << 24
_INT32_MAX = np.iinfo(np.int32).max
_SPOT_CHECKS, _SPOT_BYTES = 64, 64
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Novelty:
    """What share of a sample is new, and the longest span it copied verbatim from the corpus."""

    longest_copy: int  # characters
    longest_copy_text: str
    new_share: float  # share of the sample's windows not found in the corpus, in [0, 1]

    def to_json(self) -> dict[str, int | str | float]:
        return asdict(self)


class CorpusIndex:
    """A corpus's UTF-8 bytes and their suffix array; answers verbatim-occurrence questions.

    Patterns are whole characters, and UTF-8 is self-synchronising, so a byte match always starts and
    ends on character boundaries of the corpus; lengths reported to callers count characters.
    """

    def __init__(
        self,
        data: bytes,
        suffix_array: np.ndarray,
        *,
        source: Path | None = None,
        cache_path: Path | None = None,
        from_cache: bool = False,
    ) -> None:
        self.data = data
        self.suffix_array = suffix_array
        self.source = source  # the dataset directory, when built from one
        self.cache_path = cache_path  # where the array is stored (None: memory only)
        self.from_cache = from_cache  # loaded from cache_path rather than built now
        self.matches_checkpoint = True  # False when --corpus named other text than the model's
        code = "q" if suffix_array.dtype.itemsize == 8 else "i"
        # Indexing a memoryview yields plain ints ~10x faster than indexing the numpy array.
        self._sa = memoryview(suffix_array).cast("B").cast(code)

    @classmethod
    def build(cls, text_bytes: bytes, cache: Path | None = None) -> CorpusIndex:
        """Index a whole corpus given as UTF-8 bytes, loading or saving the array at `cache` if given."""
        data = bytes(text_bytes)
        decoder = codecs.getincrementaldecoder("utf-8")()
        view = memoryview(data)
        try:  # in chunks: validating 100 MB must not decode it into a 400 MB string
            for k in range(0, len(data), _CHUNK):
                decoder.decode(view[k : k + _CHUNK])
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputError("the corpus to index is not valid UTF-8") from None
        return cls._indexed(data, [cache] if cache is not None else [])

    @classmethod
    def for_dataset(cls, dataset_dir: Path) -> CorpusIndex:
        """Index a prepared dataset (all splits, train then val then test), cached beside it."""
        path = Path(dataset_dir)
        if not is_dataset(path):
            raise InputError(f"{path}: not a charrnn dataset (no meta.json)")
        ds = load_dataset(path)
        return cls._indexed(_dataset_bytes(ds), _cache_paths(ds), source=ds.path)

    @classmethod
    def for_checkpoint(cls, header: Header, corpus: str | Path | None = None) -> CorpusIndex:
        """Index the text a checkpoint was trained on: `corpus` if the user named one, else the
        dataset recorded in the checkpoint, provided it still holds the same text (same sha256)."""
        recorded = header.meta.get("corpus")
        recorded = recorded if isinstance(recorded, dict) else {}
        want = recorded.get("sha256")
        if corpus is not None:
            ds, _ = resolve_dataset(str(corpus))
            index = cls.for_dataset(ds.path)
            index.matches_checkpoint = ds.meta["sha256"] == want
            return index
        ds, why = recorded_dataset(recorded)
        if ds is not None:
            return cls.for_dataset(ds.path)
        raise InputError(
            f"the training text was not found ({why}); pass --corpus PATH to supply it"
        )

    @classmethod
    def _indexed(
        cls, data: bytes, caches: Sequence[Path], source: Path | None = None
    ) -> CorpusIndex:
        """The first valid cached array among `caches`, else a new one saved to the first that
        accepts it (a read-only dataset falls back to the user cache), else kept in memory."""
        if not data:
            return cls(data, np.zeros(0, dtype=np.int32), source=source)
        for path in caches:
            sa = _load(path, data)
            if sa is not None:
                return cls(data, sa, source=source, cache_path=path, from_cache=True)
        sa = _suffix_array(data)
        for path in caches:
            if _save(path, sa):
                return cls(data, sa, source=source, cache_path=path)
        return cls(data, sa, source=source)

    def _find(self, pattern: bytes) -> bool:
        """Whether the bytes occur in the corpus: one binary search for the first suffix >= pattern."""
        data, m = self.data, len(pattern)
        k = bisect.bisect_left(self._sa, pattern, key=lambda s: data[s : s + m])
        return k < len(self._sa) and data[self._sa[k] : self._sa[k] + m] == pattern

    def occurs(self, text: str) -> bool:
        """Whether `text` occurs verbatim anywhere in the corpus (the empty string always does)."""
        return self._find(text.encode("utf-8", "surrogatepass"))

    def matching_statistics(self, text: str) -> list[int]:
        """For each character i, the length of the longest prefix of text[i:] found in the corpus.

        Each value is at least the previous one minus 1 (a suffix of a found string is found), so
        the scan starts there and grows: at most 2·len(text) searches in all, not len(text)².
        """
        raw = text.encode("utf-8", "surrogatepass")
        starts = _char_starts(text, raw)
        n, found = len(text), self._find
        stats = [0] * n
        length = 0
        for i in range(n):
            length = max(length - 1, 0)
            s = starts[i]
            while i + length < n and found(raw[s : starts[i + length + 1]]):
                length += 1
            stats[i] = length
        return stats

    def longest_copy(self, text: str) -> tuple[int, str]:
        """The longest span of `text` found verbatim in the corpus: (length in characters, span);
        the first such span when several tie, (0, "") when no character of it occurs."""
        return _longest(text, self.matching_statistics(text))

    def novelty(self, text: str, window: int = 20) -> Novelty:
        """The longest copied span and the share of `text`'s `window`-character windows (the whole
        text when shorter) that do not occur in the corpus; an empty text has nothing new."""
        if window < 1:
            raise InputError(f"the novelty window must be at least 1 character, not {window}")
        stats = self.matching_statistics(text)
        length, span = _longest(text, stats)
        n = len(text)
        if n == 0:
            share = 0.0
        elif n <= window:
            share = 0.0 if stats[0] >= n else 1.0
        else:
            starts = n - window + 1
            share = sum(1 for v in stats[:starts] if v < window) / starts
        return Novelty(length, span, share)

    def has_line(self, line: str) -> bool:
        """Whether `line` is a whole line of the corpus: between newlines, or at its start or end.
        CRLF counts too ("a" matches "a\\r\\n"); a string holding a newline is never one line."""
        if "\n" in line:
            return False
        raw, data = line.encode("utf-8", "surrogatepass"), self.data
        for end in (b"\n", b"\r\n"):
            if data.startswith(raw + end) or self._find(b"\n" + raw + end):
                return True
        return bool(raw) and (data == raw or data.endswith(b"\n" + raw))


def _longest(text: str, stats: list[int]) -> tuple[int, str]:
    if not stats:
        return 0, ""
    best = max(stats)
    i = stats.index(best)
    return best, text[i : i + best]


def _char_starts(text: str, raw: bytes) -> Sequence[int]:
    """Byte offset of each character of `text` in `raw` (its UTF-8), plus the end."""
    if len(raw) == len(text):  # ASCII: bytes are characters
        return range(len(text) + 1)
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    sizes = 1 + (cps >= 0x80).astype(np.int64) + (cps >= 0x800) + (cps >= 0x10000)
    starts = np.zeros(len(text) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    return starts.tolist()


def _dataset_bytes(ds: Dataset) -> bytes:
    """The corpus of a dataset as UTF-8: every split in order, decoded through its vocabulary."""
    cps = np.array(ds.vocab.code_points(), dtype=np.uint32)
    ascii_only = int(cps.max()) < 0x80
    table = cps.astype(np.uint8) if ascii_only else cps
    parts: list[bytes] = []
    try:
        for name in SPLITS:
            ids = ds.split(name)
            for k in range(0, len(ids), _CHUNK):
                chunk = table[ids[k : k + _CHUNK]].tobytes()
                parts.append(chunk if ascii_only else chunk.decode("utf-32-le").encode("utf-8"))
    except (IndexError, UnicodeError):
        raise InputError(f"{ds.path}: ids outside its vocabulary; re-run prep") from None
    return b"".join(parts)


def _cache_paths(ds: Dataset) -> list[Path]:
    """Where the array may live: beside the dataset, then the user cache (same text, same hash)."""
    sha = ds.meta["sha256"]
    if not _SHA256.fullmatch(sha):  # it becomes a file name: take nothing else from meta.json
        return []
    name = f"suffix_array.v{INDEX_VERSION}.{sha[:16]}.npy"
    return [ds.path / name, cache_dir() / "novelty" / f"v{INDEX_VERSION}-{sha}.npy"]


def _suffix_array(data: bytes) -> np.ndarray:
    from pydivsufsort import divsufsort  # 0.1 s of import, paid only when an index is built

    # bytes go to libdivsufsort as a const pointer (no copy); it picks int64 past 2 GiB.
    return np.ascontiguousarray(divsufsort(data))


def _save(path: Path, sa: np.ndarray) -> bool:
    """Write the array atomically (temp file, then rename); False when the place is not writable.

    No fsync: a file lost or cut short by a crash fails validation and is rebuilt.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(path) as tmp, tmp.open("wb") as f:
            np.save(f, sa, allow_pickle=False)
    except OSError:
        return False
    return True


def _load(path: Path, data: bytes) -> np.ndarray | None:
    """A cached array if the file holds a plausible suffix array of `data`, else None (rebuild)."""
    try:
        sa = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return sa if _valid(sa, data) else None


def _valid(sa: np.ndarray, data: bytes) -> bool:
    """Right dtype, shape and range, a permutation, and sampled neighbours in order: a truncated,
    corrupt or foreign file fails here instead of giving wrong answers."""
    n = len(data)
    want = np.dtype(np.int32 if n <= _INT32_MAX else np.int64)
    if sa.dtype != want or sa.shape != (n,) or not sa.flags.c_contiguous:
        return False
    if int(sa.min()) < 0 or int(sa.max()) >= n:
        return False
    seen = np.zeros(n, dtype=bool)
    seen[sa] = True
    if not seen.all():
        return False
    picks = np.random.default_rng(n).integers(0, n - 1, size=min(_SPOT_CHECKS, n - 1))
    for k in picks.tolist():
        a, b = int(sa[k]), int(sa[k + 1])
        if data[a : a + _SPOT_BYTES] > data[b : b + _SPOT_BYTES]:
            return False
    return True
