"""Which weight average does best on one training run: a paired comparison of averaging rules.

The average never feeds back into training, so several averages kept beside one run see exactly the
same trajectory: their differences are free of the seed-to-seed noise that separate runs carry
(0.01 nats/char between seeds of the hour-long default run). This trains with `charrnn train`'s
defaults on tiny-shakespeare, keeps extra averages beside the built-in one, saves each at every
evaluation step, and scores them all on the validation split after training (so the extra work does
not take training time out of the budget). Rules: a fixed decay like 0.9995 (warmed up as the
built-in one is), or `pN`, a power-law average whose span grows with the run (decay at step t is
(1 - 1/t)^(N + 1): it averages about the last 1/(N + 1) of the steps taken).

For each rule it reports the best evaluation a run using it would report: the better of the raw
weights and that average at each evaluation step, then the best over steps.

    python bench/ema_decay.py --budget 60m --rng-seed 1 --rules 0.998,p1,p2,p4,p6 --out runs/ema-1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from common import SHAKESPEARE, report

from charrnn.training import loop as trainer_module
from charrnn.training.averaging import Averaged, decay_at
from charrnn.training.config import TrainConfig


def weight_of(rule: str, step: int) -> float:
    """The lerp weight given to the live weights after optimizer step `step` (0-based) by `rule`."""
    if rule.startswith("p"):
        t = step + 1
        return 1.0 - (1.0 - 1.0 / t) ** (int(rule[1:]) + 1)
    return 1.0 - decay_at(step, float(rule))


class Extra:
    """One more average of the live weights, saved to disk at every evaluation."""

    def __init__(self, live: torch.nn.Module, rule: str, folder: Path) -> None:
        self.rule, self.folder = rule, folder
        self.mine = [p.detach().clone() for p in live.parameters()]
        self.theirs = list(live.parameters())
        folder.mkdir(parents=True, exist_ok=True)

    @torch.no_grad()
    def update(self, step: int) -> None:
        torch._foreach_lerp_(self.mine, self.theirs, weight_of(self.rule, step))

    def save(self, step: int) -> None:
        torch.save(self.mine, self.folder / f"{step}.pt")


def install(rules: list[str], out: Path) -> dict:
    """Patch the trainer so its average also updates (and, at evaluations, saves) the extras."""
    held: dict = {}

    class WithExtras(Averaged):
        def __init__(self, model: torch.nn.Module, decay: float) -> None:
            super().__init__(model, decay)
            self.extras = [Extra(model, r, out / "ema" / r) for r in rules]
            held["average"] = self

        def update(self, step: int) -> None:
            super().update(step)
            for e in self.extras:
                e.update(step)

    evaluate_and_save = trainer_module.Trainer._evaluate_and_save

    def and_snapshot(self: trainer_module.Trainer) -> None:
        evaluate_and_save(self)
        if self.average is not None:
            for e in self.average.extras:
                e.save(self.progress.step)

    trainer_module.Averaged = WithExtras
    trainer_module.Trainer._evaluate_and_save = and_snapshot
    return held


def score_extras(held: dict, out: Path) -> dict:
    """Validation loss of every saved average, step by step, with the trainer's own evaluation."""
    from charrnn.data.dataset import resolve_dataset
    from charrnn.training.distributed import World
    from charrnn.training.evaluate import evaluate

    ds, _ = resolve_dataset(str(SHAKESPEARE))
    val = ds.split("val")
    model = held["average"].model
    scored: dict[str, dict[int, float]] = {}
    for extra in held["average"].extras:
        scored[extra.rule] = {}
        for f in sorted(extra.folder.glob("*.pt"), key=lambda f: int(f.stem)):
            with torch.no_grad():
                for p, v in zip(model.parameters(), torch.load(f, weights_only=True), strict=True):
                    p.copy_(v)
            scored[extra.rule][int(f.stem)] = evaluate(model, val, torch.device("cpu"), World())[0]
    return scored


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--budget", default="10m")
    ap.add_argument("--rng-seed", type=int, default=1337)
    ap.add_argument("--rules", default="0.998,p1,p2,p4,p6")
    ap.add_argument("--out", required=True, help="run directory (the saved averages go under it)")
    args = ap.parse_args()
    rules = args.rules.split(",")
    for r in rules:
        weight_of(r, 10)  # a malformed rule fails now, not after the hour
    out = Path(args.out)
    held = install(rules, out)
    from charrnn.cli import main as charrnn_main

    sys.argv = [
        "charrnn",
        "train",
        str(SHAKESPEARE),
        "--time-budget",
        args.budget,
        "--out",
        str(out),
    ]
    sys.argv += ["--rng-seed", str(args.rng_seed), "--quiet", "--overwrite"]
    try:
        charrnn_main()
    except SystemExit as e:
        if e.code:
            raise
    t = time.monotonic()
    scored = score_extras(held, out)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    evals = [json.loads(x) for x in lines if '"val_loss"' in x]
    raw = {e["step"]: e["raw_val_loss"] for e in evals}
    builtin = {e["step"]: e["ema_val_loss"] for e in evals}
    figures: dict = {"budget": args.budget, "rng_seed": args.rng_seed, "steps": evals[-1]["step"]}
    figures["best_raw"] = round(min(raw.values()), 4)
    default = f"{TrainConfig.ema} (default)"
    for rule, by_step in {default: builtin, **scored}.items():
        paired = {s: min(raw[s], v) for s, v in by_step.items() if s in raw}
        step = min(paired, key=paired.__getitem__)
        figures[f"best_{rule}"] = round(paired[step], 4)
        figures[f"best_{rule}_at"] = step
        figures[f"best_{rule}_average_alone"] = round(min(by_step.values()), 4)
        figures[f"last_{rule}"] = round(by_step[max(by_step)], 4)
    figures["scoring_seconds"] = round(time.monotonic() - t, 1)
    (out / "ema_decay.json").write_text(json.dumps({"figures": figures, "by_step": scored}) + "\n")
    report(f"ema_decay_{args.budget}", figures)


if __name__ == "__main__":
    main()
