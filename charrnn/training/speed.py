"""How fast a model shape trains here, as data the planner reads: training arithmetic per character,
a few measured (arithmetic, chars/s) points, and the speed of any other shape read off them.

Pure and torch-free, so `plan()` stays a function of numbers and tests can hand it any machine.
Measuring the points (and caching them) is `calibrate`'s job; choosing a shape is `plan`'s.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
# Evaluation is a forward pass only, about a third of a training step's arithmetic; measured here
# it runs at about this multiple of the training rate (docs/defaults.md).
EVAL_SPEEDUP = 3.0


def weight_count(cell: str, layers: int, hidden: int, embed: int, vocab: int) -> int:
    """The weight matrices' entries a character passes through: the recurrent layers and the
    head (biases and the embedding table, a lookup, left out): what a shape costs per character
    and, beside the text's length, how much of the text it can learn by heart."""
    gates = GATES.get(cell, 4) * hidden
    recurrent = sum(gates * ((embed if i == 0 else hidden) + hidden) for i in range(layers))
    return recurrent + hidden * vocab


def train_flops_per_char(cell: str, layers: int, hidden: int, embed: int, vocab: int) -> float:
    """Multiply-adds ×2 of a training step per character: every weight, forward and backward (×3)."""
    return 6.0 * weight_count(cell, layers, hidden, embed, vocab)


@dataclass(frozen=True)
class Speeds:
    """Training speed as measured points (flops per char, chars/s), and where they came from:
    "measured" (calibrated for this run), "cached" (an earlier measurement or run on this machine),
    or "reference" (fixed figures: `--no-calibrate`). `seconds`: what measuring cost the run."""

    points: tuple[tuple[float, float], ...]
    source: str = "reference"
    seconds: float = 0.0
    shapes: dict[str, float] = field(default_factory=dict)

    def chars_per_sec(self, flops_per_char: float) -> float:
        """Read off the points: time per character is taken as linear in arithmetic between
        (and beyond) the two nearest points, which holds for these matrix-bound steps; a shape
        cheaper than any point is no faster per flop than the cheapest point."""
        pts = sorted(self.points)
        if len(pts) == 1:
            f, cps = pts[0]
            return cps * f / flops_per_char
        i = min(max(bisect.bisect_left([p[0] for p in pts], flops_per_char), 1), len(pts) - 1)
        (f1, c1), (f2, c2) = pts[i - 1], pts[i]
        t1, t2 = 1 / c1, 1 / c2
        slope = max((t2 - t1) / (f2 - f1), 0.0) if f2 != f1 else 0.0
        t = t1 + slope * (flops_per_char - f1)
        floor = t1 * flops_per_char / f1 if flops_per_char < f1 else 0.0  # per-flop cost at least
        return 1 / max(t, floor, 1e-12)

    def scaled(self, processes: int) -> Speeds:
        """The rate of `processes` processes that each train their own streams at these rates."""
        if processes == 1:
            return self
        points = tuple((f, c * processes) for f, c in self.points)
        shapes = {k: v * processes for k, v in self.shapes.items()}
        return Speeds(points, self.source, self.seconds, shapes)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "seconds": round(self.seconds, 3),
            "chars_per_sec": self.shapes,
        }


def shape_name(layers: int, hidden: int) -> str:
    return f"{layers}x{hidden}"


def parse_shape(name: str) -> tuple[int, int]:
    layers, hidden = name.split("x")
    return int(layers), int(hidden)


# The reference speed (`--no-calibrate`): the LSTM's bf16 training rates of two shapes on the
# development machine (2 Zen 4 cores) at tiny-shakespeare's vocabulary (docs/defaults.md).
REFERENCE_VOCAB = 65
REFERENCE_EMBED = 64
REFERENCE = {"2x256": 38_000.0, "2x512": 13_000.0}


def from_shapes(
    measured: dict[str, float], cell: str, embed: int, vocab: int, source: str, seconds: float = 0.0
) -> Speeds:
    """Points from chars/s by shape name ("2x512"), for this cell, embedding and vocabulary."""
    points = tuple(
        (train_flops_per_char(cell, *parse_shape(k), embed, vocab), float(v))
        for k, v in sorted(measured.items())
        if v > 0
    )
    return Speeds(points, source, seconds, dict(measured))


def reference(processes: int = 1) -> Speeds:
    """The fixed reference speed: the reference shapes' LSTM rates as points at the reference
    vocabulary, so any shape's speed (another cell's, too) follows from its arithmetic alone."""
    one = from_shapes(REFERENCE, "lstm", REFERENCE_EMBED, REFERENCE_VOCAB, "reference")
    return one.scaled(processes)
