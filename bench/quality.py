"""Quality per CPU-minute: what `charrnn train tinyshakespeare.txt --time-budget B` (all defaults)
reaches on the validation split (last 10 %, evaluated statefully over the whole split), against a plain
2×512 LSTM (Adam 2e-3, no dropout, no schedule, fp32, batch 64 × seq 100) given the same wall budget
and the same evaluation, best of evaluations every 250 steps. Run one at a time on an idle machine.
`--rng-seed N` measures the defaults on another draw; options it does not know go to `charrnn train`
(tuning runs, recorded as `quality_<budget>_tuning`). `--resume` finishes a run kept with `--out` that
was stopped (a machine or session that ended): `charrnn train --resume` continues it exactly, counting
its earlier time against the budget, so an hour-long run may span sessions."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import SHAKESPEARE, report
from torch import nn


class Plain(nn.Module):
    """The straightforward model: PyTorch's default initialisation, no dropout."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        from charrnn.model import ModelConfig

        self.cfg = ModelConfig(vocab_size=vocab)
        self.emb, self.rnn, self.head = (
            nn.Embedding(vocab, 64),
            nn.LSTM(64, 512, 2, batch_first=True),
            nn.Linear(512, vocab),
        )

    def forward(self, x, state=None):
        out, state = self.rnn(self.emb(x), state)
        return self.head(out), state


def baseline(budget: float) -> tuple[float, int]:
    from charrnn.data.dataset import resolve_dataset
    from charrnn.training.distributed import World
    from charrnn.training.evaluate import evaluate

    ds, _ = resolve_dataset(str(SHAKESPEARE))
    ids, val = np.asarray(ds.split("train")), ds.split("val")
    torch.manual_seed(0)
    model = Plain(ds.vocab.size)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    B, S = 64, 100
    L = (len(ids) - 1) // B
    starts = np.arange(B)[:, None] * L
    per_epoch, state, best, step = L // S, None, float("inf"), 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < budget:
        t = step % per_epoch
        if t == 0:
            state = None
        w = torch.from_numpy(ids[starts + t * S + np.arange(S + 1)].astype(np.int64))
        logits, state = model(w[:, :-1], state)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), w[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        state = tuple(s.detach() for s in state)
        step += 1
        if step % 250 == 0:
            best = min(best, evaluate(model, val, torch.device("cpu"), World())[0])
            model.train()
    return min(best, evaluate(model, val, torch.device("cpu"), World())[0]), step


def run_charrnn(budget: str, out: str | None, extra: list[str], resume: bool = False) -> dict:
    """Train with charrnn's defaults (plus `extra`) for `budget`, or finish the run stopped in `out`
    (`resume`); its best evaluation and model."""
    from charrnn.checkpoint import read_header

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "charrnn", "train", str(SHAKESPEARE), "--time-budget", budget]
        cmd += ["--out", out or tmp, "--json", "--quiet", *extra]
        cmd += ["--resume", str(Path(out or tmp, "last.ckpt"))] if resume else ["--overwrite"]
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        m = read_header(result["best_path"]).meta["model"]
        lines = Path(out or tmp, "metrics.jsonl").read_text().splitlines()
        evals = [json.loads(x) for x in lines if '"val_loss"' in x]
    # with weight averaging, each weight set's best on its own (the result takes the better one)
    sets = {
        f"charrnn_best_{k}": round(min(e[k] for e in evals), 4)
        for k in ("raw_val_loss", "ema_val_loss")
        if evals and k in evals[-1]
    }
    regularisers = {k: m[k] for k in ("weight_drop", "locked_dropout") if m.get(k)}
    return sets | {
        "charrnn_val_loss": round(result["best_val_loss"], 4),
        "charrnn_val_bpc": round(result["best_val_loss"] / np.log(2), 4),
        "charrnn_steps": result["step"],
        "charrnn_best_step": result["best_step"],
        "charrnn_model": f"{m['cell']} {m['layers']}x{m['hidden']} dropout {m['dropout']}"
        + "".join(f" {k} {v}" for k, v in regularisers.items()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--budget", default="10m")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--skip-baseline", action="store_true")
    which.add_argument("--skip-charrnn", action="store_true", help="measure the baseline alone")
    ap.add_argument("--out", help="keep charrnn's run directory here (default: a temporary one)")
    ap.add_argument("--rng-seed", type=int, help="charrnn's seed: the defaults on another draw")
    ap.add_argument("--resume", action="store_true", help="finish the stopped run kept in --out")
    args, extra = ap.parse_known_args()  # anything else goes to `charrnn train` (tuning runs)
    from charrnn.training.config import parse_duration

    if args.resume and not (args.out and args.skip_baseline):
        ap.error("--resume finishes a charrnn run kept with --out: give --out and --skip-baseline")

    tuning = bool(extra)  # another seed alone still measures the defaults
    extra += ["--rng-seed", str(args.rng_seed)] if args.rng_seed is not None else []
    figures: dict = {"budget": args.budget}
    if not args.skip_charrnn:
        command = ["charrnn train tinyshakespeare.txt --time-budget", args.budget, *extra]
        figures |= {"command": " ".join(command)}
        figures |= run_charrnn(args.budget, args.out, extra, args.resume)
        figures |= {"resumed": True} if args.resume else {}
    if not args.skip_baseline:
        base, steps = baseline(parse_duration(args.budget))
        figures |= {"baseline_val_loss": round(base, 4), "baseline_steps": steps}
        if "charrnn_val_loss" in figures:
            figures["improvement_nats"] = round(base - figures["charrnn_val_loss"], 4)
    kind = "_baseline" if args.skip_charrnn else "_tuning" if tuning else ""
    report(f"quality_{args.budget}{kind}", figures)


if __name__ == "__main__":
    main()
