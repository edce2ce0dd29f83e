"""Preparing labelled text (`--tags-from dir|file`, `--jsonl --tag-key`) and JSON Lines: which
inputs are which voice's documents, the per-voice counts, each voice's own tail splits, the ids
written voice by voice and the spans that say where each document lies.

The same two streaming passes as plain text (count, then encode), so memory holds one chunk or one
record, per-voice histograms and one length per document, never a per-character label. It does not
decide the dataset's layout on disk beyond the id arrays and spans (`prep` writes meta.json and
swaps the folder into place).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from charrnn.data.prep import (
    SPLITS,
    Errors,
    Source,
    _looks_binary,
    _walk,
    code_points,
    collect_sources,
    decode_chunks,
    id_dtype,
)
from charrnn.data.split import split_sizes
from charrnn.data.voices import MIN_VOICE_CHARS, TagOptions, check_name
from charrnn.errors import InputError
from charrnn.owned import sha256_file
from charrnn.vocab import Vocab

Labelled = tuple[Source, str | None]  # a file and its voice (None: from its records, or none)


def collect(
    inputs: Sequence[str], tags: TagOptions, glob: str | None, stdin: BinaryIO | None = None
) -> tuple[list[Labelled], list[str], Callable[[], None]]:
    """The inputs as files with their voices, in input order; (files, skipped, cleanup)."""
    if tags.tags_from == "dir":
        return _collect_dirs(inputs, glob)
    if tags.tags_from == "file" and "-" in inputs:
        raise InputError(
            "-: stdin has no file name to be its voice; with --tags-from file every input is a "
            "named file (a mix of labelled and unlabelled text is refused)"
        )
    sources, skipped, cleanup = collect_sources(inputs, glob, stdin)
    if tags.tags_from == "file":
        voiced = [(s, check_name(s.path.stem, s.name)) for s in sources]
        return voiced, skipped, cleanup
    return [(s, None) for s in sources], skipped, cleanup


def _collect_dirs(
    inputs: Sequence[str], glob: str | None
) -> tuple[list[Labelled], list[str], Callable[[], None]]:
    """--tags-from dir: each immediate subfolder of each input folder is a voice, walked as plain
    folders are; a file beside the subfolders belongs to no voice and is refused."""
    found: list[Labelled] = []
    skipped: list[str] = []
    for item in inputs:
        root = Path(item)
        if not root.is_dir():
            what = "no such folder" if not root.exists() else "a file, not a folder of voices"
            raise InputError(
                f"{item}: {what}; with --tags-from dir each input is a folder with a subfolder "
                "per voice (a mix of labelled and unlabelled text is refused)"
            )
        entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
        loose = [p for p in entries if not p.is_dir()]
        if loose:
            raise InputError(
                f"{loose[0]}: a file beside the voice subfolders of {item}; with --tags-from dir "
                "every file belongs in a voice's subfolder"
            )
        if not entries:
            raise InputError(f"{item}: no voice subfolders (--tags-from dir)")
        for sub in entries:
            voice = check_name(sub.name, str(sub))
            for f in _walk(sub, glob):
                if _looks_binary(f):
                    skipped.append(str(f))
                else:
                    found.append((Source(str(f), f), voice))
    return found, skipped, lambda: None


@dataclass
class Counted:
    """The first pass: whole-corpus histogram, per-voice histograms and document lengths (input
    order within each voice), the sources' records and the corpus hash."""

    hist: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    voice_hist: dict[str | None, np.ndarray] = field(default_factory=dict)
    docs: dict[str | None, list[int]] = field(default_factory=dict)
    infos: list[dict] = field(default_factory=list)
    digest: str = ""

    @property
    def names(self) -> list[str | None]:
        """The groups in dataset order: sorted voice names, or [None] for unlabelled records."""
        return sorted(self.docs, key=lambda n: "" if n is None else n)

    def sizes(self, voice: str | None) -> int:
        return sum(self.docs[voice])

    def splits(self, val_frac: float, test_frac: float) -> dict[str | None, dict[str, int]]:
        """Each voice's own tail splits (the whole text's for unlabelled records)."""
        return {v: split_sizes(self.sizes(v), val_frac, test_frac) for v in self.names}


def _documents(src: Source, voice: str | None, tags: TagOptions, errors: Errors):
    """(raw bytes read, voice, text, starts a document) for one input file, in order: a file is
    one document; a JSON Lines file one per record (blank lines are no document)."""
    with src.path.open("rb") as f:
        if not tags.jsonl:
            first = True
            for raw, text in decode_chunks(f, src.name, errors):
                yield raw, voice, text, first
                first = False
            return
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8", errors)
            except UnicodeDecodeError:
                raise InputError(
                    f"{src.name}: line {number} is not valid UTF-8 (use --errors replace to "
                    "substitute U+FFFD)"
                ) from None
            if not line.strip():
                yield raw, None, "", False
                continue
            text, name = _record(line, src.name, number, tags)
            yield raw, name, text, True


def _record(line: str, where: str, number: int, tags: TagOptions) -> tuple[str, str | None]:
    """A JSON Lines record's text and voice, or one line saying what is wrong with it."""
    at = f"{where}: line {number}"
    try:
        record = json.loads(line)
    except ValueError as e:
        raise InputError(f"{at} is not JSON ({e.msg})") from None
    if not isinstance(record, dict):
        raise InputError(f"{at} is not a JSON object")
    if tags.text_key not in record:
        raise InputError(f"{at} has no {tags.text_key!r} key (--text-key)")
    text = record[tags.text_key]
    if not isinstance(text, str):
        raise InputError(f"{at}: {tags.text_key!r} is not a string")
    if tags.tag_key is None:
        return text, None
    if tags.tag_key not in record:
        raise InputError(
            f"{at} has no {tags.tag_key!r} key (--tag-key); every record needs a voice (a mix of "
            "labelled and unlabelled text is refused)"
        )
    name = record[tags.tag_key]
    if not isinstance(name, str):
        raise InputError(f"{at}: {tags.tag_key!r} is not a string")
    return text, check_name(name, at)


def _points(text: str, where: str) -> np.ndarray:
    try:
        return code_points(text)
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape
        raise InputError(f"{where}: text holds an unpaired surrogate (\\ud800-\\udfff)") from None


def count(sources: Sequence[Labelled], tags: TagOptions, errors: Errors) -> Counted:
    """First pass; refuses a voice with fewer than MIN_VOICE_CHARS characters."""
    c, total = Counted(), hashlib.sha256()
    for src, voice in sources:
        h, nbytes, nchars = hashlib.sha256(), 0, 0
        for raw, name, text, starts in _documents(src, voice, tags, errors):
            h.update(raw)
            total.update(raw)
            nbytes += len(raw)
            if starts:
                c.docs.setdefault(name, []).append(0)
                c.voice_hist.setdefault(name, np.zeros(0, dtype=np.int64))
            if text:
                counts = np.bincount(_points(text, src.name))
                c.hist = _add(c.hist, counts)
                c.voice_hist[name] = _add(c.voice_hist[name], counts)
                c.docs[name][-1] += len(text)
                nchars += len(text)
        c.infos.append(
            {"name": src.name, "bytes": nbytes, "chars": nchars, "sha256": h.hexdigest()}
        )
    c.digest = total.hexdigest()
    if tags.mode is not None:
        for name in c.names:
            if c.sizes(name) < MIN_VOICE_CHARS:
                raise InputError(
                    f"voice {name!r} has {c.sizes(name):,} characters; a voice needs at least "
                    f"{MIN_VOICE_CHARS:,}"
                )
    return c


def _add(hist: np.ndarray, counts: np.ndarray) -> np.ndarray:
    if len(counts) > len(hist):
        hist = np.concatenate([hist, np.zeros(len(counts) - len(hist), np.int64)])
    hist[: len(counts)] += counts
    return hist


def voice_counts(c: Counted, vocab: Vocab) -> list[list[int]]:
    """Each voice's character counts, aligned with the vocabulary."""
    cps = np.array(vocab.code_points(), dtype=np.int64)
    out = []
    for name in c.names:
        h = c.voice_hist[name]
        out.append([int(h[cp]) if cp < len(h) else 0 for cp in cps])
    return out


def encode(
    sources: Sequence[Labelled],
    tags: TagOptions,
    errors: Errors,
    vocab: Vocab,
    c: Counted,
    splits: dict[str | None, dict[str, int]],
    out: Path,
) -> dict[str, str]:
    """Second pass: each document's ids written where its voice's part of each split puts it
    (a split is the voices' parts in `names` order); returns the files' sha256 (spans included
    for labelled text)."""
    cps = np.array(vocab.code_points(), dtype=np.int64)
    dtype = id_dtype(vocab.size)
    lut = np.zeros(int(cps.max()) + 1, dtype=dtype)
    lut[cps] = np.arange(vocab.size, dtype=dtype)
    base = {s: 0 for s in SPLITS}
    starts: dict[str | None, dict[str, int]] = {}
    for name in c.names:  # where each voice's part of each split starts
        starts[name] = dict(base)
        base = {s: base[s] + splits[name][s] for s in SPLITS}
    cursor = dict.fromkeys(c.names, 0)
    files = {s: (out / f"{s}.bin").open("wb") for s in SPLITS}
    try:
        for s, fh in files.items():
            fh.truncate(base[s] * dtype.itemsize)
        for src, voice in sources:
            for _, name, text, _ in _documents(src, voice, tags, errors):
                if text:
                    _place(
                        lut[_points(text, src.name)],
                        cursor[name],
                        splits[name],
                        starts[name],
                        files,
                    )
                    cursor[name] += len(text)
        for fh in files.values():
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        for fh in files.values():
            fh.close()
    written = {f"{s}.bin": sha256_file(out / f"{s}.bin") for s in SPLITS}
    if tags.mode is None:
        return written
    for s in SPLITS:
        rows = spans(c, splits, s)
        if len(rows):
            path = out / f"spans-{s}.npy"
            np.save(path, rows, allow_pickle=False)
            written[path.name] = sha256_file(path)
    return written


def _place(ids: np.ndarray, at: int, sizes: dict[str, int], starts: dict[str, int], files) -> None:
    """Write a voice's ids from voice position `at` on into the splits its positions fall in."""
    lo = 0
    for s in SPLITS:
        hi = lo + sizes[s]
        a, b = max(at, lo), min(at + len(ids), hi)
        if b > a:
            fh = files[s]
            fh.seek((starts[s] + a - lo) * ids.itemsize)
            ids[a - at : b - at].tofile(fh)
        lo = hi


def spans(c: Counted, splits: dict[str | None, dict[str, int]], split: str) -> np.ndarray:
    """Rows [start, length, voice] of `split`: each document's part in it (a document crossing a
    cut is two spans), voice by voice, documents in input order; empty parts left out."""
    rows, base = [], 0
    for v, name in enumerate(c.names):
        lengths = np.asarray(c.docs[name], dtype=np.int64)
        begin = np.cumsum(lengths) - lengths
        lo = sum(splits[name][s] for s in SPLITS[: SPLITS.index(split)])
        hi = lo + splits[name][split]
        a, b = np.clip(begin, lo, hi), np.clip(begin + lengths, lo, hi)
        keep = b > a
        part = np.stack([a[keep] - lo + base, b[keep] - a[keep], np.full(keep.sum(), v)], axis=1)
        rows.append(part.astype(np.int64))
        base += splits[name][split]
    return np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)


def iter_key(sources: Sequence[Labelled]) -> Iterator[bytes]:
    """What the dataset cache key reads of labelled inputs: each file's name, voice and bytes."""
    for src, voice in sources:
        yield src.name.encode("utf-8", "surrogateescape") + b"\0" + (voice or "").encode() + b"\0"
        with src.path.open("rb") as f:
            yield from iter(lambda f=f: f.read(1 << 20), b"")
