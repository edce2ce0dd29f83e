"""How many validation characters it takes to rank checkpoints: the measurement behind
`charrnn.data.split.MIN_VAL_CHARS`, the size under which `train` keeps all of a raw text for training.

A small model is trained on tiny-shakespeare with snapshots along the way. Its validation split is then
cut into every window of n contiguous characters, each scored from a fresh state as a validation split
of n characters would be, and for each n the script reports the standard error of that estimate and
how often it ranks two snapshots in the order the whole split (111,539 characters) ranks them.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import numpy as np
from common import SHAKESPEARE, report


def snapshots(steps: int, count: int, hidden: int, seed: int) -> tuple[list, object]:
    """A 2-layer LSTM trained for `steps` steps; its model at `count` evenly spaced steps."""
    from charrnn import checkpoint
    from charrnn.data.dataset import resolve_dataset
    from charrnn.model import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.loop import Trainer

    ds, _ = resolve_dataset(str(SHAKESPEARE), val_frac=0.1)
    model = ModelConfig(vocab_size=ds.vocab.size, hidden=hidden, embed=32, dropout=0.0)
    cfg = TrainConfig(
        batch_size=32, seq_len=64, max_steps=steps, eval_every=10**9, warmup=20, rng_seed=seed
    )
    models, header = [], None
    with tempfile.TemporaryDirectory() as out:
        for k in range(1, count + 1):
            t = Trainer(ds, model, cfg, Path(out), resume=header)
            at = steps * k // count
            t.should_stop = lambda t=t, at=at: "interrupted" if t.progress.step >= at else None
            t.run()
            models.append(copy.deepcopy(t.model).float().eval())
            header = checkpoint.read_header(Path(out) / "last.ckpt")
    return models, ds.split("val")


def window_losses(model, val: np.ndarray, n: int) -> np.ndarray:
    """Mean loss of every non-overlapping n-character window, each scored from a zero state."""
    import torch
    import torch.nn.functional as F

    rows = (len(val) - 1) // n
    idx = np.arange(rows)[:, None] * n + np.arange(n + 1)[None, :]
    ids = torch.from_numpy(np.asarray(val[idx], dtype=np.int64))
    out = []
    with torch.no_grad():
        for chunk in ids.split(max(1, 200_000 // n)):
            logits, _ = model(chunk[:, :-1])
            loss = F.cross_entropy(logits.transpose(1, 2), chunk[:, 1:], reduction="none")
            out.append(loss.mean(1).double())
    return torch.cat(out).numpy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--snapshots", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--rng-seed", type=int, default=1337)
    ap.add_argument("--sizes", default="30,100,300,1000,3000,10000")
    args = ap.parse_args()
    models, val = snapshots(args.steps, args.snapshots, args.hidden, args.rng_seed)
    sizes = [int(s) for s in args.sizes.split(",")]
    whole = [float(window_losses(m, val, len(val) - 1)[0]) for m in models]
    per_n = {n: [window_losses(m, val, n) for m in models] for n in sizes}
    at = [args.steps * k // args.snapshots for k in range(1, args.snapshots + 1)]
    figures: dict = {"steps": at, "whole_split_loss": [round(x, 4) for x in whole], "sizes": {}}
    for n, losses in per_n.items():
        pairs = []
        for a in range(len(models) - 1):
            d = losses[a] - losses[a + 1]  # > 0 where the window ranks the later snapshot better
            truth = np.sign(whole[a] - whole[a + 1])
            pairs.append(
                {
                    "steps": [at[a], at[a + 1]],
                    "gap": round(whole[a] - whole[a + 1], 4),
                    "gap_se": round(float(d.std(ddof=1)), 4),
                    "ranked_right": round(float(np.mean(np.sign(d) == truth)), 3),
                }
            )
        figures["sizes"][n] = {
            "windows": len(losses[-1]),
            "loss_se": round(float(losses[-1].std(ddof=1)), 4),
            "pairs": pairs,
        }
    report("val_split_noise", figures, hidden=args.hidden, rng_seed=args.rng_seed)


if __name__ == "__main__":
    main()
