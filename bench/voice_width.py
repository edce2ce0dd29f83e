"""What the voice columns cost a training step (docs/defaults.md#voices-2026-12-08): the fused
LSTM layer alone at layer-0 widths 64 (the baseline) to 80, and a whole training step of a voiced
1×256 model (character embedding 64 or 48, voice embedding 16) against the unvoiced one, in
alternating repetitions, medians. Run alone (about two minutes on 2 cores).

    python bench/voice_width.py [--reps 16]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from common import report

from charrnn.model import CharRNN, ModelConfig

BENCH = "voice_width"
ROWS, SEQ, HIDDEN = 64, 100, 256


def alternate(fns: dict[str, Callable[[], None]], reps: int, inner: int) -> dict[str, float]:
    """Median seconds per call of each fn, run in turn `reps` times (`inner` calls each)."""
    for fn in fns.values():
        for _ in range(2):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t = time.perf_counter()
            for _ in range(inner):
                fn()
            times[k].append((time.perf_counter() - t) / inner)
    return {k: statistics.median(v) for k, v in times.items()}


def layer(width: int) -> Callable[[], None]:
    lstm = torch.nn.LSTM(width, HIDDEN, batch_first=True)
    x = torch.randn(ROWS, SEQ, width, requires_grad=True)

    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = lstm(x)
        out.float().sum().backward()

    return run


def step(vocab: int, embed: int, voiced: bool) -> Callable[[], None]:
    """One training step as the trainer takes it (bf16 autocast, weight-drop, locked dropout)."""
    kw = {"voices": 5, "voice_dim": 16} if voiced else {}
    cfg = ModelConfig(vocab_size=vocab, layers=1, hidden=HIDDEN, embed=embed, weight_drop=0.2, **kw)
    model = CharRNN(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randint(0, vocab, (ROWS, SEQ)), torch.randint(0, vocab, (ROWS, SEQ))
    v = torch.randint(0, 6, (ROWS, SEQ)) if voiced else None

    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, _ = model(x, None, v)
            loss = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, vocab), y.reshape(-1)
            )
        opt.zero_grad()
        loss.backward()
        opt.step()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    widths = alternate({str(w): layer(w) for w in (64, 68, 69, 72, 80)}, args.reps, 4)
    out: dict = {"layer_speed_vs_64": {w: widths["64"] / t for w, t in widths.items()}}
    for vocab in (648, 99):
        t = alternate(
            {
                "plain": step(vocab, 64, False),
                "64+16": step(vocab, 64, True),
                "48+16": step(vocab, 48, True),
            },
            args.reps,
            5,
        )
        out[f"step_speed_vs_plain_vocab{vocab}"] = {
            k: t["plain"] / s for k, s in t.items() if k != "plain"
        }
    report(BENCH, out)


if __name__ == "__main__":
    main()
