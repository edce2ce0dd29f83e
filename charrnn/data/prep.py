"""Corpus preparation: read text files, directories or stdin, and write an id-array dataset.

Two streaming passes in fixed-size chunks (count characters, then encode), so memory does not grow with
the corpus; encoding is vectorised with numpy (UTF-32 view + lookup table), never a per-character loop.
It does not batch or train: `data` memory-maps what this writes.
"""

from __future__ import annotations

import codecs
import fnmatch
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from charrnn import atomic, owned
from charrnn.data.split import DEFAULT_VAL_FRAC, auto_val_frac, split_sizes
from charrnn.data.voices import TagOptions
from charrnn.errors import InputError, option
from charrnn.vocab import Vocab

Errors = Literal["strict", "replace"]
DATASET_FORMAT = "charrnn-dataset"
# 2: a labelled corpus's `voices` and spans-<split>.npy files; unlabelled datasets are still
# written as version 1, byte for byte as before (docs/formats.md)
DATASET_VERSION = 2
UNLABELLED_VERSION = 1
SPLITS = ("train", "val", "test")
CHUNK_BYTES = 1 << 22
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class Source:
    """One input file; `path` is where to read it, `name` how to report it."""

    name: str
    path: Path


@dataclass(frozen=True)
class PrepResult:
    out_dir: Path
    meta: dict
    skipped: tuple[str, ...]  # files passed over in directory walks (binary)
    notes: tuple[str, ...] = ()  # a leftover of an interrupted prep, restored


def _looks_binary(path: Path) -> bool:
    with path.open("rb") as f:
        return b"\0" in f.read(_SNIFF_BYTES)


def _walk(root: Path, glob: str | None) -> list[Path]:
    """Files under root, sorted, skipping hidden files and directories (.git, .venv)."""
    found: list[Path] = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            Path(dirpath) / name
            for name in files
            if not name.startswith(".") and (glob is None or fnmatch.fnmatch(name, glob))
        ]
    return sorted(found)


def collect_sources(
    inputs: Sequence[str], glob: str | None = None, stdin: BinaryIO | None = None
) -> tuple[list[Source], list[str], Callable[[], None]]:
    """Expand inputs into files in a stable order; returns (sources, skipped, cleanup).

    Directories are walked recursively in sorted order, skipping hidden entries and (since a corpus
    of source code often sits beside images and archives) files that look binary. Files named
    explicitly are always read, so bad bytes in them are reported rather than silently skipped.
    stdin (`-`) is spooled to a temporary file, because preparation reads its input twice.
    """
    sources: list[Source] = []
    skipped: list[str] = []
    spooled: list[Path] = []

    def cleanup() -> None:
        for p in spooled:
            p.unlink(missing_ok=True)

    for item in inputs:
        if item == "-":
            fd, tmp = tempfile.mkstemp(prefix="charrnn-stdin-")
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(stdin or sys.stdin.buffer, out, CHUNK_BYTES)
            spooled.append(Path(tmp))
            sources.append(Source("<stdin>", Path(tmp)))
            continue
        path = Path(item)
        if path.is_dir():
            before = len(sources)
            for f in _walk(path, glob):
                if _looks_binary(f):
                    skipped.append(str(f))
                else:
                    sources.append(Source(str(f), f))
            if len(sources) == before:
                cleanup()
                what = f"no files matching {glob!r}" if glob else "no text files"
                raise InputError(f"{item}: directory has {what}")
        elif path.is_file() or (path.exists() and not path.is_dir()):
            sources.append(Source(item, path))
        else:
            cleanup()
            raise InputError(f"{item}: no such file or directory")
    return sources, skipped, cleanup


def decode_chunks(
    f: BinaryIO, name: str, errors: Errors, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[tuple[bytes, str]]:
    """Yield (raw bytes, decoded text) per chunk; multi-byte characters may straddle chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors=errors)
    consumed = 0
    while True:
        raw = f.read(chunk_bytes)
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as e:
            offset = consumed - pending + e.start
            raise InputError(
                f"{name}: not valid UTF-8 at byte {offset} (is it a binary file? "
                "use --errors replace to substitute U+FFFD)"
            ) from None
        consumed += len(raw)
        yield raw, text
        if not raw:
            return


def code_points(text: str) -> np.ndarray:
    """The code points of `text` as uint32, without a Python loop."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every id."""
    for dt in (np.uint8, np.uint16):
        if vocab_size <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    return np.dtype(np.uint32)


def _count(sources: Sequence[Source], errors: Errors) -> tuple[np.ndarray, list[dict], str]:
    """First pass: character histogram, per-source sizes and hashes, and the corpus hash."""
    hist = np.zeros(0, dtype=np.int64)
    total = hashlib.sha256()
    infos: list[dict] = []
    for src in sources:
        h, nbytes, nchars = hashlib.sha256(), 0, 0
        with src.path.open("rb") as f:
            for raw, text in decode_chunks(f, src.name, errors):
                h.update(raw)
                total.update(raw)
                nbytes += len(raw)
                if text:
                    counts = np.bincount(code_points(text))
                    if len(counts) > len(hist):
                        hist = np.concatenate([hist, np.zeros(len(counts) - len(hist), np.int64)])
                    hist[: len(counts)] += counts
                    nchars += len(text)
        infos.append({"name": src.name, "bytes": nbytes, "chars": nchars, "sha256": h.hexdigest()})
    return hist, infos, total.hexdigest()


def _encode(
    sources: Sequence[Source], errors: Errors, vocab: Vocab, sizes: dict, out: Path
) -> dict[str, str]:
    """Second pass: encode through a lookup table and append ids to the split files in order.
    Returns each file's sha256 (meta.json records them, so a later prep can tell an edit)."""
    cps = np.array(vocab.code_points(), dtype=np.int64)
    dtype = id_dtype(vocab.size)
    lut = np.zeros(int(cps.max()) + 1, dtype=dtype)
    lut[cps] = np.arange(vocab.size, dtype=dtype)
    files = [(out / f"{s}.bin").open("wb") for s in SPLITS]
    hashes = [hashlib.sha256() for _ in SPLITS]
    try:
        which, room = 0, sizes[SPLITS[0]]
        for src in sources:
            with src.path.open("rb") as f:
                for _, text in decode_chunks(f, src.name, errors):
                    ids = lut[code_points(text)]
                    while len(ids):
                        while room == 0 and which < len(SPLITS) - 1:
                            which += 1
                            room = sizes[SPLITS[which]]
                        take = ids[:room]
                        take.tofile(files[which])
                        hashes[which].update(take.tobytes())
                        room -= len(take)
                        ids = ids[len(take) :]
        for fh in files:
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        for fh in files:
            fh.close()
    return {f"{s}.bin": h.hexdigest() for s, h in zip(SPLITS, hashes, strict=True)}


def corpus_name(inputs: Sequence[str]) -> str:
    """A short name for run directories: the first input's stem ('stdin' for `-`)."""
    first = inputs[0]
    return "stdin" if first == "-" else (Path(first).resolve().stem or "corpus")


def prep(
    inputs: Sequence[str],
    out_dir: Path,
    *,
    val_frac: float | None = DEFAULT_VAL_FRAC,
    test_frac: float = 0.0,
    errors: Errors = "strict",
    glob: str | None = None,
    stdin: BinaryIO | None = None,
    cache_entry: bool = False,
    tags: TagOptions | None = None,
) -> PrepResult:
    """Prepare a dataset directory; it appears whole or not at all (built aside, then swapped in).

    An existing `out_dir` is replaced only when it holds a dataset's own, unedited files (meta.json
    records each array's sha256); anything else is refused in one line. cache_entry: `out_dir` is
    charrnn's own cache entry (`resolve_dataset`), replaced whatever it holds. val_frac None
    chooses by size (`auto_val_frac`); meta.json records the fraction used. `tags`: labelled text
    or JSON Lines (`data.labelled`): each voice's own tail is its validation and test text."""
    from charrnn import __version__
    from charrnn.data import labelled

    tags = tags or TagOptions()

    asked = DEFAULT_VAL_FRAC if val_frac is None else val_frac
    if not 0 <= asked < 1 or not 0 <= test_frac < 1 or asked + test_frac >= 1:
        raise InputError(
            f"{option('val_frac')} and {option('test_frac')} must be in [0, 1) and sum to less "
            "than 1"
        )
    notes = atomic.leftovers(out_dir)
    if not cache_entry:
        _check_replaceable(out_dir)
    if tags.active:
        voiced, skipped, cleanup = labelled.collect(inputs, tags, glob, stdin)
    else:
        sources, skipped, cleanup = collect_sources(inputs, glob, stdin)
    try:
        if tags.active:
            counted = labelled.count(voiced, tags, errors)
            hist, infos, digest = counted.hist, counted.infos, counted.digest
        else:
            hist, infos, digest = _count(sources, errors)
        if not hist.any():  # before the vocabulary, whose own error could not name the file
            raise InputError(f"{' '.join(inputs)}: no text to train on (0 characters)")
        vocab = Vocab.from_code_point_counts((i, int(n)) for i, n in enumerate(hist) if n)
    except InputError:
        cleanup()
        raise
    total = int(hist.sum())
    if total < 2:
        cleanup()
        raise InputError(f"{' '.join(inputs)}: the corpus needs at least 2 characters")
    if val_frac is None:
        val_frac = auto_val_frac(total)
    sizes = split_sizes(total, val_frac, test_frac)
    if tags.active:
        per_voice = counted.splits(val_frac, test_frac)
        sizes = {s: sum(v[s] for v in per_voice.values()) for s in SPLITS}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = atomic.temp_path(out_dir)
    atomic.remove(work)
    work.mkdir()
    try:
        if tags.active:
            written = labelled.encode(voiced, tags, errors, vocab, counted, per_voice, work)
        else:
            written = _encode(sources, errors, vocab, sizes, work)
        meta = {
            "format": DATASET_FORMAT,
            "version": DATASET_VERSION if tags.mode else UNLABELLED_VERSION,
            "name": corpus_name(inputs),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "charrnn_version": __version__,
            "numpy_version": np.__version__,
            "chars": total,
            "sha256": digest,
            "errors": errors,
            "dtype": id_dtype(vocab.size).name,
            "splits": sizes,
            "val_frac": val_frac,
            "test_frac": test_frac,
            "vocab": vocab.to_json(),
            "counts": list(vocab.counts or ()),
            "sources": infos,
            "files": written,
        }
        if tags.mode:
            meta["voices"] = _voices_meta(tags, counted, per_voice, vocab)
        text = json.dumps(meta, ensure_ascii=True, indent=1, allow_nan=False)
        (work / "meta.json").write_text(text)
        if not cache_entry:
            _check_replaceable(out_dir)  # again: the folder may have changed while encoding
        atomic.swap_into_place(work, out_dir)
    except BaseException:
        atomic.remove(work)
        raise
    finally:
        cleanup()
    return PrepResult(out_dir, meta, tuple(skipped), tuple(notes))


def _voices_meta(tags: TagOptions, counted, per_voice: dict, vocab: Vocab) -> dict:
    """meta.json's `voices` (docs/formats.md): the mode, sorted names (index = voice id), each
    voice's counts over the vocabulary and its characters in each split."""
    from charrnn.data.labelled import voice_counts

    names = counted.names
    record = {
        "mode": tags.mode,
        "names": names,
        "counts": voice_counts(counted, vocab),
        "chars": {s: [per_voice[n][s] for n in names] for s in SPLITS},
    }
    if tags.jsonl:
        record |= {"text_key": tags.text_key, "tag_key": tags.tag_key}
    return record


def _check_replaceable(out_dir: Path) -> None:
    """Refuse, in one line, an `out_dir` that holds anything but an earlier dataset's own files as
    prep wrote them (the novelty index's cache beside them is its own too)."""
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if out_dir.is_symlink():
        raise InputError(f"{out_dir}: is a link; name the folder it points to with -o")
    if not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a directory")
    meta = out_dir / "meta.json"
    if not meta.is_file():
        if any(out_dir.iterdir()):
            raise InputError(f"{out_dir}: exists and is not a charrnn dataset; choose another -o")
        return
    try:
        record = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    if not isinstance(record, dict) or record.get("format") != DATASET_FORMAT:
        raise InputError(f"{out_dir}: meta.json is not a charrnn dataset's; choose another -o")
    digests = record.get("files")
    own: dict[str, str | None] = {"meta.json": None} | {f"{s}.bin": None for s in SPLITS}
    spans = {f"spans-{s}.npy" for s in SPLITS}  # a labelled dataset's, recorded with their sha256
    if isinstance(digests, dict):  # a dataset prepared by charrnn 0.2.0 records names only
        own |= {n: d for n, d in digests.items() if (n in own or n in spans) and isinstance(d, str)}
    found = owned.intruder(out_dir, own, spare=_is_index_cache)
    if found is not None:
        raise InputError(
            f"{out_dir}: {found.reason('dataset')}; prep replaces only a dataset's own, unedited "
            "files: move it, or choose another -o"
        )


def _is_index_cache(name: str) -> bool:
    """The novelty index's suffix array, which `corpus_index` keeps beside a dataset."""
    return fnmatch.fnmatch(name, "suffix_array.v*.npy")
