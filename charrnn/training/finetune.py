"""Starting a new run from a trained model (`charrnn train NEW --init-from CKPT`): the vocabulary
merge, the transplant of the checkpoint's weights into the merged vocabulary, and the record of
where the run came from.

The vocabulary stays sorted by code point, so characters the new text brings are inserted among the
old ones: every old character's embedding row and output row move, intact, to its new id, and only
the new characters' rows are made up. This module does not train; the trainer loads what it returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from charrnn import checkpoint, hub
from charrnn.checkpoint import Header
from charrnn.data.dataset import Dataset
from charrnn.data.voices import VoiceTable
from charrnn.errors import InputError
from charrnn.model_config import model_config
from charrnn.vocab import Vocab

# Model-state keys whose first dimension is the vocabulary: their rows move with the characters.
VOCAB_ROWS = ("embed.weight", "head.weight", "head.bias")


def merge_vocab(old: Vocab, text: Vocab) -> tuple[Vocab, list[str]]:
    """The checkpoint's characters and the new text's, sorted by code point, with the new text's
    counts (0 for characters it lacks); and the characters the checkpoint did not know."""
    counts = dict(zip(text.chars, text.counts or [1] * text.size, strict=True))
    chars = tuple(sorted(set(old.chars) | set(text.chars)))
    new = [c for c in text.chars if c not in old]
    return Vocab(chars, tuple(counts.get(c, 0) for c in chars)), new


@dataclass(frozen=True)
class Reencoded(Dataset):
    """A dataset read through a wider vocabulary: its ids mapped to the ids of `vocab`, a superset
    of the characters it was prepared with (held in memory: a fine-tuning corpus is small); and,
    for labelled text, its voices seen through the model's (`voice_table`, finetune_voices)."""

    lut: np.ndarray | None = None
    voice_table: VoiceTable | None = None

    @property
    def voices(self) -> VoiceTable | None:
        return self.voice_table if self.voice_table is not None else super().voices

    def split(self, name: str) -> np.ndarray:
        ids = super().split(name)
        return self.lut[ids] if self.lut is not None and len(ids) else ids


def revoice(dataset: Dataset, table: VoiceTable) -> Dataset:
    """`dataset` (reencoded or not) with its voices read as `table`."""
    if table == dataset.voices:
        return dataset
    lut = dataset.lut if isinstance(dataset, Reencoded) else None
    return Reencoded(dataset.path, dataset.meta, dataset.vocab, lut, table)


def reencode(dataset: Dataset, vocab: Vocab) -> Dataset:
    """`dataset` with ids in `vocab`; the same object when the vocabularies already agree."""
    if dataset.vocab.chars == vocab.chars:
        return dataset
    missing = [c for c in dataset.vocab.chars if c not in vocab]
    if missing:
        raise InputError(f"the text has characters the model lacks: {missing[:10]!r}")
    lut = np.array([vocab.index(c) for c in dataset.vocab.chars], dtype=np.int32)
    return Reencoded(dataset.path, dataset.meta, vocab, lut)


def transplant(
    tensors: dict[str, torch.Tensor], old: Vocab, merged: Vocab, seed: int
) -> dict[str, torch.Tensor]:
    """The checkpoint's model state for the merged vocabulary. Old characters' rows are copied
    intact to their new ids. A new character's embedding is drawn around the old embeddings' mean
    with their spread (so it looks like a character the layers have seen, not an outlier); its output
    row is zero and its bias is what an old character as frequent in the new text would have, so
    the untrained model already predicts it about as often as the text has it."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.tensor([merged.index(c) for c in old.chars])
    is_new = torch.ones(merged.size, dtype=torch.bool)
    is_new[ids] = False
    out = {k: v.clone() for k, v in tensors.items() if k not in VOCAB_ROWS}
    for key in VOCAB_ROWS:
        src = tensors[key].float()
        rows = torch.zeros((merged.size, *src.shape[1:]), dtype=src.dtype)
        rows[ids] = src
        out[key] = rows
    emb = tensors["embed.weight"].float()
    n_new = int(is_new.sum())
    if n_new:
        noise = torch.randn((n_new, emb.shape[1]), generator=gen)
        out["embed.weight"][is_new] = emb.mean(0) + noise * emb.std(0)
        out["head.bias"][is_new] = _new_biases(tensors["head.bias"].float(), old, merged, is_new)
    return out


def _new_biases(
    bias: torch.Tensor, old: Vocab, merged: Vocab, is_new: torch.Tensor
) -> torch.Tensor:
    """Biases for new characters: log of their frequency in the new text plus the old characters'
    mean offset between bias and log frequency in the old text (the old minimum without counts)."""
    old_counts = np.asarray(old.counts or [], dtype=np.float64)
    new_counts = np.asarray(merged.counts or [1] * merged.size, dtype=np.float64)
    seen = old_counts > 0
    if not old_counts.size or not seen.any():
        return torch.full((int(is_new.sum()),), float(bias.min()))
    log_f = np.log(old_counts[seen] / old_counts.sum())
    offset = float(np.mean(bias.numpy()[seen] - log_f))
    total = max(new_counts.sum(), 1.0)
    f = np.maximum(new_counts[is_new.numpy()], 1.0) / total
    return torch.tensor(np.minimum(np.log(f) + offset, float(bias.max())), dtype=torch.float32)


@dataclass(frozen=True)
class Start:
    """What a fine-tuning run starts from: weights for the merged vocabulary and the record the
    checkpoint keeps (`init_from`, shown by `inspect`)."""

    tensors: dict[str, torch.Tensor]
    vocab: Vocab
    new_chars: list[str]
    record: dict
    new_voices: list[str] = field(default_factory=list)


def start_from(
    header: Header, text: Vocab, seed: int, voices: list[str] | None = None, voice_dim: int = 0
) -> Start:
    """Read the checkpoint's sampling weights (the average where it has one: what `sample` uses)
    and fit them to the merged vocabulary and, for a voiced run, to the model's voices `voices`
    (finetune_voices.model_voices; `voice_dim` the width a source without voices gets)."""
    from charrnn.training.finetune_voices import source_names, transplant_voices

    model_config(header)  # shapes checked before anything is read
    old = Vocab.from_json(header.meta["vocab"], header.meta["vocab_counts"] or None)
    merged, new = merge_vocab(old, text)
    prefix = checkpoint.sampling_prefix(header)
    loaded = checkpoint.load_tensors(header)
    weights = {k.removeprefix(prefix): v for k, v in loaded.items() if k.startswith(prefix)}
    state, best = header.meta["state"], header.meta["state"].get("best_val_loss")
    record = {
        "path": str(header.path),
        "sha256": checkpoint.fingerprint(header.path),
        "corpus": header.meta["corpus"].get("name"),
        "step": state.get("step", 0),
        "best_val_loss": best if isinstance(best, int | float) and math.isfinite(best) else None,
        "weights": "average" if prefix == checkpoint.AVERAGE else "raw",
        "vocab_size": old.size,
        "new_chars": new,
    }
    where = hub.origin(header.path)
    if where is not None:  # a Hub model: its card names it as base_model
        record["hub"] = f"{where['repo']}@{where['commit']}"
    tensors = transplant(weights, old, merged, seed)
    had, new_voices = source_names(header.meta), []
    if voices:
        new_voices = [n for n in voices if n not in had]
        record["new_voices"] = new_voices
        tensors = transplant_voices(tensors, had, voices, voice_dim, seed)
    return Start(tensors, merged, new, record, new_voices)
