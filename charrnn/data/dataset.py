"""Datasets on disk: prepared id arrays, memory-mapped, and the content-hash cache of prepared text.

A dataset is a directory written by `prep`: `meta.json` plus one raw id array per split, which this
module memory-maps (RSS does not grow with corpus size). It does not batch (`train.batches` does),
train or evaluate models.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.data.prep import (
    DATASET_FORMAT,
    DATASET_VERSION,
    SPLITS,
    UNLABELLED_VERSION,
    Errors,
    collect_sources,
    prep,
)
from charrnn.data.voices import TagOptions, VoiceTable
from charrnn.errors import InputError, option
from charrnn.vocab import Vocab

_DTYPES = ("uint8", "uint16", "uint32")


@dataclass(frozen=True)
class Dataset:
    path: Path
    meta: dict
    vocab: Vocab

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def voices(self) -> VoiceTable | None:
        """The voices of a labelled dataset (None: unlabelled), as meta.json records them."""
        return VoiceTable.from_meta(self.path, self.meta)

    def split(self, name: str) -> np.ndarray:
        """The split's ids, memory-mapped read-only (an empty array for an empty split)."""
        size = int(self.meta["splits"][name])
        if size == 0:
            return np.zeros(0, dtype=self.meta["dtype"])
        return np.memmap(
            self.path / f"{name}.bin", dtype=self.meta["dtype"], mode="r", shape=(size,)
        )

    def differences(self, fingerprint: dict, vocab: list[str]) -> list[str]:
        """How a checkpoint's recorded corpus and vocabulary differ from this dataset (empty: same)."""
        diffs = []
        if fingerprint.get("sha256") != self.meta["sha256"]:
            diffs.append(
                f"its corpus is {fingerprint.get('name')!r} (sha256 {str(fingerprint.get('sha256'))[:12]}…), "
                f"this is {self.name!r} (sha256 {self.meta['sha256'][:12]}…)"
            )
        elif fingerprint.get("splits") != self.meta["splits"]:
            diffs.append(
                f"its splits were {fingerprint.get('splits')}, these are {self.meta['splits']}"
            )
        if vocab != self.vocab.to_json():
            same_size = len(vocab) == self.vocab.size
            diffs.append(
                f"its vocabulary has {len(vocab)} characters, this one {self.vocab.size}"
                + (" (different characters)" if same_size else "")
            )
        return diffs

    def check_resume(self, ckpt: str | Path, meta: dict, allow_new: bool) -> str:
        """Whether a checkpoint may continue on this text: "" when it is the same corpus; what
        differs when it is not but allow_new and the vocabularies agree; else an InputError."""
        diffs = self.differences(meta["corpus"], meta["vocab"])
        if not diffs:
            return ""
        same_vocab = meta["vocab"] == self.vocab.to_json()
        if allow_new and same_vocab:
            return "; ".join(diffs)
        hint = (
            f"; pass {option('allow_new_corpus')} to continue on this text"
            if same_vocab
            else "; a model cannot continue on a different vocabulary"
        )
        raise InputError(f"{ckpt} was trained on other text: {'; '.join(diffs)}{hint}")

    def fingerprint(self) -> dict:
        """What a checkpoint records to recognise this corpus again (name, size, hash, splits)."""
        return {
            "name": self.name,
            "chars": self.meta["chars"],
            "sha256": self.meta["sha256"],
            "splits": dict(self.meta["splits"]),
            "path": str(self.path),
        }


def is_dataset(path: Path) -> bool:
    return path.is_dir() and (path / "meta.json").is_file()


def load_dataset(path: Path) -> Dataset:
    """Open a prepared dataset, checking that meta.json and the arrays agree."""
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read dataset meta.json ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != DATASET_FORMAT:
        raise InputError(f"{path}: not a charrnn dataset")
    if not isinstance(meta.get("version"), int) or meta["version"] > DATASET_VERSION:
        raise InputError(
            f"{path}: dataset version {meta.get('version')} is newer than this charrnn"
        )
    splits = meta.get("splits")
    if (
        meta.get("dtype") not in _DTYPES
        or not isinstance(splits, dict)
        or any(not isinstance(splits.get(s), int) or splits[s] < 0 for s in SPLITS)
        or not isinstance(meta.get("name"), str)
        or not isinstance(meta.get("sha256"), str)
    ):
        raise InputError(f"{path}: dataset meta.json is malformed")
    vocab = Vocab.from_json(meta.get("vocab"), meta.get("counts"))
    itemsize = np.dtype(meta["dtype"]).itemsize
    for s in SPLITS:
        f = path / f"{s}.bin"
        actual = f.stat().st_size if f.exists() else 0
        if actual != splits[s] * itemsize:
            raise InputError(f"{f}: {actual} bytes, expected {splits[s] * itemsize}; re-run prep")
    table = VoiceTable.from_meta(path, meta)
    for s in SPLITS if table is not None else ():
        if splits[s] and not (path / f"spans-{s}.npy").is_file():
            raise InputError(f"{path / f'spans-{s}.npy'}: missing; re-run prep")
    return Dataset(path, meta, vocab)


def cache_dir() -> Path:
    """Where `train` keeps datasets it prepared itself: $CHARRNN_CACHE, else the XDG cache."""
    if os.environ.get("CHARRNN_CACHE"):
        return Path(os.environ["CHARRNN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "charrnn"


def resolve_dataset(
    corpus: str,
    *,
    val_frac: float | None = None,
    test_frac: float = 0.0,
    errors: Errors = "strict",
    glob: str | None = None,
    tags: TagOptions | None = None,
) -> tuple[Dataset, bool]:
    """A dataset directory as is (its splits obeyed), or raw text prepared into the cache keyed by
    content hash; val_frac None lets the text's size choose (`split.auto_val_frac`).

    Returns (dataset, prepared_now). The key covers the bytes and every prep option (the tag mode,
    each file's voice and the JSON keys too), so editing the corpus or changing --val-frac prepares
    again and an unchanged corpus is never prepared twice.
    """
    tags = tags or TagOptions()
    path = Path(corpus)
    if corpus == "-":
        raise InputError(
            "train reads a file or dataset; for stdin run `charrnn prep - -o DIR` first"
        )
    if is_dataset(path):
        if tags.active:
            raise InputError(
                f"{corpus}: a prepared dataset keeps its own voices; --tags-from, --jsonl, "
                "--text-key and --tag-key apply to raw text"
            )
        return load_dataset(path), False
    key = hashlib.sha256()
    if tags.active:
        from charrnn.data.labelled import collect, iter_key

        for block in iter_key(collect([corpus], tags, glob)[0]):
            key.update(block)
        options = [val_frac, test_frac, errors, glob, DATASET_VERSION, tags.key()]
    else:
        for src in collect_sources([corpus], glob)[0]:
            key.update(src.name.encode("utf-8", "surrogateescape") + b"\0")
            with src.path.open("rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    key.update(block)
        options = [val_frac, test_frac, errors, glob, UNLABELLED_VERSION]
    key.update(json.dumps(options).encode())
    name = path.resolve().stem or "corpus"
    target = cache_dir() / "datasets" / f"{name}-{key.hexdigest()[:16]}"
    if is_dataset(target):
        try:
            return load_dataset(target), False
        except InputError:
            pass  # a damaged cache entry is rebuilt below
    prep(
        [corpus],
        target,
        val_frac=val_frac,
        test_frac=test_frac,
        errors=errors,
        glob=glob,
        cache_entry=True,
        tags=tags,
    )
    return load_dataset(target), True


RELEASE_EVERY = 16


def release(ids: np.ndarray) -> None:
    """Unmap the pages a memory-mapped split has touched (they stay in the page cache).

    Each stream touches a few bytes per step, but the kernel maps whole page-cache folios (up to
    2 MB) around them, and they stay mapped: without this, RSS would creep up by the corpus size over
    an epoch. Dropping the mappings now and then keeps it flat; the data is re-read from cache.
    """
    m = getattr(ids, "_mmap", None)
    if m is not None and hasattr(mmap, "MADV_DONTNEED") and hasattr(m, "madvise"):
        m.madvise(mmap.MADV_DONTNEED)


def recorded_dataset(corpus: object) -> tuple[Dataset | None, str]:
    """The dataset a checkpoint's `corpus` record names, if it is still there and still holds the
    same text (same sha256), else None and why not: the one rule for finding a model's own training
    and validation text (`viz` with no file, `sample --novelty`)."""
    record = corpus if isinstance(corpus, dict) else {}
    where = record.get("path")
    if not (isinstance(where, str) and where and is_dataset(Path(where))):
        return None, f"{where or 'no path recorded'}: not found"
    try:
        ds = load_dataset(Path(where))
    except InputError:
        return None, f"{where}: unreadable"
    if ds.meta["sha256"] != record.get("sha256"):
        return None, f"{where}: now holds other text"
    return ds, ""
