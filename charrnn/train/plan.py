"""The planning rules: what a run chooses beyond the options given, from the text and the budget (the
long-run model, the all-text rule, fine-tuning's defaults, the warmup cap).

Pure functions of numbers, so tests can pin them; how each constant was measured is in
docs/defaults.md. The CLI shows what they chose; nothing here prints.
"""

from __future__ import annotations

import math

from charrnn.train.config import TrainConfig
from charrnn.train.schedule import total_steps

# A long run (many epochs) gets a bigger, more regularised model (docs/defaults.md, "Long runs").
LONG_RUN_MODEL = {"layers": 3, "dropout": 0.4}
LONG_RUN_EPOCHS = 20
# The default model's bf16 training rate here: a budget's epochs before anything is measured.
NOMINAL_CHARS_PER_SEC = 13_000


def planned_epochs(cfg: TrainConfig, train_chars: int, world_size: int = 1) -> float:
    """Passes over the training split that the run's nearest limit allows (inf with no limit)."""
    chars = max(1, train_chars)
    limits = [float(cfg.max_epochs)] if cfg.max_epochs else []
    if cfg.max_steps:
        limits.append(cfg.max_steps * cfg.batch_size * cfg.seq_len * world_size / chars)
    if cfg.time_budget:
        limits.append(cfg.time_budget * NOMINAL_CHARS_PER_SEC / chars)
    return min(limits, default=math.inf)


# No validation split: fitting the text is the goal, so no dropout (docs/defaults.md, "All text").
ALL_TEXT_MODEL = {"dropout": 0.0, "weight_drop": 0.0}


def has_validation(val_chars: int) -> bool:
    """Whether the validation split holds a prediction to score (two characters at least); without
    one the training loss stands in for it."""
    return val_chars >= 2


def model_defaults(
    cfg: TrainConfig, train_chars: int, val_chars: int, world_size: int = 1
) -> tuple[str, dict[str, object]]:
    """The rule that sets model options apart from ModelConfig's defaults for this run, and the
    options it sets: "all-text" (no validation split: no dropout, whatever the length), "long-run"
    (more than LONG_RUN_EPOCHS planned epochs, where the standard model overfits), or "" (none)."""
    if not has_validation(val_chars):
        return "all-text", dict(ALL_TEXT_MODEL)
    if planned_epochs(cfg, train_chars, world_size) > LONG_RUN_EPOCHS:
        return "long-run", dict(LONG_RUN_MODEL)
    return "", {}


# Warmup is capped at this share of the planned steps (docs/defaults.md, "Warmup").
WARMUP_FRACTION = 0.25


def planned_steps(cfg: TrainConfig, steps_per_epoch: int, world_size: int = 1) -> int | None:
    """The steps the run's nearest limit allows: the step horizon, or for a time budget an estimate
    at NOMINAL_CHARS_PER_SEC. A function of the config alone, so a resumed run plans the same."""
    limits = [total_steps(cfg, steps_per_epoch)]
    if cfg.time_budget:
        chars_per_step = cfg.batch_size * cfg.seq_len * world_size
        limits.append(math.ceil(cfg.time_budget * NOMINAL_CHARS_PER_SEC / chars_per_step))
    return min((x for x in limits if x), default=None)


def effective_warmup(cfg: TrainConfig, steps_per_epoch: int, world_size: int = 1) -> int:
    """--warmup, but at most WARMUP_FRACTION of the planned steps: a schedule must fit inside its run
    (the default 100 steps would fill a 100-step run and leave no time at the peak rate)."""
    planned = planned_steps(cfg, steps_per_epoch, world_size)
    return cfg.warmup if planned is None else min(cfg.warmup, int(WARMUP_FRACTION * planned))


def fit_warmup(
    cfg: TrainConfig, steps_per_epoch: int, world_size: int = 1
) -> tuple[TrainConfig, str]:
    """The config with its effective warmup, and what to tell the user if it was shortened."""
    warmup = effective_warmup(cfg, steps_per_epoch, world_size)
    if warmup == cfg.warmup:
        return cfg, ""
    planned = planned_steps(cfg, steps_per_epoch, world_size)
    return cfg.with_(warmup=warmup), (
        f"warmup shortened to {warmup} steps: --warmup {cfg.warmup} would not fit a run of "
        f"{planned:,} planned steps (at most {WARMUP_FRACTION:.0%} of them)"
    )


# Fine-tuning keeps what the weights know: a low peak rate, a short warmup (docs/training.md).
FINETUNE_DEFAULTS: dict[str, float | int] = {"lr": 3e-4, "warmup": 20}
