"""The training loop: truncated BPTT over contiguous streams, AdamW with warmup + cosine decay, periodic
stateful evaluation, atomic checkpoints, and exact resume.

It reports through events passed to a callback and learns of Ctrl-C through `should_stop`; rendering,
signals and exit codes belong to the CLI. Stopping rules, the schedule and the loss→bpc conversion are
pure functions so tests can pin them.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from charrnn.errors import InputError

LN2 = math.log(2)


@dataclass(frozen=True)
class TrainConfig:
    """Every hyperparameter of a run; stored in the checkpoint and shown by `inspect`."""

    batch_size: int = 64
    seq_len: int = 100
    lr: float = 1.2e-2
    warmup: int = 100
    min_lr: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 5.0
    max_epochs: int | None = None
    max_steps: int | None = None
    time_budget: float | None = None
    patience: int | None = None
    eval_every: int = 250
    eval_chars: int = 1_000_000
    log_every: int = 10
    sample_every: int | None = None
    rng_seed: int = 1337
    precision: str = "auto"
    # Decay of the weight average that evaluation ranks and sampling uses (0 = raw weights only).
    ema: float = 0.995
    # Start each epoch's windows at another offset (drawn from rng_seed and the epoch), so that over
    # many epochs the truncated-BPTT boundaries fall at different places in the text.
    shift_windows: bool = True

    def __post_init__(self) -> None:
        positive = ("batch_size", "seq_len", "eval_every", "eval_chars", "log_every")
        optional_positive = ("max_epochs", "max_steps", "patience", "sample_every")
        for name in positive + optional_positive:
            v = getattr(self, name)
            if v is None and name in optional_positive:
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {v}")
        if not _finite(self.lr) or self.lr <= 0:
            raise InputError(f"--lr must be positive, got {self.lr}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise InputError(f"--warmup must be a non-negative integer, got {self.warmup}")
        if not _finite(self.min_lr) or not 0 <= self.min_lr <= 1:
            raise InputError(f"--min-lr must be a fraction in [0, 1], got {self.min_lr}")
        if not _finite(self.weight_decay) or self.weight_decay < 0:
            raise InputError(f"--weight-decay must be non-negative, got {self.weight_decay}")
        if not _finite(self.grad_clip) or self.grad_clip < 0:
            raise InputError(f"--grad-clip must be non-negative (0 = off), got {self.grad_clip}")
        if self.time_budget is not None and (
            not _finite(self.time_budget) or self.time_budget <= 0
        ):
            raise InputError(f"--time-budget must be positive, got {self.time_budget}")
        if not isinstance(self.rng_seed, int) or self.rng_seed < 0:
            raise InputError(f"--rng-seed must be a non-negative integer, got {self.rng_seed}")
        if not _finite(self.ema) or not 0 <= self.ema < 1:
            raise InputError(f"--ema must be in [0, 1) (0 = off), got {self.ema}")
        if not isinstance(self.shift_windows, bool):
            raise InputError(f"shift_windows must be true or false, got {self.shift_windows!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}")

    @classmethod
    def from_dict(cls, d: object) -> TrainConfig:
        if not isinstance(d, dict):
            raise InputError("train config must be a JSON object")
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"train config has unknown fields: {', '.join(sorted(unknown))}")
        # a checkpoint from before weight averaging or shifted windows resumes as it was trained
        return cls(**{"ema": 0.0, "shift_windows": False, **d})

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes: object) -> TrainConfig:
        return replace(self, **changes)


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def bpc(nats: float) -> float:
    """Nats per character → bits per character."""
    return nats / LN2


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


# A long run gets a bigger, more strongly regularised model unless the user chose otherwise. Measured
# on tiny-shakespeare with 2 CPU cores (README "Choosing the defaults"): 2×512 at dropout 0.3 is best
# for ten minutes, but given an hour it bottoms out at 1.39–1.41 nats/char after about 24 epochs and
# then overfits; 3×512 at dropout 0.5 learned for about 36 epochs (1.389–1.398, three seeds). With
# weight-drop, locked dropout and averaging (round 2) the same model at dropout 0.5 was still improving
# at the hour (1.3713, seed 1); dropout 0.4 led it at every evaluation of the same seed, and three
# seeds of it reach 1.3653–1.3674.
LONG_RUN_MODEL = {"layers": 3, "dropout": 0.4}
LONG_RUN_EPOCHS = 20
# What turns a time budget into epochs before anything has been measured: the default model's bf16
# training rate on the 2-core development CPU. A faster machine fits more epochs into the same time,
# so the estimate errs towards the standard model, never towards a model the budget cannot train.
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


# With no validation split all of the text is training text: nothing is held out to generalise to, and
# best.ckpt follows the training loss, so fitting the text is the goal and dropout only slows it. On the
# textbook toy (one sentence, 1×32 units, 100 steps) the final training loss was 0.02 at dropout 0,
# 0.09 at 0.3 and 0.25 at 0.5, each cell alike (README "Choosing the defaults").
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


# Warmup lets AdamW's moment estimates settle before the peak rate; it must also leave the run time at
# that rate. So it is capped at this fraction of the planned steps. Measured on tiny-shakespeare with the
# standard model in 120-step runs (README "Choosing the defaults"): warmup 12 (10 %) ended at 1.915
# nats/char, 30 (25 %) at 1.724, 60 at 1.771, the uncapped 100 at 1.777. The 10-minute default run plans
# 1,218 steps, so it keeps its 100.
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


# What a fine-tuning run (--init-from) changes in the defaults: the weights are already good, so a
# much lower peak rate keeps what they know, and a short warmup spends the budget at that rate.
# Measured on a 100,000-character text the source model had not seen, 3-minute runs (README
# "Fine-tuning"): best validation loss at lr 0.012 1.635, 0.003 1.479, 0.001 1.382 (best at step 150,
# then overfitting), 0.0003 1.381 (best at step 600 of 715: the least sensitive to when it stops).
FINETUNE_DEFAULTS: dict[str, float | int] = {"lr": 3e-4, "warmup": 20}


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


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s|ms)?")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, None: 1.0}


def parse_duration(text: str) -> float:
    """'90s', '10m', '2h', '1h30m', or plain seconds → seconds."""
    s = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if not s or pos != len(s) or total <= 0:
        raise InputError(f"cannot read time budget {text!r}; write e.g. 90s, 10m, 2h or 1h30m")
    return total


@dataclass(frozen=True)
class Started:
    out_dir: str
    device: str
    precision: str
    parameters: int
    vocab_size: int
    train_chars: int
    val_chars: int
    eval_chars: int
    unigram_entropy: float  # nats/char: what a model that learned nothing scores
    batch_size: int
    seq_len: int
    world_size: int
    steps_per_epoch: int
    total_steps: int | None
    time_budget: float | None
    resumed_step: int


@dataclass(frozen=True)
class Note:
    message: str


@dataclass(frozen=True)
class Logged:
    step: int
    epoch: int
    train_loss: float
    lr: float
    chars_per_sec: float
    elapsed: float
    progress: float | None


@dataclass(frozen=True)
class Evaluated:
    step: int
    val_loss: float
    val_bpc: float
    best: bool
    source: str  # "val", or "train" when the validation split is too small to use
    # with weight averaging on, both weight sets' losses (val_loss is the better one's)
    raw_val_loss: float | None = None
    ema_val_loss: float | None = None


@dataclass(frozen=True)
class Sampled:
    step: int
    text: str


@dataclass(frozen=True)
class Finished:
    reason: str
    step: int
    epoch: int
    elapsed: float
    best_val_loss: float | None
    best_step: int | None
    last_path: str
    best_path: str | None


class MetricsLog:
    """metrics.jsonl: one JSON object per line, appended and flushed as the run goes.

    On resume, records past the checkpoint's step (written before a crash) are dropped first, so
    the file always describes the run that the checkpoint continues.
    """

    def __init__(self, path: Path, keep_through: int) -> None:
        kept = []
        if path.exists() and keep_through:
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line).get("step", 0) <= keep_through:
                        kept.append(line)
                except ValueError:
                    continue  # a line torn by a crash
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
        os.replace(tmp, path)
        self._file = path.open("a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


Event = Started | Note | Logged | Evaluated | Sampled | Finished
Callback = Callable[[Event], None]
