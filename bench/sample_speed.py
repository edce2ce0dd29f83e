"""Sampling speed: charrnn's numpy engine against the naive torch loop (one nn.LSTM call per
character, softmax, multinomial) with oneDNN disabled (its faster setting for this), 2×512 LSTM,
temperature 0.8: one stream (default threads, and one thread), and 64 streams as one batch (the
default fast mode, and --deterministic); then one stream again while another process keeps one core
busy (the default must not lose to one thread)."""

from __future__ import annotations

import argparse
import subprocess
import sys

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
    ap.add_argument("--chars", type=int, default=600)
    ap.add_argument("--cell", default="lstm")
    args = ap.parse_args()
    from charrnn.infer.numpy_engine import Engine
    from charrnn.infer.sampler import Sampler
    from charrnn.model import CharRNN, ModelConfig
    from charrnn.vocab import Vocab

    torch.manual_seed(0)
    vocab = Vocab(tuple(chr(c) for c in range(32, 97)))  # 65 characters, like tiny-shakespeare
    cfg = ModelConfig(vocab_size=vocab.size, cell=args.cell, layers=2, hidden=512, embed=64)
    model = CharRNN(cfg).eval()
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    n = args.chars
    torch.backends.mkldnn.enabled = False
    naive = n / timeit(lambda: naive_loop(model, n, 0.8), repeat=3)
    fast = Sampler(Engine(cfg, vocab, weights))
    one = Sampler(Engine(cfg, vocab, weights, threads=1))
    single = n / timeit(lambda: fast.generate("A", n, 0.8, rng_seed=1), repeat=5)
    single_1t = n / timeit(lambda: one.generate("A", n, 0.8, rng_seed=1), repeat=5)
    m = n // 3
    batch = 64 * m / timeit(lambda: fast.generate_batch("A", m, 64, 0.8, rng_seed=1), repeat=3)
    exact = Sampler(Engine(cfg, vocab, weights, deterministic=True))
    batch_exact = (
        64 * m / timeit(lambda: exact.generate_batch("A", m, 64, 0.8, rng_seed=1), repeat=3)
    )
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        loaded = n / timeit(lambda: fast.generate("A", n, 0.8, rng_seed=1), repeat=5)
        loaded_1t = n / timeit(lambda: one.generate("A", n, 0.8, rng_seed=1), repeat=5)
    finally:
        busy.kill()
    report(
        f"sample_speed_{args.cell}",
        {
            "model": f"{args.cell} 2x512, temperature 0.8",
            "naive_mkldnn_off_chars_per_sec": round(naive, 1),
            "charrnn_single_chars_per_sec": round(single, 1),
            "charrnn_single_1thread_chars_per_sec": round(single_1t, 1),
            "charrnn_batch64_chars_per_sec": round(batch, 1),
            "charrnn_batch64_deterministic_chars_per_sec": round(batch_exact, 1),
            "single_ratio": round(single / naive, 2),
            "batch64_ratio": round(batch / naive, 2),
            "batch64_deterministic_ratio": round(batch_exact / naive, 2),
            "other_core_busy_single_chars_per_sec": round(loaded, 1),
            "other_core_busy_single_1thread_chars_per_sec": round(loaded_1t, 1),
            "threads": {"naive": torch.get_num_threads(), "charrnn": fast.engine.threads},
        },
    )


if __name__ == "__main__":
    main()
