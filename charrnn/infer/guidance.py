"""An engine as the sampler sees it once a voice is chosen: every stream carries that voice (or mix),
and with a strength S other than 1 each sample runs as two rows of one batch, voiced and untagged,
both fed the chosen characters, whose raw logits are combined u + S·(c − u) (classifier-free
guidance) before any bias, penalty, ban or filter. Beam search and every draw then see one row per
sample, the guided one.

S = 1 runs the voiced row alone (u + 1·(c − u) is not bit-equal to c in floating point, and it
costs a second row). Without a voice the engine is called exactly as before. It does not draw or
know names (`voices`); the server's batches are the server's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from charrnn.infer.engine import EngineState, InferenceEngine


@dataclass
class Pair:
    """A batch of guided samples: sample i is rows 2i (voiced) and 2i + 1 (untagged) of `rows`,
    so select, copy and concat move both rows of a sample together."""

    rows: EngineState

    @property
    def batch(self) -> int:
        return self.rows.batch // 2

    def select(self, rows: Sequence[int] | np.ndarray) -> Pair:
        idx = np.asarray(rows, dtype=np.intp)
        return Pair(self.rows.select(np.stack([2 * idx, 2 * idx + 1], axis=1).ravel()))

    def copy(self) -> Pair:
        return Pair(self.rows.copy())

    @staticmethod
    def concat(states: Sequence[Pair]) -> Pair:
        inner = [s.rows for s in states]
        return Pair(type(inner[0]).concat(inner))


class Voicing:
    """The engine with a voice (weights over the model's voices, or None) at strength S."""

    def __init__(
        self,
        engine: InferenceEngine,
        weights: np.ndarray | None = None,
        strength: float = 1.0,
        counts: np.ndarray | None = None,
    ) -> None:
        self.engine, self.weights, self.strength = engine, weights, float(strength)
        self.paired = weights is not None and self.strength != 1.0
        self.counts = counts  # the first draw's frequencies without a prime (None: the corpus's)

    def initial_state(self, batch: int = 1) -> EngineState:
        """Fresh streams with the voice (and, guided, their untagged rows beside them)."""
        engine = self.engine
        if self.weights is None:
            return engine.initial_state(batch)
        voiced = engine.initial_state(batch, self.weights)
        if not self.paired:
            return voiced
        both = type(voiced).concat([voiced, engine.initial_state(batch, None)])
        return Pair(both.select(np.stack([np.arange(batch), batch + np.arange(batch)], 1).ravel()))

    def prime(self, ids: Sequence[int]) -> tuple[np.ndarray | None, EngineState]:
        """(the guided logits after ids, or None without ids; the state of one sample)."""
        engine = self.engine
        if not ids:
            return None, self.initial_state(1)
        if self.weights is None:
            fwd = engine.forward(ids, last_only=True)
            return fwd.logits[-1], fwd.state
        voiced = engine.forward(ids, engine.initial_state(1, self.weights), last_only=True)
        if not self.paired:
            return voiced.logits[-1], voiced.state
        plain = engine.forward(ids, engine.initial_state(1, None), last_only=True)
        logits = self.combine(voiced.logits[-1:], plain.logits[-1:])[0]
        return logits, Pair(type(voiced.state).concat([voiced.state, plain.state]))

    def step(self, ids: Sequence[int] | np.ndarray, state: EngineState) -> np.ndarray:
        """Advance every sample by its character; the guided logits, one row per sample."""
        if not self.paired:
            return self.engine.step(ids, state)
        assert isinstance(state, Pair)
        out = self.engine.step(np.repeat(np.asarray(ids), 2), state.rows)
        return self.combine(out[0::2], out[1::2])

    def combine(self, voiced: np.ndarray, untagged: np.ndarray) -> np.ndarray:
        """u + S·(c − u), row by row (raw logits: before any bias, ban or filter)."""
        return untagged + np.float32(self.strength) * (voiced - untagged)
