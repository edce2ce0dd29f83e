"""Sampling speed: charrnn's sampler against the naive loop (one nn.LSTM call per character, softmax,
multinomial), 2×512 LSTM, temperature 0.8; single stream and 64 streams generated as one batch."""

from __future__ import annotations

import argparse

import torch
from common import report, timeit


def naive_loop(model, n: int, temperature: float) -> None:
    """What a user would write: the module's forward per character, state carried."""
    x, state = torch.zeros(1, 1, dtype=torch.long), None
    with torch.no_grad():
        for _ in range(n):
            logits, state = model(x, state)
            probs = torch.softmax(logits[0, -1] / temperature, dim=-1)
            x = torch.multinomial(probs, 1).view(1, 1)
            x.item()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chars", type=int, default=400)
    ap.add_argument("--cell", default="lstm")
    args = ap.parse_args()
    from charrnn.model import CharRNN, ModelConfig
    from charrnn.sampler import Sampler
    from charrnn.vocab import Vocab

    torch.manual_seed(0)
    vocab = Vocab(tuple(chr(c) for c in range(32, 97)))  # 65 characters, like tiny-shakespeare
    model = CharRNN(
        ModelConfig(vocab_size=vocab.size, cell=args.cell, layers=2, hidden=512, embed=64)
    ).eval()
    sampler = Sampler(model, vocab)
    n, default_threads = args.chars, torch.get_num_threads()

    naive = n / timeit(lambda: naive_loop(model, n, 0.8), repeat=3)
    torch.set_num_threads(1)
    naive_1t = n / timeit(lambda: naive_loop(model, n, 0.8), repeat=3)
    single = n / timeit(lambda: sampler.generate("", n, 0.8, rng_seed=1), repeat=5)
    torch.set_num_threads(default_threads)
    single_2t = n / timeit(lambda: sampler.generate("", n, 0.8, rng_seed=1), repeat=5)
    batch = (
        64
        * n
        / timeit(lambda: sampler.generate_batch("", n, 64, temperature=0.8, rng_seed=1), repeat=3)
    )
    report(
        f"sample_speed_{args.cell}",
        {
            "model": f"{args.cell} 2x512, temperature 0.8",
            "naive_chars_per_sec": round(naive, 1),
            "naive_1thread_chars_per_sec": round(naive_1t, 1),
            "charrnn_single_chars_per_sec": round(single, 1),
            "charrnn_single_2threads_chars_per_sec": round(single_2t, 1),
            "charrnn_batch64_chars_per_sec": round(batch, 1),
            "single_ratio": round(single / naive, 2),
            "batch64_ratio": round(batch / naive, 2),
            "threads": {"naive": default_threads, "single": 1, "batch64": default_threads},
        },
    )


if __name__ == "__main__":
    main()
