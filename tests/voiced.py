"""Voiced checkpoints for the inference tests, built here in torch: a tiny model trained briefly on
two made-up alphabets (voice a writes only A_LETTERS, voice b only B_LETTERS), and untrained ones
for parity. Saved as real checkpoints with the `voices` metadata a voiced training run writes."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from charrnn import checkpoint
from charrnn.model import CharRNN, ModelConfig
from charrnn.training.config import TrainConfig
from charrnn.training.state import metadata
from charrnn.vocab import Vocab

A_LETTERS, B_LETTERS = "abcdefg", "tuvwxyz"


def voice_text(letters: str, n: int, newline: bool, seed: int) -> str:
    """n characters of words made of these letters, with spaces (and newlines) between."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < n:
        word = "".join(rng.choice(letters) for _ in range(rng.randint(2, 6)))
        gap = "\n" if newline and rng.random() < 0.15 else " "
        out.append(word + gap)
        size += len(word) + 1
    return "".join(out)[:n]


def vocab_of(newline: bool, texts: list[str]) -> Vocab:
    chars = ("\n" if newline else "") + " " + A_LETTERS + B_LETTERS
    joined = "".join(texts)
    return Vocab(tuple(chars), tuple(joined.count(c) for c in chars))


def save_voiced(path: Path, model: CharRNN, vocab: Vocab, texts: list[str]) -> Path:
    """The model as a format-4 checkpoint with `voices` metadata (names, counts, sizes, val)."""
    meta = metadata(model.cfg, TrainConfig(), vocab, {}, {}, {})
    meta |= {"history": {"train": [], "val": []}, "parameters": 0}
    counts = [[t.count(c) for c in vocab.chars] for t in texts]
    sizes = [len(t) for t in texts]
    meta["voices"] = {
        "names": ["a", "b"],
        "counts": counts,
        "chars": {
            "train": [s * 9 // 10 for s in sizes],
            "val": [s // 10 for s in sizes],
            "test": [0, 0],
        },
        "val": {"a": 1.5, "b": 1.25},
        "balance": "equal",
        "untagged_share": 0.25,
    }
    checkpoint.save(path, {f"model.{k}": v for k, v in model.state_dict().items()}, meta)
    return path


def random_voiced(path: Path, cell: str = "lstm", layers: int = 2, seed: int = 0) -> Path:
    """An untrained voiced model (weights doubled so that states and voices move)."""
    torch.manual_seed(seed)
    texts = [voice_text(A_LETTERS, 200, True, 1), voice_text(B_LETTERS, 300, True, 2)]
    vocab = vocab_of(True, texts)
    cfg = ModelConfig(
        vocab_size=vocab.size, cell=cell, layers=layers, hidden=20, embed=6, voices=2, voice_dim=4
    )
    model = CharRNN(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    return save_voiced(path, model.eval(), vocab, texts)


def trained_voiced(path: Path, newline: bool, steps: int = 300, seed: int = 0) -> Path:
    """A 1×48 LSTM conditioned on voices a and b, trained on windows of each voice's text with
    its voice (a quarter of them with no voice, as a voiced training run drops some)."""
    torch.manual_seed(seed)
    texts = [voice_text(A_LETTERS, 6000, newline, 1), voice_text(B_LETTERS, 6000, newline, 2)]
    vocab = vocab_of(newline, texts)
    ids = [torch.tensor(vocab.encode(t)) for t in texts]
    cfg = ModelConfig(
        vocab_size=vocab.size, layers=1, hidden=48, embed=8, dropout=0.0, voices=2, voice_dim=4
    )
    model = CharRNN(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(seed)
    rows, seq = 16, 32
    for _ in range(steps):
        who = torch.randint(0, 2, (rows,), generator=gen)
        starts = torch.randint(0, 6000 - seq - 1, (rows,), generator=gen)
        win = torch.stack(
            [ids[int(w)][int(s) : int(s) + seq + 1] for w, s in zip(who, starts, strict=True)]
        )
        voice = torch.where(torch.rand(rows, generator=gen) < 0.25, 2, who)
        logits, _ = model(win[:, :-1], None, voice[:, None].expand(rows, seq))
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, vocab.size), win[:, 1:].reshape(-1)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return save_voiced(path, model.eval(), vocab, texts)
