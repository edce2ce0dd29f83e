"""The next-character distribution: every adjustment of a model's logits, in one documented order, and
the draw. The CLI, the Python API, beam search and the server all call these functions, so the same
options give the same text everywhere.

Order: (1) masks (characters that `--ban`, `--no-repeat`, `--until` or a record's rules forbid) are
removed; (2) temperature scales what is left (0 means greedy: only the most likely remains); (3)
top-k keeps the k most likely; (4) top-p keeps the smallest set of most likely characters whose
probability reaches p; (5) min-p keeps those at least p × the most likely one's probability. The most
likely allowed character always survives (3)–(5). Work is in float64 on one stream's row at a time,
so a stream's draw never depends on the other streams of a batch. It knows nothing of models or text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charrnn.errors import InputError

NEG_INF = -np.inf


@dataclass(frozen=True)
class Filters:
    """The drawing options: temperature and the truncations applied after it."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None

    def check(self) -> None:
        """One-line errors naming the flag, before anything slow happens."""
        if not self.temperature >= 0:  # also rejects NaN
            raise InputError(f"--temp must be >= 0 (0 = greedy), got {self.temperature}")
        if self.top_k is not None and self.top_k < 0:
            raise InputError(f"--top-k must be >= 0 (0 = off), got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise InputError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.min_p is not None and not 0 <= self.min_p <= 1:
            raise InputError(f"--min-p must be in [0, 1], got {self.min_p}")


def adjust(logits: np.ndarray, filters: Filters, banned: np.ndarray | None = None) -> np.ndarray:
    """Steps (1)–(5) on one row of logits: float64 log-weights, -inf where excluded."""
    x = np.array(logits, dtype=np.float64)
    if banned is not None:
        x[banned] = NEG_INF
    if not np.isfinite(x).any():
        return x
    best = int(np.argmax(x))
    if filters.temperature == 0:
        out = np.full_like(x, NEG_INF)
        out[best] = 0.0
        return out
    top_k = filters.top_k
    if top_k and top_k < x.size:  # chosen on the raw logits: no rounding ties after scaling
        cut = np.partition(x, -top_k)[-top_k]
        x = np.where(x >= cut, x, NEG_INF)
    x = (x - x[best]) / max(filters.temperature, np.finfo(np.float64).tiny)
    p = np.exp(x)
    if filters.top_p is not None and filters.top_p < 1:
        order = np.argsort(-x, kind="stable")
        mass = np.cumsum(p[order]) / p.sum()
        before = mass - p[order] / p.sum()  # probability of the strictly more likely ones
        drop = order[before >= filters.top_p]
        x[drop] = NEG_INF
        x[best] = 0.0  # top_p may round to 0: the most likely always stays
    if filters.min_p:
        x[x < np.log(filters.min_p)] = NEG_INF  # x is log(p / p_best)
        x[best] = 0.0
    return x


def probabilities(adjusted: np.ndarray) -> np.ndarray | None:
    """Normalised probabilities, or None when nothing is allowed."""
    finite = np.isfinite(adjusted)
    if not finite.any():
        return None
    p = np.where(finite, np.exp(adjusted - adjusted[finite].max()), 0.0)
    return p / p.sum()


def draw(probs: np.ndarray, u: float) -> int:
    """The character whose cumulative-probability interval holds u ∈ [0, 1): inverse-CDF sampling,
    deterministic for a given u and never a character of probability 0."""
    cdf = np.cumsum(probs)
    i = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
    i = min(i, probs.size - 1)
    while probs[i] == 0:  # u * total landed on the last boundary: step back to an allowed one
        i -= 1
    return i


def redirect(
    probs: np.ndarray, source: np.ndarray, target: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Move the probability of `source` characters onto `target` ones, shared in proportion to
    `weights` (evenly if they are all 0): how `--max-words` ends a text where the model wanted to
    end a word. Without any target in the vocabulary the source is simply removed."""
    p = probs.copy()
    moved = p[source].sum()
    p[source] = 0.0
    if target.any() and moved > 0:
        w = np.where(target, weights, 0.0)
        w = w / w.sum() if w.sum() > 0 else target / target.sum()
        p += moved * w
    return p


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Natural-log probabilities of one or more rows of logits (float64)."""
    x = np.asarray(logits, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))
