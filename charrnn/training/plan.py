"""The planning rules: what a run chooses beyond the options given, from the text, the budget and
this machine's speed (the shape and regularisers via `sizing`, the all-text rule, fine-tuning's
defaults, the evaluation cadence, the warmup cap), and the record a checkpoint keeps of them.

Pure functions of numbers, so tests can pin them; how each constant was measured is in
docs/defaults.md. The CLI shows what they chose; nothing here prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

from charrnn.model_config import ModelConfig
from charrnn.training.batches import fit_batch
from charrnn.training.config import TrainConfig, parse_duration
from charrnn.training.schedule import total_steps
from charrnn.training.sizing import (
    Budget,
    choose_shape,
    dropout_for,
    eval_cadence,
    eval_seconds,
    evaluations,
    steps_in,
)
from charrnn.training.speed import Speeds, reference, train_flops_per_char
from charrnn.training.voiced_batches import epoch_chars, voiced_config

# Runs planned before the sizing rules (checkpoints without a stored plan) counted a budget's steps
# at this rate, the default model's bf16 training rate here; they resume under that rule exactly.
NOMINAL_CHARS_PER_SEC = 13_000
# The version of the rules `plan()` applies, stored with each plan (3: a shape must also have at
# most `sizing.MAX_WEIGHTS_PER_CHAR` weights per training character; 2: it must get
# `sizing.MIN_EPOCHS` passes over the text; 1 chose by steps alone).
RULES_VERSION = 3

# No validation split: fitting the text is the goal, so no dropout (docs/defaults.md: "Short runs").
ALL_TEXT_MODEL = {"dropout": 0.0, "weight_drop": 0.0}


def has_validation(val_chars: int) -> bool:
    """Whether the validation split holds a prediction to score (two characters at least); without
    one the training loss stands in for it."""
    return val_chars >= 2


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
# (`voices` is the text's, and `voice_dim` applies only to labelled text: see `plan`)
MODEL_OPTIONS = tuple(
    f.name for f in fields(ModelConfig) if f.name not in ("vocab_size", "voices", "voice_dim")
)
# The voice embedding's width unless --voice-dim is given (docs/training.md#voices).
DEFAULT_VOICE_DIM = 16
# The narrowest character embedding the voice rule leaves (see voiced_model).
MIN_CHAR_EMBED = 16
# Model options that shape no weight: training choices a resumed or fine-tuning run may change.
REGULARISERS = ("dropout", "weight_drop", "locked_dropout")


@dataclass(frozen=True)
class Plan:
    """What a run will be: its training and model configs, what the rules chose on the way (one
    line each, as the user could have typed it), and `record`, the plan as the checkpoint stores
    it (its inputs, the speed used, the rules' version and their choices; None: nothing planned)."""

    train: TrainConfig
    model: ModelConfig
    notes: tuple[str, ...] = ()
    record: dict | None = None


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
    speeds: Speeds | None = None,
    voice_sizes: Sequence[int] = (),
) -> Plan:
    """The one planning function: a run's configs from the options given, the text's size and
    vocabulary, the processes, this machine's speed (`speeds`, measured or the reference), and the
    checkpoint it resumes (`resume_meta`) or fine-tunes from (`source_meta`). Pure: no I/O, no
    printing, the same answer on every rank.

    - resume: the checkpoint's model and config (its stored plan is not made again), with new
      regularisers and training options;
    - fine-tune: the source's shape, fine-tuning's lr and warmup; the plan adds the evaluation
      cadence and the all-text rule;
    - fresh: the options given, and the rest sized for this text, budget and machine (`sizing`).

    `voice_sizes`: a labelled text's voices' training sizes: the balance settles how many
    characters an epoch reads (`train_chars` is then that), and the model is conditioned on the
    voices unless `no_condition` was given.
    """
    tcfg = train_config(given, resume_meta, finetune=source_meta is not None)
    if resume_meta is not None:
        return Plan(
            tcfg,
            ModelConfig.from_dict(carried_model(resume_meta, given)),
            (),
            resume_meta.get("plan"),
        )
    voiced: dict[str, int] = {}
    if voice_sizes:
        tcfg = voiced_config(tcfg, voice_sizes)
        train_chars = epoch_chars(voice_sizes, tcfg.balance or "", tcfg.voice_cap)
        if not given.get("no_condition"):
            voiced = voiced_model(given, len(voice_sizes))
    text = Text(vocab_size, train_chars, val_chars, world_size)
    if source_meta is not None:  # a checkpoint's record: from_dict reads older files as trained
        carried = carried_model(source_meta, given)
        if voiced:  # the model's voices (finetune_voices); the source keeps its widths
            dim = int(carried.get("voice_dim") or 0) or voiced["voice_dim"]
            voiced = {"voices": voiced["voices"], "voice_dim": dim}
        model = ModelConfig.from_dict({**carried, **voiced, "vocab_size": vocab_size})
        sized = _sized(given, tcfg, model, text, speeds or reference(world_size), fixed_shape=True)
    else:
        options = {k: v for k, v in given.items() if k in MODEL_OPTIONS}
        model = ModelConfig(vocab_size=vocab_size, **options, **voiced)
        sized = _sized(given, tcfg, model, text, speeds or reference(world_size), fixed_shape=False)
    if not voice_sizes:
        return sized
    return replace(sized, notes=(*sized.notes, _voices_note(sized.train, voice_sizes, voiced)))


def voiced_model(given: dict, voices: int) -> dict[str, int]:
    """A new conditioned model's voice options: its voices, the voice embedding's width
    (--voice-dim, default 16) and, unless --embed was given, a character embedding narrower by
    that width, so that layer 0 reads what an unvoiced model's does. The fused LSTM's cost follows
    its input width (64 → 80 made a 1×256 training step 6–9 % slower on 2 cores), so this way
    voices cost no training speed (docs/defaults.md#voices-2026-12-08)."""
    dim = int(given.get("voice_dim", DEFAULT_VOICE_DIM))
    out = {"voices": voices, "voice_dim": dim}
    if "embed" not in given:
        default = next(f.default for f in fields(ModelConfig) if f.name == "embed")
        out["embed"] = max(MIN_CHAR_EMBED, int(default) - dim)
    return out


def _voices_note(cfg: TrainConfig, sizes: Sequence[int], voiced: dict) -> str:
    """One line on what a labelled text's epoch reads, and whether the model hears the voices."""
    cap = f" of up to {cfg.voice_cap:,} chars" if cfg.balance == "capped" else ""
    how = (
        f"{cfg.untagged_share:.0%} of windows untagged"
        if voiced
        else "not conditioned (--no-condition)"
    )
    chars = epoch_chars(sizes, cfg.balance or "", cfg.voice_cap)
    return f"voices: {len(sizes)}, balance {cfg.balance}{cap}: {chars:,} chars an epoch; {how}"


@dataclass(frozen=True)
class Text:
    vocab_size: int
    train_chars: int
    val_chars: int
    world_size: int


def _sized(
    given: dict,
    tcfg: TrainConfig,
    model: ModelConfig,
    text: Text,
    speeds: Speeds,
    fixed_shape: bool,
) -> Plan:
    """Size a new run: its shape (unless fixed or given), its regularisers by the epochs it will
    make, its evaluation cadence and its warmup; with the notes and record that say so."""
    batch, seq = fit_batch(text.train_chars, tcfg.batch_size, tcfg.seq_len, text.world_size)
    per_step = batch * seq * text.world_size
    validated = has_validation(text.val_chars)
    evaluated = (
        min(text.val_chars, tcfg.eval_chars) * (2 if tcfg.ema > 0 else 1) if validated else 0
    )
    budget = Budget(tcfg.time_budget or 0.0, per_step, text.train_chars, text.vocab_size, evaluated)
    timed = bool(tcfg.time_budget)
    layers, hidden = model.layers, model.hidden
    limit: tuple[tuple[int, int], str] | None = None
    if timed and not fixed_shape:
        (layers, hidden), limit = choose_shape(
            budget, speeds, model.cell, model.embed, given.get("layers"), given.get("hidden")
        )
    flops = train_flops_per_char(model.cell, layers, hidden, model.embed, text.vocab_size)
    per_epoch = max(1, (text.train_chars - 1) // (batch * text.world_size) // seq)
    horizon = total_steps(tcfg, per_epoch)
    t_eval = eval_seconds(budget, speeds, flops) if timed and evaluated else 0.0
    steps = _planned(budget, speeds, flops, horizon, t_eval) if timed else horizon
    every = (
        tcfg.eval_every if "eval_every" in given else eval_cadence(steps, t_eval, budget.seconds)
    )
    epochs = steps / per_epoch if steps else math.inf  # as the batcher counts them
    chosen: dict[str, object] = {}
    if not fixed_shape:
        chosen |= {"layers": layers, "hidden": hidden}
    if not validated:
        chosen |= dict(ALL_TEXT_MODEL)
    elif not fixed_shape:
        chosen |= {"dropout": dropout_for(epochs)}
        if epochs <= 1:  # nothing is seen twice: nothing to regularise
            chosen["weight_drop"] = 0.0
    chosen = {k: v for k, v in chosen.items() if k not in given}
    # fine-tuning keeps its measured warmup; a new run's fits inside its planned steps
    capped = steps is not None and "warmup" not in given and not fixed_shape
    warmup = min(tcfg.warmup, int(WARMUP_FRACTION * steps)) if capped else tcfg.warmup
    train = tcfg.with_(eval_every=every, warmup=warmup)
    new = ModelConfig.from_dict(model.to_dict() | chosen)
    record = {
        "rules": RULES_VERSION,
        "inputs": {
            "train_chars": text.train_chars,
            "val_chars": text.val_chars,
            "vocab_size": text.vocab_size,
            "world_size": text.world_size,
            "time_budget": tcfg.time_budget,
            "chars_per_step": per_step,
            "speed": speeds.to_dict() if timed else None,
        },
        "given": sorted(k for k in given if k in _GIVEN),
        "chosen": chosen | {"eval_every": train.eval_every, "warmup": train.warmup},
        "estimate": {
            "steps": steps,
            "epochs": round(epochs, 2) if math.isfinite(epochs) else None,
            "chars_per_sec": round(speeds.chars_per_sec(flops)) if timed else None,
            "eval_seconds": round(t_eval, 2),
        },
    }
    if limit:  # why the shape is not larger: the next one up (or, none fitting, itself) and why
        record["limit"] = {"shape": f"{limit[0][0]}x{limit[0][1]}", "lacks": limit[1]}
    notes = []
    dropped = {k: v for k, v in ALL_TEXT_MODEL.items() if k in chosen and getattr(model, k) != v}
    if not validated and dropped:
        notes.append(_RULES["all-text"].format(as_options(dropped)))
    if warmup < tcfg.warmup:
        notes.append(
            f"warmup shortened to {warmup} steps: --warmup {tcfg.warmup} would not fit a run of "
            f"{steps:,} planned steps (at most {WARMUP_FRACTION:.0%} of them)"
        )
    return Plan(train, new, tuple(notes), record)


def _planned(
    budget: Budget, speeds: Speeds, flops: float, horizon: int | None, t_eval: float
) -> int:
    """The steps a timed run will make: the budget less calibration and the evaluations its
    cadence implies (counted once, then again at the cadence that count gives), capped by any
    step or epoch limit."""
    steps = steps_in(budget, speeds, flops)
    for _ in range(2):
        every = eval_cadence(min(steps, horizon or steps), t_eval, budget.seconds)
        n = evaluations(min(steps, horizon or steps), every) if t_eval else 0
        steps = steps_in(budget, speeds, flops, n)
    return max(1, min(steps, horizon or steps))


_TRAIN_NAMES = {f.name for f in fields(TrainConfig)}
_GIVEN = {*MODEL_OPTIONS, *_TRAIN_NAMES, "voice_dim"}


def carried_model(meta: dict, given: dict) -> dict:
    """A checkpoint's model config, with new regularisers (--dropout, --weight-drop,
    --locked-dropout) if given: they shape no weight, so like --lr they may change."""
    return dict(meta["model"]) | {k: given[k] for k in REGULARISERS if k in given}


def as_options(values: dict) -> str:
    """{"weight_drop": 0} → "--weight-drop 0": what a rule chose, as the user would have typed it."""
    return ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in values.items())


_RULES = {
    "all-text": "all of the text is for training: using {} (nothing is held out, so fitting the "
    "text is the goal)",
}
