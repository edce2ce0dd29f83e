"""bf16 must not cost quality: validation loss after the same number of steps, fp32 vs bf16
(charrnn's own loop, same seed and data, evaluated statefully over the whole validation split)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import SHAKESPEARE, report


def val_after(cell: str, precision: str, steps: int) -> float:
    from charrnn.data.dataset import resolve_dataset
    from charrnn.model import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.loop import Trainer

    ds, _ = resolve_dataset(str(SHAKESPEARE))
    cfg = TrainConfig(
        batch_size=64, seq_len=100, max_steps=steps, eval_every=10**9, precision=precision
    )
    with tempfile.TemporaryDirectory() as out:
        model = ModelConfig(vocab_size=ds.vocab.size, cell=cell, layers=2, hidden=512, embed=64)
        return Trainer(ds, model, cfg, Path(out)).run().best_val_loss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    for cell in args.cells.split(","):
        fp32, bf16 = val_after(cell, "fp32", args.steps), val_after(cell, "bf16", args.steps)
        report(
            f"bf16_quality_{cell}",
            {
                "steps": args.steps,
                "val_loss_fp32": round(fp32, 4),
                "val_loss_bf16": round(bf16, 4),
                "relative_difference": round((bf16 - fp32) / fp32, 4),
            },
        )


if __name__ == "__main__":
    main()
