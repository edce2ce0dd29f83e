"""Which of a model's units are worth a click: simple properties of a text, each unit's correlation
with them, the pick of the best few, and the names (`h1:283`, `c2:17`) users give units.

Karpathy, Johnson and Fei-Fei ("Visualizing and Understanding Recurrent Networks") found single cells
that track quotes, brackets and line length; this module measures, for every unit of every layer
(hidden state h and, for an LSTM, cell state c), how well it tracks such a property on the text at
hand, so the page can offer those units first. It does not run the model or quantise anything: it
works on arrays the page builder hands it.

A unit's name is its kind (`h` hidden state, `c` LSTM cell state), its layer counted from 1 (as
LSTMVis counts), a colon and its index within the layer counted from 0 (a column of the state
matrix, as numpy and LSTMVis count).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from charrnn.errors import InputError

# Property name → what the page says about it.
PROPERTIES: dict[str, str] = {
    "inside quotes": 'between an opening and a closing " (straight double quotes)',
    "inside brackets": "inside (), [] or {} (nesting depth above zero)",
    "position in line": "characters read since the last newline",
    "indentation": "leading spaces or tabs read on the current line",
    "word start": "a non-space character after whitespace (or at the start of the text)",
}
BRACKETS_OPEN, BRACKETS_CLOSE = "([{", ")]}"


def text_properties(text: str) -> dict[str, np.ndarray]:
    """Each property's value at every character of the text, as the model stands right after
    reading that character (its state then is what a unit holds).

    So an opening quote is already inside quotes and a closing one no longer is; a newline resets
    the position in the line and the indentation to 0. Only double quotes count: in prose the
    apostrophe (o'er, 'tis, king's) is the same character as a single quote, which would make
    "inside single quotes" mostly noise.
    """
    n = len(text)
    quote = np.zeros(n)
    bracket = np.zeros(n)
    column = np.zeros(n)
    indent = np.zeros(n)
    word = np.zeros(n)
    inside, depth, col, ind, leading = False, 0, 0, 0, True
    prev_space = True  # the text's start counts as whitespace before its first word
    for i, ch in enumerate(text):
        if ch == '"':
            inside = not inside
        if ch in BRACKETS_OPEN:
            depth += 1
        elif ch in BRACKETS_CLOSE:
            depth = max(0, depth - 1)
        if ch == "\n":
            col, ind, leading = 0, 0, True
        else:
            col += 1
            if leading and ch in " \t":
                ind += 1
            else:
                leading = False
        is_space = ch.isspace()
        word[i] = 1.0 if prev_space and not is_space else 0.0
        prev_space = is_space
        quote[i], bracket[i], column[i], indent[i] = inside, depth > 0, col, ind
    return {
        "inside quotes": quote,
        "inside brackets": bracket,
        "position in line": column,
        "indentation": indent,
        "word start": word,
    }


def correlations(states: np.ndarray, props: np.ndarray) -> np.ndarray:
    """Pearson correlation of every unit (a column of states, n × U) with every property (a column
    of props, n × K): a U × K array. A constant unit correlates 0 with everything; a constant
    property (no quotes in the text) gives a column of NaN, so callers can tell "nothing to track"
    from "tracked by no unit"."""
    n = states.shape[0]
    out = np.full((states.shape[1], props.shape[1]), np.nan)
    if n < 2:
        return out
    p = props - props.mean(axis=0)
    p_norm = np.sqrt((p * p).sum(axis=0))
    live = p_norm > 1e-12 * np.maximum(1.0, np.abs(props).max(axis=0))
    if not live.any():
        return out
    cov = np.zeros((states.shape[1], int(live.sum())))
    sq = np.zeros(states.shape[1])
    sums = np.zeros(states.shape[1])
    block = 2048  # rows at a time: float64 copies of a block, not of the whole state matrix
    for a in range(0, n, block):
        x = states[a : a + block].astype(np.float64)
        sums += x.sum(axis=0)
    mean = sums / n
    for a in range(0, n, block):
        x = states[a : a + block].astype(np.float64) - mean
        cov += x.T @ p[a : a + block][:, live]
        sq += (x * x).sum(axis=0)
    x_norm = np.sqrt(sq)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / (x_norm[:, None] * p_norm[live][None, :])
    r[~np.isfinite(r)] = 0.0  # a constant unit
    out[:, live] = np.clip(r, -1.0, 1.0)
    return out


@dataclass(frozen=True)
class Pick:
    """A unit chosen for the page: its flat index and the property it was chosen for."""

    unit: int
    prop: int


def select_units(r: np.ndarray, count: int = 64, exclude: Sequence[int] = ()) -> list[Pick]:
    """Up to `count` distinct units, shared out among the properties that vary on this text: in
    turns, each property takes its best remaining unit by |r|, so every property gets its strongest
    trackers (about count / properties each) and no unit is listed twice. A unit in `exclude` (named
    by the user, listed apart) is not taken. The result is grouped by property, best first."""
    usable = [k for k in range(r.shape[1]) if not np.isnan(r[:, k]).all()]
    if not usable or count <= 0:
        return []
    # Each property's units, best first; ties by unit index so the pick is reproducible.
    order = {k: np.lexsort((np.arange(r.shape[0]), -np.abs(r[:, k]))) for k in usable}
    taken = set(exclude)
    cursor = dict.fromkeys(usable, 0)
    picks: list[Pick] = []
    limit = min(count, r.shape[0] - len(taken))
    while len(picks) < limit:
        progressed = False
        for k in usable:
            ranked = order[k]
            while cursor[k] < len(ranked) and int(ranked[cursor[k]]) in taken:
                cursor[k] += 1
            if cursor[k] < len(ranked) and len(picks) < limit:
                unit = int(ranked[cursor[k]])
                taken.add(unit)
                picks.append(Pick(unit, k))
                progressed = True
        if not progressed:
            break
    return sorted(picks, key=lambda p: (p.prop, -abs(r[p.unit, p.prop]), p.unit))


@dataclass(frozen=True)
class Layout:
    """How a model's units line up in one flat index: per layer its hidden state, then (LSTM) its
    cell state, each `hidden` wide. The page and LSTMVis export both list units in this order."""

    layers: int
    hidden: int
    cells: bool

    @property
    def blocks(self) -> list[tuple[str, int]]:
        """(kind, layer from 1) for each block of `hidden` units, in flat order."""
        kinds = ("h", "c") if self.cells else ("h",)
        return [(kind, layer) for layer in range(1, self.layers + 1) for kind in kinds]

    @property
    def size(self) -> int:
        return len(self.blocks) * self.hidden

    def name(self, unit: int) -> str:
        kind, layer = self.blocks[unit // self.hidden]
        return f"{kind}{layer}:{unit % self.hidden}"

    def parse(self, spec: str) -> list[int]:
        """`h1:283,c2:17` → flat unit indices, in the order given, without repeats. A malformed or
        out-of-range name is an InputError saying what is valid for this model."""
        units: list[int] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            m = re.fullmatch(r"([hc])(\d+):(\d+)", part)
            if not m:
                raise InputError(
                    f"--units: {part!r} is not a unit name; write KIND LAYER:INDEX, e.g. h1:283 "
                    "(h hidden state, c LSTM cell state; layers from 1, units from 0)"
                )
            kind, layer, index = m.group(1), int(m.group(2)), int(m.group(3))
            if kind == "c" and not self.cells:
                raise InputError(f"--units: {part}: only an LSTM has cell states (c); use h")
            if not 1 <= layer <= self.layers:
                raise InputError(
                    f"--units: {part}: layer {layer} does not exist (layers 1..{self.layers})"
                )
            if index >= self.hidden:
                raise InputError(
                    f"--units: {part}: unit {index} does not exist (units 0..{self.hidden - 1})"
                )
            unit = self.blocks.index((kind, layer)) * self.hidden + index
            if unit not in units:
                units.append(unit)
        return units
