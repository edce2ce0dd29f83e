"""Fine-tuning vs training from scratch on a small text, with the same time budget.

The target text is the last `--chars` characters of tiny-shakespeare (written to a temporary file, never
into the project): text from the same corpus's validation split, so a source model trained on the
first 90 % (`charrnn train tinyshakespeare.txt`, e.g. runs/tinyshakespeare/best.ckpt) has never seen
it. Both runs prepare that text the same way (last 10 % for validation) and report their best
validation loss (stateful, the whole split); the source model's loss on that validation split before
any fine-tuning is reported too. `--variants "lr=0.012;lr=0.001,warmup=100"` tries other fine-tuning
options (each its own run; the default is charrnn's fine-tuning defaults alone).
Run one at a time on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import SHAKESPEARE, report


def zero_shot(source: str, target: Path) -> float:
    """The source model's validation loss on the target text's validation split, untrained."""
    import torch

    from charrnn import checkpoint
    from charrnn.data.dataset import resolve_dataset
    from charrnn.model import load_model
    from charrnn.training.distributed import World
    from charrnn.training.evaluate import evaluate
    from charrnn.training.finetune import reencode
    from charrnn.vocab import Vocab

    header = checkpoint.read_header(source)
    ds, _ = resolve_dataset(str(target))
    ds = reencode(ds, Vocab.from_json(header.meta["vocab"]))
    model = load_model(header)
    return evaluate(model, ds.split("val"), torch.device("cpu"), World())[0]


def train(target: Path, out: Path, budget: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "charrnn", "train", str(target), "--time-budget", budget]
    cmd += ["--out", str(out), "--json", "--quiet", "--overwrite", *extra]
    result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    meta = json.loads(
        subprocess.run(
            [sys.executable, "-m", "charrnn", "inspect", result["best_path"], "--json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    m = meta["model"]
    return {
        "val_loss": round(result["best_val_loss"], 4),
        "best_step": result["best_step"],
        "steps": result["step"],
        "model": f"{m['cell']} {m['layers']}x{m['hidden']} dropout {m['dropout']}",
        "lr": meta["training"]["config"]["lr"],
        "warmup": meta["training"]["config"]["warmup"],
        "eval_every": meta["training"]["config"]["eval_every"],
    }


def options(variant: str, source: str | None) -> list[str]:
    """'lr=0.001,warmup=5' → ['--init-from', source, '--lr', '0.001', '--warmup', '5']."""
    out = ["--init-from", source] if source else []
    for pair in filter(None, variant.split(",")):
        key, value = pair.split("=")
        out += [f"--{key.strip().replace('_', '-')}", value.strip()]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--source", default="runs/tinyshakespeare/best.ckpt")
    ap.add_argument("--chars", type=int, default=100_000)
    ap.add_argument("--budget", default="3m")
    ap.add_argument(
        "--variants", default="", help="';'-separated option sets, e.g. lr=0.001,warmup=5"
    )
    ap.add_argument("--skip-scratch", action="store_true")
    ap.add_argument("--scratch-options", default="", help="e.g. eval_every=50")
    args = ap.parse_args()
    text = SHAKESPEARE.read_text(encoding="utf-8")[-args.chars :]
    figures: dict = {"budget": args.budget, "target_chars": len(text), "source": args.source}
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp, "target.txt")
        target.write_text(text, encoding="utf-8")
        figures["source_val_loss_before"] = round(zero_shot(args.source, target), 4)
        if not args.skip_scratch:
            extra = options(args.scratch_options, None)
            figures["scratch"] = {"options": args.scratch_options} | train(
                target, Path(tmp, "scratch"), args.budget, extra
            )
        variants = args.variants.split(";")  # "" is the fine-tuning defaults alone
        figures["fine_tuned"] = [
            {"options": v}
            | train(target, Path(tmp, f"ft{i}"), args.budget, options(v, args.source))
            for i, v in enumerate(variants)
        ]
    report("finetune", figures)


if __name__ == "__main__":
    main()
