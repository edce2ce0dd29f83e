"""Fine-tuning with voices (`train NEW --tags-from dir --init-from CKPT`): the model's voices after
the run, the labelled text seen through them, and the transplant of the voice weights.

As with characters, voices join and none is lost. The model's voices are the source's and the
text's, sorted by name (a source without voices takes the text's); a voice the text lacks keeps
its row, its per-character counts and its sizes, and simply gets no training text this run (every
balance gives a voice without text no share, and evaluation skips it). A new voice starts at the
source's "no voice" row: the model first writes for it what it writes with no voice given, and
the run moves it from there. A source without voices gets a voice embedding whose columns into
layer 0 are zero, so before the first step it computes exactly what the source did, for any voice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from charrnn.data.voices import VoiceTable
from charrnn.vocab import Vocab

if TYPE_CHECKING:
    import torch

LAYER0 = "rnn.weight_ih_l0"


def model_voices(source_meta: dict, text: VoiceTable | None, conditioned: bool) -> list[str]:
    """The fine-tuned model's voices, sorted (empty: the model stays without voices). The source's
    names come from its `voices` record ("0", "1", ... where an early file lacks it)."""
    had = source_names(source_meta)
    if text is None or not (conditioned or had):
        return list(had)
    return sorted(set(had) | set(text.names))


def source_names(meta: dict) -> list[str]:
    """A checkpoint's voice names (empty: a model without voices)."""
    n = int(meta["model"].get("voices") or 0)
    names = (meta.get("voices") or {}).get("names")
    if not n:
        return []
    return (
        list(names) if isinstance(names, list) and len(names) == n else [str(i) for i in range(n)]
    )


@dataclass(frozen=True)
class MergedVoices(VoiceTable):
    """A labelled text's voices seen through the model's wider, sorted set: `names` are the model's,
    a voice the text lacks has no characters in any split (the text's parts stay in name order),
    and span voice ids are the model's (`lut`: text voice id → model voice id). `inherited`: the
    sizes the model's record keeps for the voices the text lacks (from the checkpoint it came from)."""

    lut: tuple[int, ...] = ()
    inherited: dict[str, dict[str, int]] = field(default_factory=dict)

    def spans(self, split: str) -> np.ndarray:
        spans = super().spans(split).copy()
        spans[:, 2] = np.asarray(self.lut, dtype=np.int64)[spans[:, 2]]
        return spans

    def recorded_chars(self, split: str) -> list[int]:
        """Per-voice sizes for the checkpoint: this text's, and the inherited voices' from before."""
        got = self.chars(split)
        return [
            self.inherited[n][split] if n in self.inherited else c
            for n, c in zip(self.names, got, strict=True)
        ]


def merge_table(
    text: VoiceTable,
    names: list[str],
    text_vocab: Vocab,
    vocab: Vocab,
    record: dict | None,
    record_vocab: list[str] | None,
) -> VoiceTable:
    """`text` through the model's voices `names` (the text's table itself when they agree), with
    per-voice counts on the run's vocabulary `vocab`; `record`/`record_vocab`: the checkpoint's
    voices record and vocabulary, which the voices the text lacks keep."""
    if list(text.names) == names and text_vocab.chars == vocab.chars:
        return text
    counts, inherited = [], {}
    kept = record or {}
    old_names = kept.get("names") if isinstance(kept.get("names"), list) else []
    for name in names:
        if name in text.names:
            counts.append(_on(vocab, text_vocab.chars, text.counts[text.names.index(name)]))
            continue
        j = old_names.index(name) if name in old_names else None
        row = _pick(kept.get("counts"), j)
        width = len(record_vocab or [])
        ok = isinstance(row, list) and len(row) == width and all(_count(x) for x in row)
        counts.append(_on(vocab, record_vocab or [], row if ok else [0] * width))
        chars = kept.get("chars") if isinstance(kept.get("chars"), dict) else {}
        inherited[name] = {
            s: n if _count(n := _pick(chars.get(s), j)) else 0 for s in ("train", "val", "test")
        }
    sizes = {
        s: tuple(text.chars(s)[text.names.index(n)] if n in text.names else 0 for n in names)
        for s in ("train", "val", "test")
    }
    lut = tuple(names.index(n) for n in text.names)
    return MergedVoices(text.path, text.mode, tuple(names), tuple(counts), sizes, lut, inherited)


def _pick(values: object, j: int | None) -> object:
    """values[j] from a checkpoint's record (data, so checked), else None."""
    if j is None or not isinstance(values, list) or j >= len(values):
        return None
    return values[j]


def _count(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _on(vocab: Vocab, chars: list[str] | tuple[str, ...], row) -> tuple[int, ...]:
    """Counts given over `chars`, moved onto `vocab` (0 for characters `chars` lacks)."""
    by_char = dict(zip(chars, row, strict=True))
    return tuple(int(by_char.get(c, 0)) for c in vocab.chars)


def transplant_voices(
    tensors: dict[str, torch.Tensor],
    old: list[str],
    names: list[str],
    voice_dim: int,
    seed: int,
) -> dict[str, torch.Tensor]:
    """The model state with the voice embedding for `names` (+ the "no voice" row last). From a
    voiced source (`old` its names): its rows by name, new voices at its "no voice" row. From an
    unvoiced one: a fresh embedding (nn.Embedding's N(0, 1)) whose columns of layer 0's input
    weights are zero, so the model computes what the source did until training moves them."""
    import torch

    out = dict(tensors)
    if old:
        emb = tensors["voice.weight"]
        none = emb[-1]
        rows = [emb[old.index(n)] if n in old else none for n in names]
        out["voice.weight"] = torch.stack([*rows, none]).clone()
        return out
    gen = torch.Generator().manual_seed(seed + 0x7A65)
    w = tensors[LAYER0]
    out["voice.weight"] = torch.randn((len(names) + 1, voice_dim), generator=gen).to(w.dtype)
    out[LAYER0] = torch.cat([w, torch.zeros((w.shape[0], voice_dim), dtype=w.dtype)], dim=1)
    return out
