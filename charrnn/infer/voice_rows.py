"""How a voice reaches a model at inference: a constant on layer 0's input pre-activations per voice
(the voice embedding times layer 0's voice columns), and each stream's constant from its voice
weights (a mix is the weighted sum: the embedding enters linearly).

Numpy only, shared by the engines (the torch engine moves the rows to its device). It does not know
voice names or refuse tags (`voices`), and never touches the hidden-side biases: the GRU's n gate
multiplies those by r, so a voice there would be wrong (docs: GUIDE §12).
"""

from __future__ import annotations

import numpy as np

from charrnn.errors import InputError

F32 = np.float32


def gate_scale(cell: str, hidden: int) -> np.ndarray:
    """The numpy engine's scale per gate column: 1/2 for sigmoid gates (so that one tanh serves
    every gate), 1 for tanh ones. A power of two, so scaling and unscaling are exact."""
    half = np.ones({"lstm": 4, "gru": 3, "rnn": 1}[cell] * hidden, dtype=F32)
    if cell == "lstm":
        half[: 2 * hidden] = half[3 * hidden :] = 0.5  # i, f, g, o: all but g
    elif cell == "gru":
        half[: 2 * hidden] = 0.5  # r, z, n: r and z
    return half


def voice_table(voice_weight: np.ndarray, w_ih0: np.ndarray, embed: int) -> np.ndarray:
    """(V + 1) × gates: what each voice (the last row: no voice) adds to layer 0's input
    pre-activations, from the voice embedding and layer 0's columns after the characters'."""
    return np.ascontiguousarray(voice_weight @ w_ih0[:, embed:].T, dtype=F32)


def bias_rows(table: np.ndarray, weights: np.ndarray | None, batch: int) -> np.ndarray:
    """batch × gates: each row's voice constant. weights: None (no voice: the table's last row),
    one row of V voice weights for every stream, or batch × V (a row each)."""
    voices = len(table) - 1
    if weights is None:
        return np.repeat(table[voices:], batch, axis=0)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.ndim != 2 or w.shape[1] != voices or len(w) not in (1, batch):
        raise InputError(f"voice weights must be {voices} per row, for 1 or {batch} rows")
    rows = (w @ table[:voices].astype(np.float64)).astype(F32)
    return np.ascontiguousarray(np.repeat(rows, batch, axis=0) if len(rows) == 1 else rows)
