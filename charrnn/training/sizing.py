"""The sizing rules of a fresh run: which shape a time budget affords on this machine, how much
dropout the epochs it will see call for, and how often to evaluate.

Pure functions of numbers (the speed is data: `speed.Speeds`), so tests pin every decision; how the
constants were measured is in docs/defaults.md. `plan` applies them; nothing here reads a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from charrnn.training.speed import EVAL_SPEEDUP, Speeds, train_flops_per_char, weight_count

# The shapes a budget chooses among, cheapest first (layers, hidden): the grid docs/defaults.md measured.
CANDIDATES: tuple[tuple[int, int], ...] = ((1, 256), (2, 256), (2, 512), (3, 512))
# The hidden sizes tried when --layers is given, and the depths when --hidden is.
HIDDEN_CHOICES = (256, 512)
LAYER_CHOICES = (1, 2, 3)
# A model needs about this many optimizer steps to learn what its size allows: the budget's
# shape is the largest that gets them. Tuned on three texts at 3 minutes, where 1×256 (~2,000
# steps) beat 2×256 (~950) on each, within the 10-minute plan's 2×512 (~1,160 at the reference
# speed) (docs/defaults.md, "The plan").
MIN_STEPS = 1100
# ... and about this many passes over its text: on a text too large to be seen that often in the
# budget, a smaller model that sees it more times does better. Judged on a 5 MB text at 10 minutes,
# where 1×256 (~6,000 steps, 8.5 passes) beat 2×256 (~3,000 steps, 4.3 passes) on two seeds; the
# 1 MB plans keep theirs (2×512 makes 7.4 passes in 10 minutes) (docs/defaults.md, "The plan").
MIN_EPOCHS = 5.0
# ... and at most this many weights per training character: a model that can hold its text by
# heart learns it by heart, however long the budget. On 86 KB of licence texts at 10 minutes,
# 2×512 (43 weights a character) lost 0.05 nats to 2×256 (11) and peaked at step 250 of 1,168;
# the hour-long 1 MB plan, 3×512, has 5.4 (docs/defaults.md, "Rules 3").
MAX_WEIGHTS_PER_CHAR = 20.0
# Dropout by the passes over the text a run will make (upper bound of epochs → dropout): under one
# epoch nothing is seen twice, so there is nothing to overfit; many epochs call for more.
DROPOUT_BY_EPOCHS: tuple[tuple[float, float], ...] = (
    (1.0, 0.0),
    (4.0, 0.2),
    (20.0, 0.3),
    (100.0, 0.4),
    (math.inf, 0.5),
)
# Evaluation: every EVAL_EVERY steps, but at least MIN_EVALS in a run (the final one included,
# so best.ckpt is chosen among several), costing at most EVAL_SHARE of the budget where it can
# (and the minimum at most MAX_EVAL_SHARE: a huge validation split on a slow machine gets fewer).
EVAL_EVERY = 250
MIN_EVALS = 5
EVAL_SHARE = 0.10
MAX_EVAL_SHARE = 0.25


@dataclass(frozen=True)
class Budget:
    """What a timed run has to spend: its seconds, the characters a step trains on (all processes),
    the text and vocabulary, and the characters one evaluation reads (both weight sets)."""

    seconds: float
    chars_per_step: int
    train_chars: int
    vocab_size: int
    eval_chars: int


def steps_in(budget: Budget, speeds: Speeds, flops: float, eval_count: int = 0) -> int:
    """Steps the budget affords at this arithmetic per character, less calibration and
    `eval_count` evaluations."""
    evaluating = eval_count * eval_seconds(budget, speeds, flops)
    seconds = max(budget.seconds - speeds.seconds - evaluating, 0.0)
    return int(seconds * speeds.chars_per_sec(flops) / budget.chars_per_step)


def shortfall(
    budget: Budget, speeds: Speeds, cell: str, embed: int, shape: tuple[int, int]
) -> str | None:
    """What keeps a shape from this text and budget, the first of: "weights" (over
    MAX_WEIGHTS_PER_CHAR per training character: first, as no budget or machine mends it),
    "steps" (under MIN_STEPS after its evaluations), "passes" (under MIN_EPOCHS over the text);
    None where it fits."""
    layers, hidden = shape
    weights = weight_count(cell, layers, hidden, embed, budget.vocab_size)
    if weights > MAX_WEIGHTS_PER_CHAR * budget.train_chars:
        return "weights"
    flops = train_flops_per_char(cell, layers, hidden, embed, budget.vocab_size)
    steps = steps_in(budget, speeds, flops, MIN_EVALS)
    if steps < MIN_STEPS:
        return "steps"
    if steps * budget.chars_per_step < MIN_EPOCHS * max(budget.train_chars, 1):
        return "passes"
    return None


def choose_shape(
    budget: Budget,
    speeds: Speeds,
    cell: str,
    embed: int,
    layers: int | None = None,
    hidden: int | None = None,
) -> tuple[tuple[int, int], tuple[tuple[int, int], str] | None]:
    """The largest shape (by arithmetic) that has at most MAX_WEIGHTS_PER_CHAR weights per
    training character and gets MIN_STEPS steps and MIN_EPOCHS passes over the text in the
    budget, else the cheapest (the fewest weights, the most steps and passes); a given --layers or
    --hidden fixes that dimension and the other is chosen. With it, why it is not larger: the
    next shape up and what it lacks (`shortfall`), or, where no shape fits, the chosen one's own
    shortfall; None when the chosen shape fits and none is larger (or the shape was given)."""
    if layers is not None and hidden is not None:
        return (layers, hidden), None
    if layers is not None:
        shapes = [(layers, h) for h in HIDDEN_CHOICES]
    elif hidden is not None:
        shapes = [(n, hidden) for n in LAYER_CHOICES]
    else:
        shapes = list(CANDIDATES)
    shapes.sort(key=lambda s: weight_count(cell, s[0], s[1], embed, budget.vocab_size))
    lacks = [shortfall(budget, speeds, cell, embed, s) for s in shapes]
    fits = [i for i, why in enumerate(lacks) if why is None]
    if not fits:
        return shapes[0], (shapes[0], str(lacks[0]))
    chosen = fits[-1]
    nxt = chosen + 1  # the last that fits: every larger shape lacks something
    return shapes[chosen], (shapes[nxt], str(lacks[nxt])) if nxt < len(shapes) else None


def dropout_for(epochs: float) -> float:
    """The dropout for a run that will make `epochs` passes over its text."""
    return next(d for upper, d in DROPOUT_BY_EPOCHS if epochs <= upper)


def evaluations(steps: int, every: int) -> int:
    """How many evaluations a run of `steps` makes at this cadence: one every `every` steps and
    one at the end (unless the last step was one)."""
    return max(1, math.ceil(steps / every))


def eval_cadence(steps: int | None, eval_seconds: float = 0.0, budget: float | None = None) -> int:
    """Evaluate every EVAL_EVERY steps, more often where that gives fewer than MIN_EVALS in the
    planned steps, less often where evaluating would take over EVAL_SHARE of a time budget: never
    fewer than MIN_EVALS, unless those would take over MAX_EVAL_SHARE of it (then as many as fit
    in that share, one at least)."""
    if not steps:
        return EVAL_EVERY
    every = EVAL_EVERY
    if evaluations(steps, every) < MIN_EVALS:
        every = max(1, math.ceil(steps / MIN_EVALS))
        while every > 1 and evaluations(steps, every) < MIN_EVALS:
            every -= 1
    if budget and eval_seconds > 0:
        floor = min(MIN_EVALS, max(1, int(MAX_EVAL_SHARE * budget / eval_seconds)))
        affordable = max(floor, int(EVAL_SHARE * budget / eval_seconds))
        if evaluations(steps, every) > affordable:
            every = math.ceil(steps / affordable)
            while evaluations(steps, every) > affordable:
                every += 1
    return every


def eval_seconds(budget: Budget, speeds: Speeds, flops: float) -> float:
    """Seconds one evaluation takes at this shape's forward speed."""
    return budget.eval_chars / (EVAL_SPEEDUP * speeds.chars_per_sec(flops))
