"""The schedule of a run: the learning rate at each step (warmup, then cosine decay), how far a run
has come, where it stands (`Progress`, saved for exact resume) and the rules that stop it.

Pure functions of the config and the progress, so tests can pin them; the loop calls them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from charrnn.training.config import TrainConfig


def lr_at(step: int, progress: float | None, cfg: TrainConfig) -> float:
    """Linear warmup over `warmup` steps, then cosine decay to `min_lr × lr` as progress goes 0 → 1.

    Progress is the larger of step/max-steps and elapsed/time-budget (whichever horizon is known), so
    a time-budgeted run anneals fully by its deadline; with no horizon the rate stays at `lr`.
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if progress is None:
        return cfg.lr
    floor = cfg.lr * cfg.min_lr
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def progress_of(
    step: int, elapsed: float, total_steps: int | None, time_budget: float | None
) -> float | None:
    parts = []
    if total_steps:
        parts.append(step / total_steps)
    if time_budget:
        parts.append(elapsed / time_budget)
    return max(parts) if parts else None


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int | None:
    """The step horizon implied by --max-steps and --max-epochs (the smaller), if any."""
    limits = [cfg.max_steps] if cfg.max_steps else []
    if cfg.max_epochs:
        limits.append(cfg.max_epochs * steps_per_epoch)
    return min(limits) if limits else None


@dataclass
class Progress:
    """Where a run stands; saved in the checkpoint so a resumed run continues exactly."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    chars_seen: int = 0
    elapsed: float = 0.0
    best_val_loss: float | None = None
    best_step: int | None = None
    evals_since_best: int = 0
    last_train_loss: float | None = None
    finished: bool = False
    stop_reason: str | None = None


def stop_reason(p: Progress, cfg: TrainConfig, external: str | None = None) -> str | None:
    """Why the run should stop now, or None; whichever limit comes first wins."""
    if external:
        return external
    if cfg.max_steps is not None and p.step >= cfg.max_steps:
        return "max-steps"
    if cfg.max_epochs is not None and p.epoch >= cfg.max_epochs:
        return "max-epochs"
    if cfg.time_budget is not None and p.elapsed >= cfg.time_budget:
        return "time-budget"
    if cfg.patience is not None and p.evals_since_best >= cfg.patience:
        return "patience"
    return None
