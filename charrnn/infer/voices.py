"""A voiced model's voices at inference: their names, the weights a `--tag` asks for, and the
refusals of what cannot be asked (one line each).

Torch-free: `sample` on CPU, `score` and `inspect` read voices without importing torch. It does not
apply a voice to a model (each engine turns weights into its own row bias, `voice_rows`) nor steer
the sampler (`guidance`). Reading a dataset's voices is `charrnn.data`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from charrnn.errors import InputError

# What a `--tag` (or an API's `tag`) asks for: no voice, one voice by name, or {name: weight}.
Tag = str | Mapping[str, float] | None


@dataclass(frozen=True)
class Voices:
    """A voiced model's voices, in the order of its voice ids; `counts[v]` is voice v's character
    counts aligned with the vocabulary (empty when the checkpoint does not keep them)."""

    names: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...] = ()
    chars: Mapping[str, Sequence[int]] = field(default_factory=dict)  # split → chars per voice
    val: Mapping[str, float] = field(default_factory=dict)  # name → validation nats/char

    @staticmethod
    def from_header(header: Any) -> Voices | None:
        """The voices of a checkpoint's validated header; None for a model without voices. A
        voiced model whose file lacks the `voices` metadata gets the names "0", "1", …"""
        model = header.meta.get("model") or {}
        n = model.get("voices") or 0
        return Voices.from_meta(n, header.meta.get("voices")) if n else None

    @staticmethod
    def of(engine: Any) -> Voices | None:
        """An inference engine's voices: from its checkpoint's header, or nameless ("0", "1", …)
        for one built from tensors; None for a model without voices."""
        if engine.header is not None:
            return Voices.from_header(engine.header)
        n = engine.cfg.voices
        return Voices.from_meta(n, None) if n else None

    @staticmethod
    def from_meta(n: int, meta: Mapping[str, Any] | None) -> Voices:
        """n voices described by a checkpoint's `voices` metadata (None: nameless)."""
        meta = meta or {}
        names = meta.get("names")
        if not isinstance(names, list) or len(names) != n:
            names = [str(i) for i in range(n)]
        counts = meta.get("counts")
        ok = isinstance(counts, list) and len(counts) == n
        return Voices(
            tuple(str(x) for x in names),
            tuple(tuple(int(c) for c in row) for row in counts) if ok else (),  # type: ignore[union-attr]
            meta.get("chars") if isinstance(meta.get("chars"), dict) else {},
            meta.get("val") if isinstance(meta.get("val"), dict) else {},
        )

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """A voice's id; an unknown name is one line listing the model's voices."""
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(
                f"unknown voice {name!r}; this model's voices: {', '.join(self.names)}"
            ) from None

    def weights(self, tag: Tag) -> np.ndarray | None:
        """The voice weights a tag asks for (length V, summing to 1); None for no voice."""
        if tag is None:
            return None
        mix = {tag: 1.0} if isinstance(tag, str) else dict(tag)
        if not mix:
            raise InputError("a voice mix needs at least one voice")
        out = np.zeros(len(self.names), dtype=np.float64)
        for name, w in mix.items():
            if not isinstance(name, str):
                raise InputError(f"a voice is named by a string, got {name!r}")
            out[self.index(name)] += _weight(name, w)
        total = out.sum()
        if total <= 0:
            raise InputError("voice weights are all zero; give at least one a positive weight")
        return out / total

    def start_counts(self, weights: np.ndarray | None) -> np.ndarray | None:
        """Character frequencies an unprimed first draw uses: the voice's own, or for a mix the
        weighted mix of the voices' frequencies; None (the corpus's) without a voice or counts."""
        if weights is None or not self.counts:
            return None
        counts = np.asarray(self.counts, dtype=np.float64)
        sums = np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        return weights @ (counts / sums)

    def priors(self, kind: str = "uniform") -> np.ndarray:
        """Prior probability of each voice for attribution: uniform, or `corpus` (each voice's
        share of the training characters)."""
        if kind == "uniform":
            return np.full(len(self.names), 1.0 / len(self.names))
        if kind != "corpus":
            raise InputError(f"unknown prior {kind!r}; choose uniform or corpus")
        train = self.chars.get("train")
        if not isinstance(train, list) or len(train) != len(self.names) or sum(train) <= 0:
            raise InputError("--prior corpus: this checkpoint does not record its voices' sizes")
        shares = np.asarray(train, dtype=np.float64)
        return shares / shares.sum()


def _weight(name: str, w: object) -> float:
    if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
        raise InputError(f"voice {name!r}: the weight must be a number, got {w!r}")
    if w < 0:
        raise InputError(f"voice {name!r}: weights must be >= 0, got {w}")
    return float(w)


def parse_tags(items: Sequence[str]) -> dict[str, float]:
    """`--tag NAME` or `--tag NAME=WEIGHT` items → {name: weight}. The last `=` splits (a name has
    none); a bare name weighs 1; a name given twice is refused, as are negative weights."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        if not sep:
            name, value = item, "1"
        if not name:
            raise InputError(f"--tag takes NAME or NAME=WEIGHT, got {item!r}")
        try:
            weight = float(value)
        except ValueError:
            raise InputError(f"--tag {item!r}: {value!r} is not a number") from None
        if name in out:
            raise InputError(f"--tag {name!r} is given twice")
        out[name] = _weight(name, weight)
    return out


def check_strength(strength: float) -> float:
    """--tag-strength: 1 is the plain voiced model, above 1 further toward the voice, 0 the
    untagged model; below 0 is refused."""
    if isinstance(strength, bool) or not isinstance(strength, int | float):
        raise InputError(f"--tag-strength must be a number, got {strength!r}")
    if not math.isfinite(strength) or strength < 0:
        raise InputError(f"--tag-strength must be >= 0, got {strength}")
    return float(strength)


def resolve(voices: Voices | None, tag: Tag, strength: float = 1.0) -> np.ndarray | None:
    """The weights of a tag for a model (None: no voice), refusing a tag on a model without voices
    and a strength other than 1 without a tag."""
    check_strength(strength)
    if voices is None:
        if tag is not None:
            raise InputError("this model has no voices; leave out --tag")
        return None
    weights = voices.weights(tag)
    if weights is None and strength != 1:
        raise InputError("--tag-strength steers toward a voice; give one with --tag")
    return weights
