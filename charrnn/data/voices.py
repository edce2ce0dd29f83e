"""Voices of a labelled corpus: the rule for a voice's name, how the inputs say whose text is whose
(`TagOptions`), and the table a dataset keeps of its voices (`VoiceTable`: names, per-voice
character counts, per-split sizes, and the document spans of each split).

Torch-free (numpy only), so `inspect`, inference and the server can read it. It reads no text
(`data.labelled` does, for `prep`) and trains nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.errors import InputError

# A voice with less text than this cannot be learned or measured apart from the others.
MIN_VOICE_CHARS = 500
TAG_MODES = ("dir", "file")
# Names travel in flags (`--tag NAME=WEIGHT` splits on the last `=`) and in served model names
# (`MODEL:VOICE`) and URLs: no `=`, `:`, `/`, spaces or non-ASCII.
ALLOWED = "1-64 ASCII letters, digits, '_', '-' or '.', starting with a letter or digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_SPLITS = ("train", "val", "test")


def check_name(name: object, where: str) -> str:
    """`name` if it is a valid voice name, else one line naming it, where it came from, and the rule."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"{where}: voice name {name!r} is not allowed; a voice name is {ALLOWED}")
    return name


@dataclass(frozen=True)
class TagOptions:
    """How the inputs are read: `tags_from` "dir" (each subfolder of an input folder is a voice) or
    "file" (each file's stem), or `jsonl` records whose `text_key` holds the text and, with
    `tag_key`, whose `tag_key` names the voice (without it the records are unlabelled text)."""

    tags_from: str | None = None
    jsonl: bool = False
    text_key: str = "text"
    tag_key: str | None = None

    def __post_init__(self) -> None:
        if self.tags_from is not None and self.tags_from not in TAG_MODES:
            raise InputError(f"--tags-from must be dir or file, got {self.tags_from!r}")
        if self.tags_from and self.jsonl:
            raise InputError(
                "--tags-from labels files and folders; --jsonl records name their voice with "
                "--tag-key: give one of them"
            )
        if not self.jsonl and (self.tag_key is not None or self.text_key != "text"):
            raise InputError("--text-key and --tag-key read JSON Lines records: add --jsonl")
        for flag, key in (("--text-key", self.text_key), ("--tag-key", self.tag_key)):
            if key is not None and (not isinstance(key, str) or not key):
                raise InputError(f"{flag} must be a non-empty key name")
        if self.tag_key is not None and self.tag_key == self.text_key:
            raise InputError("--tag-key and --text-key must name different keys")

    @property
    def active(self) -> bool:
        """Whether the inputs are read other than as plain text (labelled, or JSON Lines)."""
        return bool(self.tags_from or self.jsonl)

    @property
    def mode(self) -> str | None:
        """The tag mode a labelled dataset records ("dir", "file" or "jsonl"); None: unlabelled."""
        if self.tags_from:
            return self.tags_from
        return "jsonl" if self.jsonl and self.tag_key is not None else None

    def key(self) -> list:
        """What the dataset cache key adds for these options (the tag mode, names come with the
        sources; the keys)."""
        return [self.tags_from, self.jsonl, self.text_key, self.tag_key]


@dataclass(frozen=True)
class VoiceTable:
    """A labelled dataset's voices (`Dataset.voices`): `names` (sorted; index = voice id),
    `counts` (per voice, character counts aligned with the vocabulary), per-split sizes
    (`chars(split)`) and spans (`spans(split)`: rows [start, length, voice] into that split's ids,
    covering it in order; each voice's part is contiguous, in `names` order)."""

    path: Path
    mode: str
    names: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    split_chars: dict[str, tuple[int, ...]]

    def __len__(self) -> int:
        return len(self.names)

    def named(self, values: Sequence[float | None]) -> dict[str, float]:
        """Per-voice figures by name, those that are None (no figure) left out."""
        return {n: x for n, x in zip(self.names, values, strict=True) if x is not None}

    def chars(self, split: str) -> list[int]:
        """Characters of each voice in the split."""
        return list(self.split_chars[split])

    def recorded_chars(self, split: str) -> list[int]:
        """Per-voice sizes a checkpoint records (a fine-tuned model's table adds the voices this
        text lacks: training.finetune_voices.MergedVoices)."""
        return self.chars(split)

    def offsets(self, split: str) -> list[int]:
        """Where each voice's part of the split starts in its id array."""
        sizes = self.split_chars[split]
        return [int(x) for x in np.concatenate([[0], np.cumsum(sizes)[:-1]])]

    def spans(self, split: str) -> np.ndarray:
        """The split's spans (int64, n × 3), checked against the sizes meta.json records."""
        total = sum(self.split_chars[split])
        if total == 0:
            return np.zeros((0, 3), dtype=np.int64)
        path = self.path / f"spans-{split}.npy"
        try:
            spans = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: cannot read the spans ({e}); re-run prep") from None
        ok = (
            spans.dtype == np.int64
            and spans.ndim == 2
            and spans.shape[1] == 3
            and int(spans[:, 1].sum()) == total
            and bool((spans[:, 1] > 0).all())
            and bool(((spans[:, 2] >= 0) & (spans[:, 2] < len(self.names))).all())
            and bool((spans[:, 0] == np.cumsum(spans[:, 1]) - spans[:, 1]).all())
        )
        if not ok:
            raise InputError(f"{path}: spans do not cover the {split} split; re-run prep")
        return spans

    @classmethod
    def from_meta(cls, path: Path, meta: dict) -> VoiceTable | None:
        """The table meta.json's `voices` describes (None: an unlabelled dataset), checked."""
        record = meta.get("voices")
        if record is None:
            return None
        bad = InputError(f"{path}: dataset meta.json's voices are malformed; re-run prep")
        if not isinstance(record, dict) or record.get("mode") not in (*TAG_MODES, "jsonl"):
            raise bad
        names, counts, chars = record.get("names"), record.get("counts"), record.get("chars")
        if not isinstance(names, list) or not names or names != sorted(set(names)):
            raise bad
        for name in names:
            check_name(name, str(path))
        size = len(meta.get("vocab") or [])
        if (
            not isinstance(counts, list)
            or len(counts) != len(names)
            or not all(isinstance(c, list) and len(c) == size for c in counts)
            or not isinstance(chars, dict)
            or any(not _sizes(chars.get(s), len(names), meta["splits"][s]) for s in _SPLITS)
        ):
            raise bad
        return cls(
            path,
            record["mode"],
            tuple(names),
            tuple(tuple(int(x) for x in c) for c in counts),
            {s: tuple(chars[s]) for s in _SPLITS},
        )


def _sizes(values: object, n: int, total: int) -> bool:
    return (
        isinstance(values, list)
        and len(values) == n
        and all(isinstance(v, int) and v >= 0 for v in values)
        and sum(values) == total
    )
