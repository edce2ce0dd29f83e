"""What a run reports before training starts, as public events: the text prepared, the all-text
rule, fine-tuning's start and new characters, and the plan with its lines. Training's own events
(`Started`, `Logged`, `Evaluated`, ...) follow; all are delivered to `on_event` on the caller's
thread, in order.

Plain data with the line each one is shown as (`text`), so the terminal and the notebook say the
same; rendering is `charrnn.render`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from charrnn.data.split import DEFAULT_VAL_FRAC, MIN_VAL_CHARS
from charrnn.training.events import (
    Callback,
    Evaluated,
    Event,
    Finished,
    Logged,
    Note,
    Snapshot,
    Started,
)
from charrnn.training.plan import Plan

__all__ = [
    "AllText",
    "Callback",
    "Evaluated",
    "Event",
    "FineTuning",
    "Finished",
    "Logged",
    "Note",
    "Planned",
    "Prepared",
    "Snapshot",
    "Started",
]


@dataclass(frozen=True)
class Prepared:
    """Raw text was encoded into a dataset (once: later runs find it in the cache)."""

    corpus: str
    path: str

    @property
    def text(self) -> str:
        return f"prepared {self.corpus} → {self.path}"


@dataclass(frozen=True)
class AllText:
    """Raw text prepared without a validation fraction was too small to hold one back."""

    corpus: str
    chars: int

    @property
    def text(self) -> str:
        val = int(self.chars * DEFAULT_VAL_FRAC)
        return (
            f"{self.corpus}: {self.chars:,} chars, too few for a validation split "
            f"({DEFAULT_VAL_FRAC:.0%} would be {val:,}, under {MIN_VAL_CHARS:,}): training on "
            "all of it"
        )


@dataclass(frozen=True)
class FineTuning:
    """A run starts from a checkpoint's weights (`init_from`), fitted to the text's vocabulary."""

    source: str
    cell: str
    layers: int
    hidden: int
    step: int
    weights: str  # which of the source's weights: "raw" or "average"
    lr: float
    warmup: int
    new_chars: tuple[str, ...]
    vocab_size: int
    new_voices: tuple[str, ...] = ()
    voices: int = 0  # the model's voices after the merge (0: none)

    @property
    def text(self) -> str:
        lines = [
            f"fine-tuning from {self.source} ({self.cell.upper()} {self.layers}×{self.hidden}, "
            f"step {self.step:,}, {self.weights} weights): lr {self.lr:g}, warmup {self.warmup}"
        ]
        if self.new_chars:
            shown = " ".join(repr(c) for c in self.new_chars[:40])
            n = len(self.new_chars)
            more = f" and {n - 40} more" if n > 40 else ""
            lines.append(
                f"{n} new characters join the vocabulary ({self.vocab_size} in all): {shown}{more}"
            )
        if self.new_voices:
            n = len(self.new_voices)
            lines.append(
                f"{n} new voice{'s' * (n > 1)} join{'s' * (n == 1)} the model ({self.voices} in "
                f"all): {', '.join(self.new_voices)}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class Planned:
    """The plan the run will train, and its lines: the rules' notes, then what it chose and why
    (a resumed run's plan is its checkpoint's, shown by no line)."""

    plan: Plan
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)
