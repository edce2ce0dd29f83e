"""The planning rules: what a run chooses beyond the options given, from the text and the budget (the
long-run model, the all-text rule, fine-tuning's defaults, the warmup cap).

Pure functions of numbers, so tests can pin them; how each constant was measured is in
docs/defaults.md. The CLI shows what they chose; nothing here prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from charrnn.model_config import ModelConfig
from charrnn.train.config import TrainConfig, parse_duration
from charrnn.train.schedule import total_steps

# A long run (many epochs) gets a bigger, more regularised model (docs/defaults.md: "Long runs").
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


# No validation split: fitting the text is the goal, so no dropout (docs/defaults.md: "Short runs").
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


# Warmup is capped at this share of the planned steps (docs/defaults.md: "Short runs").
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


# Without any stopping option a run stops by itself: after 10 minutes (the schedule anneals to it),
# or 50 epochs for a small corpus, whichever comes first.
DEFAULT_STOP: dict[str, float | int] = {"time_budget": 600.0, "max_epochs": 50}
# The model options a user can give (ModelConfig's fields less the vocabulary, which the text sets).
MODEL_OPTIONS = tuple(f.name for f in fields(ModelConfig) if f.name != "vocab_size")
# Model options that shape no weight: training choices a resumed or fine-tuning run may change.
REGULARISERS = ("dropout", "weight_drop", "locked_dropout")


@dataclass(frozen=True)
class Plan:
    """What a run will be: its training and model configs, and what the rules chose on the way
    (one line each, as the user could have typed it), for the CLI to show."""

    train: TrainConfig
    model: ModelConfig
    notes: tuple[str, ...] = ()


def train_config(
    given: dict, resume_meta: dict | None = None, finetune: bool = False
) -> TrainConfig:
    """Defaults (fine-tuning's with --init-from), or a resumed checkpoint's config, with the options
    given on top. `given` holds only what the user typed (`time_budget` as text: "10m")."""
    names = {f.name for f in fields(TrainConfig)}
    changes = {k: v for k, v in given.items() if k in names and k != "time_budget"}
    if "time_budget" in given:
        changes["time_budget"] = parse_duration(given["time_budget"])
    if finetune:
        changes = {**FINETUNE_DEFAULTS, **changes}
    if resume_meta is None:
        if not {"max_epochs", "max_steps", "time_budget"} & changes.keys():
            changes |= DEFAULT_STOP  # about ten minutes on a ~1 MB corpus, never endless
        return TrainConfig(**changes)
    # the streams are the checkpoint's (resume.check_unchanged refused any real change); its
    # per-process batch size is what the loop shares out among this run's processes
    for fixed in ("batch_size", "seq_len"):
        changes.pop(fixed, None)
    return TrainConfig.from_dict(resume_meta["train"]).with_(**changes)


def plan(
    given: dict,
    *,
    vocab_size: int,
    train_chars: int,
    val_chars: int,
    world_size: int = 1,
    resume_meta: dict | None = None,
    source_meta: dict | None = None,
) -> Plan:
    """The one planning function: a run's configs from the options given, the text's size and
    vocabulary, the processes, and the checkpoint it resumes (`resume_meta`) or fine-tunes from
    (`source_meta`). Pure: no I/O, no printing, the same answer on every rank.

    - resume: the checkpoint's model and config, with new regularisers and training options;
    - fine-tune: the source's shape, fine-tuning's lr and warmup, and the all-text rule;
    - fresh: the options given, else the defaults this text and budget call for (`model_defaults`).
    """
    tcfg = train_config(given, resume_meta, finetune=source_meta is not None)
    if resume_meta is not None:
        return Plan(tcfg, ModelConfig.from_dict(carried_model(resume_meta, given)))
    if source_meta is not None:  # a checkpoint's record: from_dict reads older files as trained
        build = ModelConfig.from_dict
        model = {**carried_model(source_meta, given), "vocab_size": vocab_size}
        rule, values = ("all-text", ALL_TEXT_MODEL) if not has_validation(val_chars) else ("", {})
    else:  # options not given take ModelConfig's defaults (weight_drop: the cell's)
        build = _new_model
        model = {"vocab_size": vocab_size} | {k: v for k, v in given.items() if k in MODEL_OPTIONS}
        rule, values = model_defaults(tcfg, train_chars, val_chars, world_size)
    current = build(model)
    # what the rule changes: options not given whose value would differ
    chosen = {k: v for k, v in values.items() if k not in given and getattr(current, k) != v}
    notes = (_RULES[rule].format(as_options(chosen)),) if chosen else ()
    return Plan(tcfg, build(model | chosen), notes)


def _new_model(options: dict) -> ModelConfig:
    return ModelConfig(**options)


def carried_model(meta: dict, given: dict) -> dict:
    """A checkpoint's model config, with new regularisers (--dropout, --weight-drop,
    --locked-dropout) if given: they shape no weight, so like --lr they may change."""
    return dict(meta["model"]) | {k: given[k] for k in REGULARISERS if k in given}


def as_options(values: dict) -> str:
    """{"weight_drop": 0} → "--weight-drop 0": what a rule chose, as the user would have typed it."""
    return ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in values.items())


_RULES = {
    "long-run": "a long run: using {} (the long-run defaults)",
    "all-text": "all of the text is for training: using {} (nothing is held out, so fitting the "
    "text is the goal; the long-run defaults do not apply)",
}
