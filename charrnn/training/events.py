"""What a training run reports as it goes: events passed to the caller's callback (the CLI renders
them; a library caller may ignore them).

Plain data: no rendering, and no inference (`Snapshot` carries the weights; the caller decides
whether to draw a preview from them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from charrnn.model_config import ModelConfig
    from charrnn.vocab import Vocab


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
    # a labelled corpus: each voice's validation loss (val_loss is their unweighted mean)
    voices: dict[str, float] | None = None


@dataclass(frozen=True)
class Snapshot:
    """The weights sampling would use now (`--sample-every`): the caller may draw a preview."""

    step: int
    model: ModelConfig
    vocab: Vocab
    weights: Mapping[str, np.ndarray] = field(repr=False)


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


Event = Started | Note | Logged | Evaluated | Snapshot | Finished
Callback = Callable[[Event], None]
