"""The training run's configuration: every hyperparameter of a run (`TrainConfig`), stored in the
checkpoint and shown by `inspect`, and the parsing of durations such as `--time-budget 1h30m`.

It decides no defaults from the data (that is `plan`) and runs nothing (that is `loop`).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace

from charrnn.errors import InputError, option

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
    # Voices (a labelled corpus only; None otherwise, and then absent from the checkpoint): how
    # often each voice is seen per epoch, the cap of `capped`, and the share of training windows
    # that drop their voice (docs/training.md#voices).
    balance: str | None = None
    voice_cap: int | None = None
    untagged_share: float | None = None

    def __post_init__(self) -> None:
        positive = ("batch_size", "seq_len", "eval_every", "eval_chars", "log_every")
        optional_positive = ("max_epochs", "max_steps", "patience", "sample_every")
        for name in positive + optional_positive:
            v = getattr(self, name)
            if v is None and name in optional_positive:
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError(f"{option(name)} must be a positive integer, got {v}")
        if not _finite(self.lr) or self.lr <= 0:
            raise InputError(f"--lr must be positive, got {self.lr}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise InputError(f"--warmup must be a non-negative integer, got {self.warmup}")
        if not _finite(self.min_lr) or not 0 <= self.min_lr <= 1:
            raise InputError(f"{option('min_lr')} must be a fraction in [0, 1], got {self.min_lr}")
        if not _finite(self.weight_decay) or self.weight_decay < 0:
            raise InputError(
                f"{option('weight_decay')} must be non-negative, got {self.weight_decay}"
            )
        if not _finite(self.grad_clip) or self.grad_clip < 0:
            raise InputError(
                f"{option('grad_clip')} must be non-negative (0 = off), got {self.grad_clip}"
            )
        if self.time_budget is not None and (
            not _finite(self.time_budget) or self.time_budget <= 0
        ):
            raise InputError(f"{option('time_budget')} must be positive, got {self.time_budget}")
        if not isinstance(self.rng_seed, int) or self.rng_seed < 0:
            raise InputError(
                f"{option('rng_seed')} must be a non-negative integer, got {self.rng_seed}"
            )
        if not _finite(self.ema) or not 0 <= self.ema < 1:
            raise InputError(f"--ema must be in [0, 1) (0 = off), got {self.ema}")
        if not isinstance(self.shift_windows, bool):
            raise InputError(f"shift_windows must be true or false, got {self.shift_windows!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.balance is not None and self.balance not in BALANCES:
            raise InputError(f"--balance must be one of {', '.join(BALANCES)}")
        if self.voice_cap is not None and (
            not isinstance(self.voice_cap, int) or isinstance(self.voice_cap, bool)
        ):
            raise InputError(f"{option('voice_cap')} must be an integer, got {self.voice_cap!r}")
        if self.voice_cap is not None and self.voice_cap < 1:
            raise InputError(f"{option('voice_cap')} must be at least 1, got {self.voice_cap}")
        share = self.untagged_share
        if share is not None and (not _finite(share) or not 0 < share < 1):
            raise InputError(
                f"{option('untagged_share')} must be above 0 and below 1, got {share!r}"
            )

    @classmethod
    def from_dict(cls, d: object) -> TrainConfig:
        if not isinstance(d, dict):
            raise InputError("train config must be a JSON object")
        names = {f.name for f in fields(cls)}
        # `voices_off` (a --no-condition run's note of its voices, for inspect) is no setting
        d = {k: v for k, v in d.items() if k != "voices_off"}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"train config has unknown fields: {', '.join(sorted(unknown))}")
        # a checkpoint from before weight averaging or shifted windows resumes as it was trained
        return cls(**{"ema": 0.0, "shift_windows": False, **d})

    def to_dict(self) -> dict:
        """The JSON form; an unvoiced run's has no voice fields, so it reads as before voices."""
        d = asdict(self)
        for name in VOICE_FIELDS:
            if d[name] is None:
                del d[name]
        return d

    def with_(self, **changes: object) -> TrainConfig:
        return replace(self, **changes)


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BALANCES = ("proportional", "equal", "capped")
VOICE_FIELDS = ("balance", "voice_cap", "untagged_share")


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def bpc(nats: float) -> float:
    """Nats per character → bits per character."""
    return nats / LN2


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
