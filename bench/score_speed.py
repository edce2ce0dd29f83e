"""Scoring speed: `Scorer.score` (numpy, one stream, each layer's input projection for a chunk as one
product) against the plain torch program a user would write (the module's forward over the whole
text as one fused `nn.LSTM` call, batch 1, then cross-entropy), 2×512 LSTM, on tiny-shakespeare's
validation text. The issue's target is absolute: at least 5,000 chars/s on this machine."""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import SHAKESPEARE, report, timeit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chars", type=int, default=30_000)
    args = ap.parse_args()
    from charrnn.infer.numpy_engine import Engine
    from charrnn.infer.score import Scorer
    from charrnn.model import CharRNN, ModelConfig
    from charrnn.vocab import Vocab

    text = SHAKESPEARE.read_text(encoding="utf-8")
    text = text[len(text) - len(text) // 10 :][: args.chars]
    vocab = Vocab.from_text(SHAKESPEARE.read_text(encoding="utf-8"))
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=vocab.size, cell="lstm", layers=2, hidden=512, embed=64)
    model = CharRNN(cfg).eval()
    scorer = Scorer(Engine(cfg, vocab, {k: v.numpy() for k, v in model.state_dict().items()}))
    ids = torch.tensor([vocab.index(c) for c in "\n" + text])[None]

    def plain() -> float:
        with torch.no_grad():
            logits, _ = model(ids[:, :-1])
            return torch.nn.functional.cross_entropy(logits[0], ids[0, 1:]).item()

    ours = scorer.score(text).nats_per_char
    assert abs(ours - plain()) < 1e-4, (ours, plain())
    t_plain = timeit(plain, repeat=3)
    t_ours = timeit(lambda: scorer.score(text), repeat=3)
    report(
        "score_speed_lstm",
        {
            "model": "lstm 2x512, tiny-shakespeare validation text",
            "chars": len(text),
            "charrnn_chars_per_sec": round(len(text) / t_ours, 1),
            "torch_module_forward_chars_per_sec": round(len(text) / t_plain, 1),
            "ratio": round(t_plain / t_ours, 2),
            "target_chars_per_sec": 5000,
            "numpy_threads": scorer.engine.threads,
            "nats_per_char_agree": bool(np.isclose(ours, plain(), atol=1e-4)),
        },
    )


if __name__ == "__main__":
    main()
